import * as z from 'zod';
/**
 * The whole pipeline on this machine, end to end: the real state machine definition, the real
 * stage handlers in-process (Prepare, Plan, Reward, Export, Promote), and the real Embed and trial
 * jobs in warm job workers, over dynalite and s3rver. The data is generated with conflicting tasks,
 * so the task weights matter. One trial job is made to crash the way a Batch container does when
 * it is killed (no result file, non-zero exit), taking its worker with it: a fault the local
 * services cannot produce, injected through the job host, never through a hook in product code.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationStateDocument, agentKeys, type StoredPolicy } from '#lib/pipeline/plan/state.ts';
import { type TrialRow } from '#lib/pipeline/reward/reward.ts';
import { configToEnv } from '#lib/adapters/config/index.ts';
import { JobWorkerPool, openLocalSession, stageRunInputs, warmLocalJobs, type JobWorkerStats, type LocalSession } from '#lib/adapters/local/index.ts';
import type { SpecInput } from '#lib/domain/spec/index.ts';
import { createStageHandlers } from '#lib/pipeline/handlers.ts';
import { generateMultiTask, type MultiTaskDataset } from '#lib/domain/synth/index.ts';
import { createTuner, type AnyTunerState, type TrialResult } from '#lib/domain/tune/index.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { runLocalWorkflow, type LocalWorkflowResult } from '#lib/adapters/local/workflow.ts';
import { TrialJobResult, trialResultUri, WorkflowOutput } from '#lib/pipeline/index.ts';
import { featuresSpecInput } from './helpers/specs.ts';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIM = 8;
/** PGPE's first generation, second trial (μ − ε of the first pair): the one whose job is killed. */
const CRASHING_TRIAL = 's0-g0-t1';

/** Rows as a `features` dataset: the vector under `features`, each task's label under its name. */
function featuresJsonl(data: MultiTaskDataset): string {
  const lines: string[] = [];
  for (let r = 0; r < data.rows; r += 1) {
    const row: Record<string, unknown> = { features: Array.from(data.features.subarray(r * DIM, (r + 1) * DIM), (v) => Math.round(v * 1e4) / 1e4) };
    for (const task of data.tasks) {
      if (data.masks[task.name][r] === 0) continue;
      const label = data.labels[task.name][r];
      row[task.name] = task.type === 'regression' ? Math.round(label * 1e4) / 1e4 : label;
    }
    lines.push(JSON.stringify(row));
  }
  return `${lines.join('\n')}\n`;
}

function specFor(project: string, overrides: Partial<SpecInput> = {}): SpecInput {
  return featuresSpecInput({
    project,
    dimension: DIM,
    tasks: [
      { name: 'clicked', type: 'binary' },
      { name: 'bought', type: 'binary' },
      { name: 'spend', type: 'regression', metric: 'rmse' },
    ],
    model: { hidden: [16], towerHidden: [8] },
    training: { epochs: 3, batchSize: 64, learningRate: 5e-3, warmupSteps: 5 },
    tuning: { strategy: 'pgpe', generations: 2, population: 4, maxConcurrency: 2 },
    ...overrides,
  });
}

/** The real job host, but the trial named by AGENTFLOW_TEST_CRASH_TRIAL kills its worker (see the fixture). */
const CRASHING_HOST = [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'test', 'fixtures', 'jobs', 'crashingHost.ts')];

let session: LocalSession;
let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-pipeline-'));
  session = await openLocalSession({ dir: join(folder, 'aws') });
});

