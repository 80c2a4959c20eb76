import * as z from 'zod';
import { describe, expect, it } from 'vitest';

import { configToEnv } from '#lib/adapters/config/index.ts';
import type { RunManifest } from '#lib/domain/run/index.ts';
import { ShardWriter, SPLITS, type ShardTask } from '#lib/domain/shards/index.ts';
import { parseSpec, type SpecInput } from '#lib/domain/spec/index.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { generateMultiTask } from '#lib/domain/synth/index.ts';
import { checkParity, exportHeads, trainingForward } from '#lib/domain/train/index.ts';
import { loadTrialWeights } from '#lib/pipeline/trials/weights.ts';
import { executionProvidersFor, intraOpThreadsFrom, runTrialJob, shardUri } from '#lib/pipeline/trials/trialJob.ts';
import { launchLocalJob, type JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import { JobWorkerPool } from '#lib/adapters/local/jobWorkers.ts';
import { jobHostCommand, localJobCommands } from '#lib/adapters/local/localRun.ts';
import { TrialJobResult, trialResultUri, type TrialJob } from '#lib/pipeline/contracts.ts';
import { useLocalAws } from './helpers/localAws.ts';
import { featuresSpecInput } from './helpers/specs.ts';

const aws = useLocalAws();
const DIM = 8;
const TASKS: ShardTask[] = [
  { name: 'spam', type: 'binary' },
  { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c'] },
  { name: 'score', type: 'regression' },
];
const SPEC_INPUT: SpecInput = featuresSpecInput({
  dimension: DIM,
  datasets: { train: 's3://agentflow-local/datasets/demo/train.jsonl' },
  tasks: [
    { name: 'spam', type: 'binary' },
    { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c'] },
    { name: 'score', type: 'regression', metric: 'mae' },
  ],
  model: { hidden: [24], towerHidden: [8] },
  training: { epochs: 3, batchSize: 64, learningRate: 5e-3, warmupSteps: 5 },
});

function store(): ArtifactStore {
  return new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket });
}

/** Writes a run's manifest and its encoder's train/validation/holdout shards through ShardWriter into s3rver. */
async function prepareRun(
  runId: string,
  options: { unlabelledValidation?: string } = {},
): Promise<{ manifestUri: string; featuresUri: string; runUri: string }> {
  const s = store();
  const data = generateMultiTask({ rows: 1400, dim: DIM, tasks: TASKS, seed: 13, missingLabelRate: 0.1 });
  const featuresDigest = `digest-${runId}`;
  const featuresUri = s.uri(keys.featuresPrefix(featuresDigest));
  const ranges = { train: [0, 1000], validation: [1000, 1200], holdout: [1200, 1400] } as const;
  for (const split of SPLITS) {
    const [from, to] = ranges[split];
    const writer = new ShardWriter({ dim: DIM, tasks: TASKS, encoderDigest: 'sha256:e0' });
    const upload = s.putStream(shardUri(featuresUri, 'e0', split), writer.output!);
    // Several record batches, so the reader streams rather than reading one block.
    for (let start = from; start < to; start += 300) {
      const end = Math.min(to, start + 300);
      const masks = Object.fromEntries(Object.entries(data.masks).map(([t, m]) => [t, m.slice(start, end)]));
      if (split === 'validation' && options.unlabelledValidation) masks[options.unlabelledValidation].fill(0);
      await writer.writeRows({
        rows: end - start,
        features: data.features.slice(start * DIM, end * DIM),
        labels: Object.fromEntries(Object.entries(data.labels).map(([t, v]) => [t, v.slice(start, end)])),
        masks,
        rowIndex: Int32Array.from({ length: end - start }, (_, i) => start + i),
      });
    }
    await writer.finish();
    await upload;
  }
  const spec = parseSpec(SPEC_INPUT);
  const manifest: RunManifest = {
    manifestVersion: 1,
    runId,
    project: 'demo',
    specUri: s.uri('datasets/demo/spec.json'),
    specDigest: 'spec-digest',
    spec,
    datasets: [],
    split: spec.split,
    encoders: [{ id: 'e0', kind: 'features', uri: s.uri(`runs/${runId}/encoders/e0.onnx`), sha256: 'e0-sha', dimension: DIM, summary: {} }],
    featuresDigest,
  };
  const stored = await s.putJson(keys.runManifest(runId), manifest);
  return { manifestUri: stored.uri, featuresUri, runUri: s.uri(keys.runPrefix(runId).slice(0, -1)) };
}

function jobFor(
  run: { manifestUri: string; featuresUri: string; runUri: string },
  runId: string,
  trialId: string,
  proposal: Partial<TrialJob['proposal']> = {},
): TrialJob {
  return {
    runId,
    project: 'demo',
    generation: 1,
    proposal: { trialId, lambda: { spam: 1, topic: 1, score: 1 }, ...proposal },
    manifestUri: run.manifestUri,
    featuresUri: run.featuresUri,
    outputUri: trialResultUri(run.runUri, trialId),
  };
}

describe('runTrialJob', () => {
  it('trains from the shards in S3 and writes weights, training history and a valid TrialJobResult', async () => {
    const runId = 'run-inproc';
    const run = await prepareRun(runId);
    const lines: string[] = [];
    const job = jobFor(run, runId, 't-1', { learningRate: 8e-3 });

    const result = await runTrialJob(job, { store: store(), log: (line) => lines.push(line), intraOpNumThreads: 1 });

    expect(result.status).toBe('succeeded');
    if (result.status !== 'succeeded') return;
    expect(TrialJobResult.parse(await store().getJson(job.outputUri, z.unknown()))).toEqual(result);
    expect(result.weightsUri).toBe(store().uri(keys.trialFile(runId, 't-1', 'weights.bin')));
    expect(result.durationMs).toBeGreaterThan(0);
    expect(Object.keys(result.metrics).sort()).toEqual(['score', 'spam', 'topic']);
    expect(result.metrics.spam.auc).toBeGreaterThan(0.8);
    expect(result.metrics.score.mae).toBeLessThan(result.metrics.score.labelMad);
    expect(result.metrics.score.labelStd).toBeGreaterThan(0);
    expect(lines[0]).toMatch(
      /^trial t-1: generation 1, encoder e0 \(dim 8\), shared-bottom, weighting fixed, λ spam=1 topic=1 score=1, lr 0.008(, \d+ epochs)?, device cpu$/,
    );
    expect(lines.filter((l) => /epoch \d\/3 step \d+ train loss spam=.* \| validation spam\{auc=.*\} .* \| objective /.test(l))).toHaveLength(3);
    const training = await store().getJson(
      keys.trialFile(runId, 't-1', 'training.json'),
      z.looseObject({ history: z.array(z.unknown()), epochsRun: z.number() }),
    );
    expect(training.history).toHaveLength(training.epochsRun);

    // The Export stage reads the weights back and exports heads that match the trainer.
    const weights = await loadTrialWeights(store(), result.weightsUri);
    expect(weights.architecture).toBe('shared-bottom');
    const spec = parseSpec(SPEC_INPUT);
    const model = exportHeads({ spec, encoder: { id: 'e0', dimension: DIM }, weights });
    const batch = { features: generateMultiTask({ rows: 50, dim: DIM, tasks: TASKS, seed: 99 }).features, rows: 50 };
    expect((await checkParity(model, await trainingForward({ spec, weights, batch }), { batch })).maxAbsDiff).toBeLessThanOrEqual(1e-5);
  });

  it('keeps the result of an earlier attempt with the same proposal instead of training again (resume)', async () => {
    const runId = 'run-resume';
    const run = await prepareRun(runId);
    const job = jobFor(run, runId, 't-r', { learningRate: 8e-3 });
    const first = await runTrialJob(job, { store: store(), intraOpNumThreads: 1 });
    const lines: string[] = [];

    const again = await runTrialJob(job, { store: store(), log: (line) => lines.push(line), intraOpNumThreads: 1 });
    const changed = await runTrialJob(jobFor(run, runId, 't-r', { learningRate: 4e-3 }), {
      store: store(),
      log: (line) => lines.push(line),
      intraOpNumThreads: 1,
    });

    expect(again).toEqual(first);
    expect(lines[0]).toMatch(/already succeeded in an earlier attempt/);
    expect(lines.some((line) => /epoch \d\/3/.test(line))).toBe(true);
    expect(changed.status === 'succeeded' && changed.proposal.learningRate).toBe(4e-3);
  });

  it('writes a failed result naming task, epoch and step when the trial diverges', async () => {
    const runId = 'run-diverge';
    const run = await prepareRun(runId);
    const job = jobFor(run, runId, 't-nan', { learningRate: 1e12 });

    const result = await runTrialJob(job, { store: store() });

    expect(result.status).toBe('failed');
    if (result.status !== 'failed') return;
    expect(result.reason).toMatch(/^DIVERGED: (task "\w+": loss .* is not finite|the weighted total loss .* is not finite) at epoch 1, step \d+/);
    expect(TrialJobResult.parse(await store().getJson(job.outputUri, z.unknown()))).toEqual(result);
    expect(await store().exists(keys.trialFile(runId, 't-nan', 'weights.bin'))).toBe(false);
  });

  it('fails cleanly when a task has no labelled validation rows', async () => {
    const runId = 'run-nolabels';
    const run = await prepareRun(runId, { unlabelledValidation: 'topic' });
    const result = await runTrialJob(jobFor(run, runId, 't-x'), { store: store(), maxEpochs: 1 });
    expect(result).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^NO_LABELS: task "topic" has no labelled rows in the validation split/) });
  });

  it('maps AGENTFLOW_DEVICE to execution providers and AGENTFLOW_INTRA_OP_THREADS to a thread count, refusing bad values', () => {
    expect(executionProvidersFor(undefined)).toEqual(['cpu']);
    expect(executionProvidersFor('CUDA')).toEqual(['cuda']);
    expect(() => executionProvidersFor('tpu')).toThrow(/AGENTFLOW_DEVICE="tpu" is not a device; set it to "cpu" or "cuda"/);
    expect(intraOpThreadsFrom(undefined)).toBeUndefined();
    expect(intraOpThreadsFrom('4')).toBe(4);
    expect(() => intraOpThreadsFrom('two')).toThrow(/AGENTFLOW_INTRA_OP_THREADS="two" is not a positive integer/);
  });
});

