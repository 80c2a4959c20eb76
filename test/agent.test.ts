import { describe, expect, it } from 'vitest';
import { encoderCandidates } from '#lib/domain/encoders/index.ts';
import { AgentError } from '#lib/pipeline/plan/errors.ts';
import { planRun } from '#lib/pipeline/plan/plan.ts';
import { rewardGeneration, type TrialRow } from '#lib/pipeline/reward/reward.ts';
import { type StoredPolicy } from '#lib/pipeline/plan/state.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { buildRunReport } from '#lib/adapters/report/index.ts';
import { ModelRegistry, RewardLog, RunLog } from '#lib/adapters/registry/index.ts';
import { parseSpec, specDigest, type SpecInput } from '#lib/domain/spec/index.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { trialResultUri, type PlanOutput, type Proposal, type TrialOutcome } from '#lib/pipeline/contracts.ts';
import { useLocalAws } from './helpers/localAws.ts';
import { featuresSpecInput } from './helpers/specs.ts';

const aws = useLocalAws();
let count = 0;

function deps() {
  const { s3, dynamodb } = aws.clients;
  return {
    store: new ArtifactStore({ s3, bucket: aws.config.bucket }),
    registry: new ModelRegistry({ dynamodb, tableName: aws.config.registryTable }),
    runLog: new RunLog({ dynamodb, tableName: aws.config.registryTable }),
    rewards: new RewardLog({ dynamodb, tableName: aws.config.rewardTable }),
  };
}

const specInput = (project: string, tuning: Partial<SpecInput['tuning']> = {}, extra: Partial<SpecInput> = {}): SpecInput =>
  featuresSpecInput({
    project,
    dimension: 4,
    datasets: { train: 's3://agentflow-artifacts/datasets/x/train.jsonl' },
    tasks: [
      { name: 'spam', type: 'binary', floor: 0.6 },
      { name: 'stars', type: 'regression', metric: 'rmse' },
    ],
    tuning: { strategy: 'pgpe', generations: 2, population: 4, maxConcurrency: 3, ...tuning },
    ...extra,
  });

/** A run whose Prepare stage is done: the manifest and the run record exist. */
async function preparedRun(project: string, tuning: Partial<SpecInput['tuning']> = {}, extra: Partial<SpecInput> = {}) {
  const { store, runLog } = deps();
  const spec = parseSpec(specInput(project, tuning, extra));
  const runId = `run-${++count}`;
  const manifest: RunManifest = {
    manifestVersion: 1,
    runId,
    project,
    specUri: store.uri(`runs/${runId}/spec.json`),
    specDigest: specDigest(spec),
    spec,
    datasets: [],
    split: spec.split,
    // As Prepare fits them: a tabular model with numericEncoding "auto" is one encoder per encoding.
    encoders: encoderCandidates(spec.baseModels).map((model, index) => ({
      id: `e${index}`,
      kind: model.kind,
      uri: store.uri(`runs/${runId}/encoders/e${index}.onnx`),
      sha256: String(index).repeat(64),
      dimension: 4,
      summary: model.kind === 'tabular' ? { numericEncodings: model.numeric.map(() => model.numericEncoding) } : {},
    })),
    featuresDigest: 'f'.repeat(64),
  };
  await store.putJson(keys.runManifest(runId), manifest);
  await runLog.createRun({ project, runId, specDigest: manifest.specDigest });
  const runUri = store.uri(`runs/${runId}`);
  return {
    runId,
    runUri,
    planInput: {
      runId,
      project,
      runUri,
      manifestUri: store.uri(keys.runManifest(runId)),
      featuresUri: store.uri(keys.featuresPrefix(manifest.featuresDigest)),
      embedResultUri: `${runUri}/embed/result.json`,
    },
  };
}

/**
 * How much a candidate adds to spam AUC: e1 beats e0, and mmoe gains more from longer training,
 * so the second screening round overturns the first round's order of the two e1 candidates.
 */