afterAll(async () => {
  await session?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

/**
 * What `runPipelineLocally` does, with the job host replaced when a trial must crash: it takes no
 * `jobs` option, so the test stages the inputs and runs the workflow itself with the same handlers
 * and environment. Returns the workers' counts too.
 */
async function runPipeline(
  spec: SpecInput,
  runId: string,
  options: { crashTrial?: string } = {},
): Promise<{ result: LocalWorkflowResult; workers: JobWorkerStats }> {
  const specPath = join(folder, `${runId}.spec.json`);
  await writeFile(specPath, JSON.stringify(spec));
  const staged = await stageRunInputs(specPath, runId, session.deps.store);
  const workers = options.crashTrial ? new JobWorkerPool({ command: CRASHING_HOST }) : session.workers;
  const jobOutput: string[] = [];
  try {
    const result = await runLocalWorkflow({
      input: { runId, project: staged.spec.project, specUri: staged.specUri },
      handlers: createStageHandlers(session.deps, { trigger: 'test' }),
      jobs: warmLocalJobs(workers),
      env: {
        ...configToEnv(session.aws.config),
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        AGENTFLOW_INTRA_OP_THREADS: '1',
        ...(options.crashTrial ? { AGENTFLOW_TEST_CRASH_TRIAL: options.crashTrial } : {}),
      },
      onJobOutput: (line) => jobOutput.push(`${line.jobName} ${line.stream}: ${line.line}`),
      timeoutMs: 170_000,
      cwd: REPO_ROOT,
    });
    if (result.status !== 'SUCCEEDED') throw new Error(`run ${runId} ${result.status}: ${result.error}: ${result.cause}\n${jobOutput.slice(-30).join('\n')}`);
    return { result, workers: workers.stats() };
  } finally {
    if (workers !== session.workers) await workers.close();
  }
}

describe('the pipeline, run locally with real trial jobs', () => {
  beforeAll(async () => {
    const data = generateMultiTask({
      rows: 900,
      dim: DIM,
      seed: 5,
      conflict: 0.9,
      missingLabelRate: 0.05,
      tasks: [
        { name: 'clicked', type: 'binary' },
        { name: 'bought', type: 'binary' },
        { name: 'spend', type: 'regression' },
      ],
    });
    await writeFile(join(folder, 'train.jsonl'), featuresJsonl(data));
  });

  it('tunes through two generations around a crashed trial, then registers, promotes and stores the policy', { timeout: 180_000 }, async () => {
    const project = 'pipeline-e2e';
    const runId = 'run-e2e-1';
    const { store, registry, runLog, rewards } = session.deps;

    const { result, workers } = await runPipeline(specFor(project), runId, { crashTrial: CRASHING_TRIAL });

    const output = WorkflowOutput.parse(result.output);
    // Embed's worker runs trials too; two at a time make a second; the crash costs one, replaced once.
    expect(workers).toMatchObject({ started: 3, alive: 2 });
    const rows = await rewards.listTrials<TrialRow>(project, runId);
    expect(rows).toHaveLength(8);
    expect(new Set(rows.map((r) => r.row.generation))).toEqual(new Set([1, 2]));
    const crashed = rows.find((r) => r.trialId === CRASHING_TRIAL)?.row;
    expect(crashed).toMatchObject({ status: 'failed', reward: null, generation: 1 });
    expect(crashed?.error).toMatch(/States\.TaskFailed/);
    expect(crashed?.error).toMatch(/without writing its result/);
    const succeeded = rows.filter((r) => r.trialId !== CRASHING_TRIAL);
    for (const { row } of succeeded) {
      expect(row.status).toBe('succeeded');
      expect(Number.isFinite(row.reward)).toBe(true);
      expect(Object.keys(row.metrics ?? {}).sort()).toEqual(['bought', 'clicked', 'spend']);
    }

    // The best trial is the one with the highest logged reward, and it is the one exported.
    const bestReward = Math.max(...succeeded.map((r) => r.row.reward!));
    expect(output.plan).toMatchObject({ done: true, generation: 2 });
    expect(rows.find((r) => r.trialId === output.plan.bestTrialId)?.row.reward).toBe(bestReward);
    const events = await runLog.listRunEvents(project, runId);
    expect(events.find((e) => e.eventKey === 'tuning-done')?.detail).toMatchObject({ bestTrialId: output.plan.bestTrialId, bestReward, generations: 2 });

    // Registered and promoted: no champion yet, so the if-better gate promotes the first version.
    expect(output.promotion).toMatchObject({ version: 1, promoted: true, alias: 'production' });
    expect(await registry.getAlias(project, 'production')).toMatchObject({ version: 1 });
    expect(await store.exists(output.exported.modelUri)).toBe(true);
    expect((await runLog.getRun(project, runId)).status).toBe('succeeded');

    // The crashed trial is left out of the update: PGPE drops its whole pair, so the stored second
    // generation is exactly the update on the other three results, and not the one it would be
    // had the crashed trial scored.
    const first = await store.getJson(agentKeys.generation(runId, 1), GenerationStateDocument);
    const second = await store.getJson(agentKeys.generation(runId, 2), GenerationStateDocument);
    const rewardOf = (trialId: string) => rows.find((r) => r.trialId === trialId)!.row.reward;
    const tuner = createTuner({ kind: 'pgpe' });
    const update = (results: TrialResult[]) => tuner.propose(tuner.update(first.tuner as never, results)).state as AnyTunerState;
    const logged = first.proposals.map((p) => ({ trialId: p.trialId, reward: rewardOf(p.trialId) }));
    expect(second.tuner).toEqual(update(logged));
    const pretendScored = logged.map((r) => (r.trialId === CRASHING_TRIAL ? { ...r, reward: bestReward } : r));
    expect((update(pretendScored) as { mu: number[] }).mu).not.toEqual((second.tuner as { mu: number[] }).mu);

    // The policy is stored for the next run, with the crashed trial in its history as failed.
    const policy = await rewards.getPolicy<StoredPolicy>(project);
    expect(policy?.state).toMatchObject({ runId, generation: 2, tuner: { kind: 'pgpe' } });
    expect(policy?.state.tuner.history.find((h) => h.trialId === CRASHING_TRIAL)).toMatchObject({ reward: null, generation: 0 });
    expect(policy?.state.tuner.history).toHaveLength(8);
  });

  it('screens two architectures with short real trials, then tunes and exports the winner', { timeout: 180_000 }, async () => {
    const project = 'pipeline-screen';
    const runId = 'run-screen-1';
    const { store, runLog, rewards } = session.deps;
    const spec = specFor(project, {
      model: { architecture: ['shared-bottom', 'mmoe'], hidden: [16], towerHidden: [8], experts: 2, expertHidden: 8 },
      tuning: { strategy: 'pgpe', generations: 1, population: 2, maxConcurrency: 2, screening: { trialEpochs: 1 } },
    });

    const { result } = await runPipeline(spec, runId);

    const output = WorkflowOutput.parse(result.output);
    const screening = (await runLog.listRunEvents(project, runId)).find((e) => e.eventKey === 'screening')?.detail as {
      winner: { encoderId: string; architecture: string };
      rounds: { maxEpochs: number; results: { trialId: string; reward: number | null }[] }[];
    };
    expect(screening.rounds).toHaveLength(1);
    expect(screening.rounds[0].maxEpochs).toBe(1);
    const screened = screening.rounds[0].results;
    expect(screened.map((r) => r.trialId)).toEqual(['screen-r1-e0-shared-bottom', 'screen-r1-e0-mmoe']);
    const winnerTrial = screened.reduce((a, b) => (b.reward! > a.reward! ? b : a));
    expect(winnerTrial.trialId).toBe(`screen-r1-e0-${screening.winner.architecture}`);

    // Screening trials really trained the named architecture for one epoch; tuning trials the winner, for the spec's epochs.
    for (const { trialId } of screened) {
      const training = await store.getJson(keys.trialFile(runId, trialId, 'training.json'), z.looseObject({ architecture: z.string(), epochsRun: z.number() }));
      expect(training).toMatchObject({ architecture: trialId.replace('screen-r1-e0-', ''), epochsRun: 1 });
    }
    const rows = await rewards.listTrials<TrialRow>(project, runId);
    const tuning = rows.filter((r) => r.row.phase === 'tuning');
    expect(tuning).toHaveLength(2);
    for (const { trialId, row } of tuning) {
      expect(row).toMatchObject({ status: 'succeeded', generation: 2, encoderId: 'e0', architecture: screening.winner.architecture });
      const trial = await store.getJson(trialResultUri(output.prepared.runUri, trialId), TrialJobResult);
      expect(trial).toMatchObject({ status: 'succeeded', encoderId: 'e0', architecture: screening.winner.architecture });
    }
    const winnerRows = rows.filter((r) => r.row.architecture === screening.winner.architecture);
    expect(rows.find((r) => r.trialId === output.plan.bestTrialId)?.row.reward).toBe(Math.max(...winnerRows.map((r) => r.row.reward!)));
    expect(output.promotion).toMatchObject({ version: 1, promoted: true });
  });
});
