import * as z from 'zod';
/**
 * A live model outlives its run's scratch. In AWS the bucket's lifecycle rule deletes `runs/`
 * after 30 days, while the model it produced may serve for months: the monitor must still judge
 * its reward and drift and retrain it. Here a real pipeline runs on the embedded local AWS, then
 * everything under `runs/` is deleted, as the lifecycle rule would, and a monitor pass over served
 * and fed-back traffic computes drift and reward and starts a retraining run that really runs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configToEnv } from '#lib/adapters/config/index.ts';
import { readLiveModel } from '#lib/pipeline/export/liveModel.ts';
import { LiveModel } from '#lib/domain/run/index.ts';
import { createRng } from '#lib/domain/random/index.ts';
import { localJobCommands, openLocalSession, runPipelineLocally, type LocalSession } from '#lib/adapters/local/index.ts';
import { createServeContext, infer, runMonitor, type RetrainRequest } from '#lib/serve/index.ts';
import { parseSpec, type SpecInput } from '#lib/domain/spec/index.ts';
import { createStageHandlers } from '#lib/pipeline/handlers.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { runLocalWorkflow, type LocalWorkflowResult } from '#lib/adapters/local/workflow.ts';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIM = 8;
const PROJECT = 'longlived';
const quiet = { info() {}, warn() {}, error() {} };

let session: LocalSession;
let folder: string;

/** 600 rows: `clicked` is 1 when x0 + x1/2 > 0, so the model learns something and the holdout objective is high. */
function dataset(): string {
  const rng = createRng(11);
  const lines: string[] = [];
  for (let r = 0; r < 600; r += 1) {
    const features = Array.from({ length: DIM }, () => Math.round(rng.normal() * 1e4) / 1e4);
    lines.push(JSON.stringify({ features, clicked: features[0] + features[1] / 2 > 0 ? 1 : 0 }));
  }
  return `${lines.join('\n')}\n`;
}

const spec: SpecInput = {
  project: PROJECT,
  baseModel: { kind: 'features', dimension: DIM },
  datasets: { train: 'train.jsonl' },
  tasks: [{ name: 'clicked', type: 'binary' }],
  model: { hidden: [8] },
  training: { epochs: 2, batchSize: 64 },
  tuning: { strategy: 'pgpe', generations: 1, population: 2, maxConcurrency: 2 },
  monitor: { windowHours: 1, minRewardDrop: 0.05, psiThreshold: 0.2 },
};

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-live-model-'));
  session = await openLocalSession({ dir: join(folder, 'aws') });
  await writeFile(join(folder, 'train.jsonl'), dataset());
  await writeFile(join(folder, 'spec.json'), JSON.stringify(spec));
});

afterAll(async () => {
  await session?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

/** What the lifecycle rule on `runs/` does after 30 days. */
async function expireRunScratch(): Promise<number> {
  const { store, clients, config } = session.deps;
  const objects = await store.list('runs/');
  for (const object of objects) await clients.s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: object.key }));
  return objects.length;
}

/** Inputs shifted far from the training distribution, served at `atMs` with every record sampled for drift. */
async function serveShiftedTraffic(atMs: number): Promise<void> {
  const context = createServeContext(session.deps, {
    drift: { sampleRate: 1, batchRecords: 100 },
    clock: () => atMs,
    metricsSink: () => {},
    logger: quiet,
  });
  const rng = createRng(5);
  for (let sent = 0; sent < 300; sent += 50) {
    const records = Array.from({ length: 50 }, () => ({ features: Array.from({ length: DIM }, () => rng.normal() + 3) }));
    await infer({ project: PROJECT, records }, context);
  }
  await context.close();
}

/** Starts the retraining run the monitor asks for, from the spec it names, as the deployed monitor's StartExecution would. */
function startRunLocally(started: { request: RetrainRequest; result: LocalWorkflowResult }[]) {
  return async (request: RetrainRequest) => {
    const result = await runLocalWorkflow({
      input: { runId: request.runId, project: request.project, specUri: request.specUri! },
      handlers: createStageHandlers(session.deps, { trigger: request.trigger }),
      jobs: localJobCommands(),
      env: { ...configToEnv(session.aws.config), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      onJobOutput: () => {},
      cwd: REPO_ROOT,
    });
    started.push({ request, result });
    return { runId: request.runId };
  };
}

describe('a live model whose run scratch has expired', () => {
  it('is still monitored for reward and drift and retrained from what Export wrote beside it', { timeout: 600_000 }, async () => {
    const { store, registry, runLog, rewards } = session.deps;
    const first = await runPipelineLocally(session, { specPath: join(folder, 'spec.json'), onJobOutput: () => {} });
    expect(first.result.status).toBe('SUCCEEDED');
    const production = (await registry.getAlias(PROJECT, 'production'))!.version;

    // Export wrote what the live model needs under its own immutable keys.
    const live = (await readLiveModel(store, PROJECT, production))!;
    expect(LiveModel.parse(live)).toMatchObject({ project: PROJECT, version: production, runId: first.runId, monitor: spec.monitor });
    expect(live.spec.uri).toBe(store.uri(keys.modelFile(PROJECT, production, 'spec.json')));
    expect(live.spec.sourceUri).toBe(store.uri(keys.runFile(first.runId, 'spec.json')));
    expect(live.reference).toMatchObject({ uri: store.uri(keys.modelFile(PROJECT, production, 'reference.json')) });
    expect(live.datasets.map((d) => d.uri).every((uri) => uri.includes('/datasets/'))).toBe(true);

    expect(await expireRunScratch()).toBeGreaterThan(0);
    expect(await store.list('runs/')).toEqual([]);

    const now = Date.now();
    await serveShiftedTraffic(now);
    for (let i = 0; i < 40; i += 1) await rewards.recordFeedback(PROJECT, `expired-scratch-${i}`, 0, { version: production });

    const started: { request: RetrainRequest; result: LocalWorkflowResult }[] = [];
    const deps = session.deps;
    const report = await runMonitor(deps, {
      now: new Date(now),
      projects: [PROJECT],
      startRun: startRunLocally(started),
      logger: quiet,
      metricsSink: () => {},
    });

    const health = report.projects[0];
    expect(health.error).toBeUndefined();
    expect(health.monitor).toEqual(spec.monitor);
    const [version] = health.versions;
    expect(version.drift).toMatchObject({ samples: 300, referenceRows: expect.any(Number) });
    expect('maxPsi' in version.drift && version.drift.maxPsi).toBeGreaterThan(0.2);
    expect(version.reward).toMatchObject({ count: 40, mean: 0 });
    expect(version.breaches).toHaveLength(2);
    expect(health.retrain).toMatchObject({ started: true, alreadyClaimed: false });

    // The retraining run started from the spec kept with the version, and ran through.
    expect(started).toHaveLength(1);
    expect(started[0].request).toMatchObject({ project: PROJECT, trigger: 'reward', specUri: live.spec.uri });
    expect(parseSpec(await store.getJson(live.spec.uri, z.unknown())).project).toBe(PROJECT);
    expect(started[0].result.status).toBe('SUCCEEDED');
    expect(await runLog.getRun(PROJECT, started[0].request.runId)).toMatchObject({ status: 'succeeded' });
  });
});