function candidateBonus(proposal: Proposal): number {
  const encoder = proposal.encoderId === 'e1' ? 0.05 : 0;
  const architecture = proposal.architecture === 'mmoe' ? ((proposal.maxEpochs ?? 20) >= 4 ? 0.03 : -0.01) : 0;
  return encoder + architecture;
}

/** Writes each trial's result as a trial job would: spam AUC and stars rmse from a known function of λ. */
async function completeTrials(runUri: string, plan: PlanOutput, options: { fail?: string[] } = {}): Promise<TrialOutcome[]> {
  const { store } = deps();
  return Promise.all(
    plan.proposals.map(async (proposal: Proposal): Promise<TrialOutcome> => {
      const resultUri = trialResultUri(runUri, proposal.trialId);
      if (options.fail?.includes(proposal.trialId)) {
        await store.putJson(resultUri, {
          status: 'failed',
          trialId: proposal.trialId,
          generation: plan.generation,
          proposal,
          reason: 'loss diverged (NaN) at step 12',
        });
        return { trialId: proposal.trialId, status: 'failed', error: 'States.TaskFailed', resultUri };
      }
      const share = proposal.lambda.spam / (proposal.lambda.spam + proposal.lambda.stars);
      const metrics = {
        spam: { auc: 0.7 + 0.2 * share + candidateBonus(proposal), accuracy: 0.8, logLoss: 0.4 },
        stars: { rmse: 0.5 + 0.4 * (share - 0.3) ** 2, mae: 0.4, labelStd: 1, labelMad: 0.8 },
      };
      await store.putJson(resultUri, {
        status: 'succeeded',
        trialId: proposal.trialId,
        generation: plan.generation,
        proposal,
        metrics,
        weightsUri: `${runUri}/trials/${proposal.trialId}/weights.bin`,
        durationMs: 1200,
      });
      return { trialId: proposal.trialId, status: 'succeeded', jobId: `job-${proposal.trialId}`, resultUri };
    }),
  );
}

describe('Plan', () => {
  it.each([
    ['uniform', 0.05],
    ['uniform', 3e-4],
    ['pgpe', 0.05],
  ] as const)("with tuneLearningRate, %s proposals centre on the spec's learningRate %s and the decision says so", async (strategy, learningRate) => {
    const run = await preparedRun(
      `plan-lr-${strategy}-${String(learningRate).replace('.', '-')}`,
      { strategy, tuneLearningRate: true },
      { training: { learningRate } },
    );
    const { runLog } = deps();

    const plan = await planRun(run.planInput, deps());

    const rates = plan.proposals.map((proposal) => proposal.learningRate!);
    expect(rates.every((rate) => rate >= learningRate / 10 && rate <= learningRate * 10)).toBe(true);
    // PGPE samples θ ± ε in pairs: a pair's geometric mean is the centre.
    const centre = Math.exp(rates.reduce((sum, rate) => sum + Math.log(rate), 0) / rates.length);
    expect(centre).toBeCloseTo(learningRate, 10);
    const events = await runLog.listRunEvents(run.planInput.project, run.runId);
    const decisions = (events.find((event) => event.eventKey === 'plan')!.detail as { decisions: { decision: string; reason: string }[] }).decisions;
    expect(decisions.find((d) => d.decision === 'learning rate')?.reason).toMatch(new RegExp(`around training\\.learningRate ${learningRate}`));
  });

  it('starts a fresh policy on a new project, records why, and returns the same generation when retried', async () => {
    const run = await preparedRun('plan-fresh');
    const { runLog } = deps();

    const first = await planRun(run.planInput, deps());
    const retried = await planRun(run.planInput, deps());

    expect(first.generation).toBe(1);
    expect(first.proposals).toHaveLength(4);
    expect(first.maxConcurrency).toBe(3);
    expect(retried).toEqual(first);
    const events = await runLog.listRunEvents('plan-fresh', run.runId);
    const decisions = (events.find((e) => e.eventKey === 'plan')?.detail.decisions ?? []) as { decision: string; value: unknown; reason: string }[];
    expect(decisions.find((d) => d.decision === 'policy')).toMatchObject({ value: 'fresh' });
    expect(decisions.find((d) => d.decision === 'policy')?.reason).toMatch(/no stored policy/);
  });

  it('screens the three encoders of numericEncoding auto and records which encoding each is', async () => {
    const run = await preparedRun('plan-auto', {}, { baseModel: { kind: 'tabular', numeric: ['a', 'b'], numericEncoding: 'auto' } });
    const { runLog } = deps();

    const plan = await planRun(run.planInput, deps());

    expect(plan.proposals.map((p) => p.encoderId)).toEqual(['e0', 'e1', 'e2']);
    const events = await runLog.listRunEvents('plan-auto', run.runId);
    const decisions = (events.find((e) => e.eventKey === 'plan')?.detail.decisions ?? []) as { decision: string; value: unknown; reason: string }[];
    expect(decisions.find((d) => d.decision === 'encoders')?.reason).toBe('numeric encodings of the tabular candidates: e0 standard, e1 quantile, e2 ple');
  });

  it('caps parallelism at the population and runs one trial per generation for uniform λ', async () => {
    const run = await preparedRun('plan-uniform', { strategy: 'uniform', population: 4, maxConcurrency: 8 });

    const plan = await planRun(run.planInput, deps());

    expect(plan.proposals).toHaveLength(1);
    expect(plan.proposals[0].lambda).toEqual({ spam: 1, stars: 1 });
    expect(plan.maxConcurrency).toBe(1);
  });
});