/** The trial job as a fresh process, as local runs launch it with `jobProcesses: 'fresh'`. */
const TRIAL_COMMAND = localJobCommands().trial.command;

/** The trial job's environment as the workflow sets it: the config, the job's variables, one ONNX Runtime thread. */
const trialEnvFor = (job: TrialJob) => ({
  ...configToEnv(aws.config),
  AGENTFLOW_RUN_ID: job.runId,
  AGENTFLOW_PROJECT: job.project,
  AGENTFLOW_GENERATION: String(job.generation),
  AGENTFLOW_TRIAL_ID: job.proposal.trialId,
  AGENTFLOW_PROPOSAL: JSON.stringify(job.proposal),
  AGENTFLOW_MANIFEST_URI: job.manifestUri,
  AGENTFLOW_FEATURES_URI: job.featuresUri,
  AGENTFLOW_OUTPUT_URI: job.outputUri,
  AGENTFLOW_INTRA_OP_THREADS: '1',
});

describe('functions/jobs/trial.ts as a child process', () => {
  it('runs with the environment the workflow sets, prints progress and writes its result', async () => {
    const runId = 'run-child';
    const run = await prepareRun(runId);
    const job = jobFor(run, runId, 't-child');
    const output: JobOutputLine[] = [];

    await launchLocalJob({ command: TRIAL_COMMAND, env: trialEnvFor(job), jobName: 'trial-child', onOutput: (line) => output.push(line), timeoutMs: 120_000 });

    const result = TrialJobResult.parse(await store().getJson(job.outputUri, z.unknown()));
    expect(result.status).toBe('succeeded');
    expect(output.filter((l) => l.stream === 'stdout' && /epoch \d\/3 .* \| objective /.test(l.line))).toHaveLength(3);
  }, 120_000);

  it('exits non-zero after writing a failed result when the trial diverges', async () => {
    const runId = 'run-child-nan';
    const run = await prepareRun(runId);
    const job = jobFor(run, runId, 't-child-nan', { learningRate: 1e12 });

    const error = await launchLocalJob({ command: TRIAL_COMMAND, env: trialEnvFor(job), jobName: 'trial-nan', onOutput: () => {}, timeoutMs: 120_000 }).catch(
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(Error);
    expect(JSON.parse((error as Error).message)).toMatchObject({ Status: 'FAILED', Container: { ExitCode: 1 } });
    expect(TrialJobResult.parse(await store().getJson(job.outputUri, z.unknown()))).toMatchObject({
      status: 'failed',
      reason: expect.stringMatching(/^DIVERGED/),
    });
  }, 120_000);

  it('exits with 2 and says which variable is missing when the environment is incomplete', async () => {
    const { AGENTFLOW_MANIFEST_URI: _missing, ...env } = trialEnvFor(
      jobFor({ manifestUri: 's3://x/m', featuresUri: 's3://x/f/', runUri: 's3://x/runs/r' }, 'r', 't'),
    );
    const output: JobOutputLine[] = [];
    const error = await launchLocalJob({
      command: TRIAL_COMMAND,
      env: { ...env, AGENTFLOW_MANIFEST_URI: '' },
      jobName: 'trial-env',
      onOutput: (line) => output.push(line),
      timeoutMs: 60_000,
    }).catch((e: unknown) => e);
    expect(JSON.parse((error as Error).message)).toMatchObject({ Container: { ExitCode: 2 } });
    expect(output.some((l) => l.stream === 'stderr' && l.line.includes('AGENTFLOW_MANIFEST_URI'))).toBe(true);
  }, 60_000);
});

describe('the trial job in a warm job worker', () => {
  it('trains the same weights and metrics twice in one worker as in a fresh process', async () => {
    const runId = 'run-warm';
    const run = await prepareRun(runId);
    // The seed comes from the spec, not the trial id: three ids, one proposal, one expected result.
    const jobs = ['t-warm-1', 't-warm-2', 't-fresh'].map((trialId) => jobFor(run, runId, trialId, { learningRate: 4e-3 }));
    const trialVars = (job: TrialJob) => {
      const { AGENTFLOW_INTRA_OP_THREADS: _threads, ...vars } = trialEnvFor(job);
      return Object.fromEntries(Object.entries(vars).filter(([name]) => !(name in configToEnv(aws.config))));
    };
    const definitionEnv = { ...configToEnv(aws.config), AGENTFLOW_INTRA_OP_THREADS: '1' };
    const workers = new JobWorkerPool({ command: jobHostCommand() });
    try {
      const warm = [];
      for (const job of jobs.slice(0, 2)) {
        warm.push(
          await workers.run({ job: 'trial', jobName: job.proposal.trialId, definitionEnv, env: trialVars(job), onOutput: () => {}, timeoutMs: 120_000 }),
        );
      }
      expect(warm[1].workerPid).toBe(warm[0].workerPid);
    } finally {
      await workers.close();
    }
    await launchLocalJob({ command: TRIAL_COMMAND, env: trialEnvFor(jobs[2]), jobName: 't-fresh', onOutput: () => {}, timeoutMs: 120_000 });

    const results = await Promise.all(jobs.map(async (job) => TrialJobResult.parse(await store().getJson(job.outputUri, z.unknown()))));
    const weights = await Promise.all(results.map(async (result) => (result.status === 'succeeded' ? store().getBytes(result.weightsUri) : undefined)));
    expect(results.map((result) => result.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const metricsOf = (result: TrialJobResult) => (result.status === 'succeeded' ? result.metrics : undefined);
    expect(metricsOf(results[1])).toEqual(metricsOf(results[0]));
    expect(metricsOf(results[2])).toEqual(metricsOf(results[0]));
    expect(Buffer.from(weights[1]!).equals(Buffer.from(weights[0]!))).toBe(true);
    expect(Buffer.from(weights[2]!).equals(Buffer.from(weights[0]!))).toBe(true);
  }, 240_000);
});