describe('Plan and the execution history', () => {
  it('refuses, before proposing anything, a budget that would outgrow the 25,000-event history', async () => {
    const run = await preparedRun('plan-history');
    // A manifest whose spec was checked by an older agentflow, or edited: Plan checks again.
    const { store, runLog } = deps();
    const manifest = await store.getJson(run.planInput.manifestUri, RunManifest);
    await store.putJson(keys.runManifest(run.runId), {
      ...manifest,
      spec: { ...manifest.spec, tuning: { ...manifest.spec.tuning, generations: 60, population: 100 } },
    });

    const planned = planRun(run.planInput, deps());

    await expect(planned).rejects.toBeInstanceOf(AgentError);
    await expect(planned).rejects.toMatchObject({
      code: 'BUDGET_EXCEEDS_HISTORY',
      message: expect.stringMatching(/^tuning\.generations × population = 60 × 100 needs ~60,690 Step Functions history events; at most 22 generations of 100/),
    });
    expect(await store.exists(`runs/${run.runId}/agent/generation-1.json`)).toBe(false);
    expect(await runLog.listRunEvents('plan-history', run.runId)).toEqual([]);
  });
});

describe('Reward', () => {
  it('logs every trial once, leaves a failed trial out, proposes the next generation, then ends with the best trial', async () => {
    const project = 'reward-loop';
    const run = await preparedRun(project);
    const plan1 = await planRun(run.planInput, deps());
    const failing = plan1.proposals[1].trialId;
    const trials1 = await completeTrials(run.runUri, plan1, { fail: [failing] });
    const input1 = {
      runId: run.runId,
      project,
      runUri: run.runUri,
      manifestUri: run.planInput.manifestUri,
      generation: 1,
      proposals: plan1.proposals,
      trials: trials1,
    };

    const out1 = await rewardGeneration(input1, deps());
    const retried = await rewardGeneration(input1, deps());

    expect(out1.done).toBe(false);
    expect(out1.generation).toBe(2);
    expect(out1.proposals).toHaveLength(4);
    expect(retried).toEqual(out1);
    const rows = await deps().rewards.listTrials<TrialRow>(project, run.runId);
    expect(rows).toHaveLength(4);
    const failedRow = rows.find((r) => r.trialId === failing)?.row;
    expect(failedRow).toMatchObject({ status: 'failed', reward: null, error: 'loss diverged (NaN) at step 12' });

    const plan2: PlanOutput = { generation: out1.generation, proposals: out1.proposals, maxConcurrency: out1.maxConcurrency };
    const trials2 = await completeTrials(run.runUri, plan2);
    const out2 = await rewardGeneration({ ...input1, generation: 2, proposals: plan2.proposals, trials: trials2 }, deps());

    expect(out2.done).toBe(true);
    const all = await deps().rewards.listTrials<TrialRow>(project, run.runId);
    expect(all).toHaveLength(8);
    const best = all.filter((r) => r.row.reward !== null).sort((a, b) => (b.row.reward ?? 0) - (a.row.reward ?? 0))[0];
    expect(out2.bestTrialId).toBe(best.trialId);
    const policy = await deps().rewards.getPolicy<StoredPolicy>(project);
    expect(policy?.state).toMatchObject({ runId: run.runId, generation: 2 });
  });

  /** Plans a run, fails its whole first generation as `failed` says, and returns what Reward throws. */
  async function failedGeneration(
    project: string,
    failed: (run: Awaited<ReturnType<typeof preparedRun>>, plan: PlanOutput) => Promise<TrialOutcome[]>,
  ): Promise<AgentError> {
    const run = await preparedRun(project);
    const plan = await planRun(run.planInput, deps());
    const trials = await failed(run, plan);
    const error = await rewardGeneration(
      { runId: run.runId, project, runUri: run.runUri, manifestUri: run.planInput.manifestUri, generation: 1, proposals: plan.proposals, trials },
      deps(),
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).code).toBe('GENERATION_FAILED');
    return error as AgentError;
  }

  it('fails the stage with every reason when a whole generation fails', async () => {
    const error = await failedGeneration('reward-allfail', (run, plan) => completeTrials(run.runUri, plan, { fail: plan.proposals.map((p) => p.trialId) }));

    expect(error.message).toContain('loss diverged');
  });

  it('says a generation went unplaced for want of GPU capacity, and how to get it, when the queue cancelled every trial', async () => {
    // What the Trials iterator reports for a job cancelled in RUNNABLE: no result file, the project's error name.
    const error = await failedGeneration('reward-nogpu', async (run, plan) =>
      plan.proposals.map((p) => ({
        trialId: p.trialId,
        status: 'failed' as const,
        error: 'Agentflow.GpuCapacity',
        resultUri: trialResultUri(run.runUri, p.trialId),
      })),
    );

    expect(error.message).toMatch(
      /Agentflow\.GpuCapacity: its GPU job waited in RUNNABLE past the job queue's limit without starting and was cancelled: .*"All G and VT Spot Instance Requests"/,
    );
    expect(error.message).not.toContain('crashed or killed');
  });

  it('freezes a searched dimension whose effect on past rewards was below its noise at its best value, and keeps searching one that moved the reward', async () => {
    const project = 'plan-search-space';
    const { rewards, runLog } = deps();
    // A past run: reward climbs with log weight decay; width only adds noise.
    let trial = 0;
    for (let generation = 1; generation <= 3; generation += 1) {
      for (let i = 0; i < 8; i += 1) {
        const weightDecay = 10 ** (-6 + (4 * ((i * 3 + generation) % 8)) / 7);
        const width = [64, 128, 256, 512][(i + generation) % 4];
        const noise = ((trial * 7919) % 13) / 13 - 0.5;
        const reward = 0.6 + 0.02 * Math.log10(weightDecay) + 0.002 * noise;
        const row: TrialRow = {
          generation,
          status: 'succeeded',
          phase: 'tuning',
          lambda: { spam: 1, stars: 1 },
          hyperparameters: { weightDecay, width },
          reward,
        };
        await rewards.recordTrial(project, 'run-past', `t${trial++}`, row);
      }
    }
    const run = await preparedRun(project, { search: [{ name: 'weightDecay' }, { name: 'width' }] });

    const plan = await planRun(run.planInput, deps());

    const events = await runLog.listRunEvents(project, run.runId);
    const decisions = (
      events.find((e) => e.eventKey === 'plan')!.detail as {
        decisions: { decision: string; value: { searched: string[]; frozen: Record<string, number> }; reason: string }[];
      }
    ).decisions;
    const decision = decisions.find((d) => d.decision === 'search space')!;
    expect(decision.value.searched).toEqual(['weightDecay']);
    expect(Object.keys(decision.value.frozen)).toEqual(['width']);
    expect(decision.reason).toMatch(
      /weightDecay: effect 0\.0[78]\d* ± .* over 24 trials, searched; width: effect .* over 24 trials, below its noise, frozen at (64|128|256|512)/,
    );
    const frozenWidth = decision.value.frozen.width;
    expect(plan.proposals.every((p) => p.hyperparameters?.width === frozenWidth)).toBe(true);
    expect(new Set(plan.proposals.map((p) => p.hyperparameters?.weightDecay)).size).toBe(plan.proposals.length);

    // The run report shows each dimension's effect and what Plan did with it.
    const { html } = await buildRunReport(deps(), { project, runId: run.runId });
    const section = /<h2>Search space<\/h2>[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
    expect(section).toMatch(/<td><strong>weightDecay<\/strong><\/td><td>\+0\.0[78]\d*<\/td><td>0\.000\d<\/td><td>24<\/td><td>searched<\/td>/);
    expect(section).toContain(`<td><strong>width</strong></td>`);
    expect(section).toContain(`<td>frozen at ${frozenWidth}</td>`);
  });

  it('searches every dimension of tuning.search on a project without history', async () => {
    const run = await preparedRun('plan-search-fresh', { search: [{ name: 'depth' }] });
    const plan = await planRun(run.planInput, deps());
    expect(plan.proposals.every((p) => [1, 2, 3].includes(p.hyperparameters!.depth))).toBe(true);
    const events = await deps().runLog.listRunEvents('plan-search-fresh', run.runId);
    const decisions = (events.find((e) => e.eventKey === 'plan')!.detail as { decisions: { decision: string; reason: string }[] }).decisions;
    expect(decisions.find((d) => d.decision === 'search space')?.reason).toMatch(/depth: 0 varied trials, too few to judge, searched/);
  });

  it('lets the next run of the project warm-start from the stored policy', async () => {
    const project = 'reward-warm';
    const first = await preparedRun(project, { generations: 1 });
    const plan = await planRun(first.planInput, deps());
    const trials = await completeTrials(first.runUri, plan);
    await rewardGeneration(
      { runId: first.runId, project, runUri: first.runUri, manifestUri: first.planInput.manifestUri, generation: 1, proposals: plan.proposals, trials },
      deps(),
    );
    const second = await preparedRun(project, { generations: 1 });

    await planRun(second.planInput, deps());

    const events = await deps().runLog.listRunEvents(project, second.runId);
    const decisions = events.find((e) => e.eventKey === 'plan')?.detail.decisions as { decision: string; value: unknown; reason: string }[];
    const policy = decisions.find((d) => d.decision === 'policy');
    expect(policy?.value).toBe('warm-start');
    expect(policy?.reason).toContain(first.runId);
  });
});

describe('Screening', () => {
  const twoByTwo: Partial<SpecInput> = {
    baseModel: [
      { kind: 'features', dimension: 4 },
      { kind: 'features', dimension: 4 },
    ],
    model: { architecture: ['shared-bottom', 'mmoe'] },
  };

  it('halves four candidates in two short rounds, records the evidence, then tunes λ for the winner only', async () => {
    const project = 'screen-loop';
    const run = await preparedRun(project, { generations: 2, screening: { trialEpochs: 2 } }, twoByTwo);
    const { runLog, rewards } = deps();
    const reward = (generation: number, proposals: Proposal[], trials: TrialOutcome[]) =>
      rewardGeneration({ runId: run.runId, project, runUri: run.runUri, manifestUri: run.planInput.manifestUri, generation, proposals, trials }, deps());

    const plan = await planRun(run.planInput, deps());

    expect(plan.proposals.map((p) => [p.trialId, p.maxEpochs, p.lambda])).toEqual([
      ['screen-r1-e0-shared-bottom', 2, { spam: 1, stars: 1 }],
      ['screen-r1-e0-mmoe', 2, { spam: 1, stars: 1 }],
      ['screen-r1-e1-shared-bottom', 2, { spam: 1, stars: 1 }],
      ['screen-r1-e1-mmoe', 2, { spam: 1, stars: 1 }],
    ]);
    const planEvent = (await runLog.listRunEvents(project, run.runId)).find((e) => e.eventKey === 'plan');
    const decisions = planEvent?.detail.decisions as { decision: string; value: unknown; reason: string }[];
    expect(decisions.find((d) => d.decision === 'screening')).toMatchObject({ value: { rounds: 2, trialEpochs: 2 } });
    expect(decisions.find((d) => d.decision === 'budget')?.reason).toMatch(/^2 screening generations first, then 2 generations of 4 trials/);

    const round1 = await completeTrials(run.runUri, plan);
    const out1 = await reward(1, plan.proposals, round1);
    expect(await reward(1, plan.proposals, round1)).toEqual(out1);

    expect(out1.proposals.map((p) => [p.trialId, p.maxEpochs])).toEqual([
      ['screen-r2-e1-shared-bottom', 4],
      ['screen-r2-e1-mmoe', 4],
    ]);
    expect(out1.maxConcurrency).toBe(2);

    const round2 = await completeTrials(run.runUri, { generation: 2, proposals: out1.proposals, maxConcurrency: 2 });
    const out2 = await reward(2, out1.proposals, round2);

    expect(out2.done).toBe(false);
    expect(out2.proposals).toHaveLength(4);
    for (const proposal of out2.proposals) {
      expect(proposal).toMatchObject({ encoderId: 'e1', architecture: 'mmoe' });
      expect(proposal.maxEpochs).toBeUndefined();
    }
    const screening = (await runLog.listRunEvents(project, run.runId)).find((e) => e.eventKey === 'screening')?.detail;
    expect(screening?.winner).toEqual({ encoderId: 'e1', architecture: 'mmoe' });
    const rounds = screening?.rounds as { round: number; results: { candidate: { encoderId: string; architecture: string }; reward: number | null }[] }[];
    expect(rounds.map((r) => r.results.length)).toEqual([4, 2]);
    expect(rounds[0].results.every((r) => typeof r.reward === 'number')).toBe(true);
    expect(await rewards.getPolicy(project)).toBeUndefined();

    const tuning1 = await completeTrials(run.runUri, { generation: 3, proposals: out2.proposals, maxConcurrency: 3 });
    const out3 = await reward(3, out2.proposals, tuning1);
    expect(out3).toMatchObject({ done: false, generation: 4 });
    const tuning2 = await completeTrials(run.runUri, { generation: 4, proposals: out3.proposals, maxConcurrency: 3 });
    const out4 = await reward(4, out3.proposals, tuning2);

    expect(out4.done).toBe(true);
    const rows = await rewards.listTrials<TrialRow>(project, run.runId);
    expect(rows).toHaveLength(4 + 2 + 4 + 4);
    expect(rows.filter((r) => r.row.phase === 'screening')).toHaveLength(6);
    const winners = rows.filter((r) => r.row.encoderId === 'e1' && r.row.architecture === 'mmoe' && r.row.reward !== null);
    const best = winners.sort((a, b) => b.row.reward! - a.row.reward!)[0];
    expect(out4.bestTrialId).toBe(best.trialId);
    expect((await rewards.getPolicy<StoredPolicy>(project))?.state).toMatchObject({ runId: run.runId, generation: 4 });
  });

  it('tunes the first candidate without screening when the spec turns screening off', async () => {
    const run = await preparedRun('screen-off', { screening: { enabled: false } }, twoByTwo);

    const plan = await planRun(run.planInput, deps());

    expect(plan.proposals).toHaveLength(4);
    expect(plan.proposals.every((p) => p.encoderId === undefined && p.maxEpochs === undefined)).toBe(true);
    const events = await deps().runLog.listRunEvents('screen-off', run.runId);
    const decisions = events.find((e) => e.eventKey === 'plan')?.detail.decisions as { decision: string; reason: string }[];
    expect(decisions.find((d) => d.decision === 'screening')?.reason).toMatch(/enabled is false/);
  });
});
