import { beforeAll, describe, expect, it } from 'vitest';
import type { CardTask } from '#lib/domain/run/index.ts';
import { ModelRegistry, RewardLog } from '#lib/adapters/registry/index.ts';
import { createRng, type Rng } from '#lib/domain/random/index.ts';
import {
  DriftReferenceSchema,
  DriftSampler,
  SampleBatch,
  ServeError,
  buildReference,
  createServeContext,
  driftOf,
  driftProjection,
  histogram,
  hourKey,
  infer,
  populationStabilityIndex,
  projectRows,
  projectionDirections,
  runMonitor,
  samplePrefix,
  type MonitorDependencies,
  type RetrainRequest,
} from '#lib/serve/index.ts';
import { driftSeed } from '#lib/serve/drift.ts';
import { ShardWriter } from '#lib/domain/shards/index.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { buildFeaturesModel, publishModel } from './helpers/servingModels.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
const DIMENSION = 8;
const TASKS: CardTask[] = [{ name: 'churn', type: 'binary', metric: 'auc' }];
const T0 = Date.UTC(2031, 4, 6, 10, 5);
const HOUR = 3_600_000;
const quiet = { info() {}, warn() {}, error() {} };

let deps: MonitorDependencies;
let registry: ModelRegistry;
let rewards: RewardLog;
let store: ArtifactStore;

const gaussianRows = (rng: Rng, rows: number, shift: number) => Float32Array.from({ length: rows * DIMENSION }, () => rng.normal() + shift);

/** The feature the tests with an embedded categorical column give the level index (the tabular encoder puts them last). */
const LEVEL_FEATURE = DIMENSION - 1;

/** `rows` with LEVEL_FEATURE set to a level index drawn by `level`, as a tabular encoder's embedded column would give it. */
function withLevels(rows: Float32Array, level: () => number): Float32Array {
  for (let offset = LEVEL_FEATURE; offset < rows.length; offset += DIMENSION) rows[offset] = level();
  return rows;
}

/** Level indices 1 … 1000, about evenly mixed, as in the holdout. */
const mixedLevels = (rng: Rng) => () => 1 + Math.floor(rng.uniform() * 1000);

/** A feature shard of 400 holdout rows ~ N(0, 1) and 300 train rows ~ N(5, 1), with a split column; with `levels`, LEVEL_FEATURE holds level indices 1 … 1000. */
async function writeHoldoutShard(digest: string, options: { levels?: boolean } = {}): Promise<void> {
  const rng = createRng(3);
  const writer = new ShardWriter({ dim: DIMENSION, tasks: [{ name: 'churn', type: 'binary' }], encoderDigest: 'enc', includeSplit: true });
  const chunks: Uint8Array[] = [];
  const collecting = (async () => {
    for await (const chunk of writer.output!) chunks.push(chunk as Uint8Array);
  })();
  for (const [rows, shift, split] of [
    [400, 0, 'holdout'],
    [300, 5, 'train'],
  ] as const) {
    await writer.writeRows({
      rows,
      features: options.levels ? withLevels(gaussianRows(rng, rows, shift), mixedLevels(rng)) : gaussianRows(rng, rows, shift),
      labels: { churn: new Float32Array(rows) },
      masks: { churn: new Uint8Array(rows).fill(1) },
      split: Array.from({ length: rows }, () => split),
    });
  }
  await writer.finish();
  await collecting;
  await store.putBytes(keys.features(digest, 'part-00000.arrow'), Buffer.concat(chunks));
}

/**
 * A served project: one version with a holdout objective, its run manifest's monitor thresholds,
 * and a feature shard. With `levels`, LEVEL_FEATURE holds level indices in the shard; with
 * `embedded` too, the card lists it as an embedded column's index feature, as Export writes it.
 */
async function project(name: string, options: { holdoutObjective?: number; levels?: boolean; embedded?: boolean } = {}): Promise<number> {
  const digest = `${name}-features`;
  await writeHoldoutShard(digest, { levels: options.levels ?? false });
  const built = buildFeaturesModel({ dimension: DIMENSION, tasks: TASKS, seed: 4 });
  const { model } = built;
  const encoder = options.embedded
    ? { ...built.encoder, categoryEmbeddings: [{ column: 'merchant', feature: LEVEL_FEATURE, levels: 1001, dimension: 4 }] }
    : built.encoder;
  const runId = `${name}-run`;
  const { version } = await publishModel({
    registry,
    store,
    project: name,
    runId,
    model,
    encoder,
    tasks: TASKS,
    holdoutObjective: options.holdoutObjective ?? 0.9,
    featuresDigest: digest,
  });
  await store.putJson(keys.runManifest(runId), {
    runId,
    specUri: `s3://${aws.config.bucket}/specs/${name}.json`,
    spec: { monitor: { windowHours: 1, minRewardDrop: 0.05, psiThreshold: 0.2 } },
  });
  await registry.setServingSet(name, { production: version, challengers: [] }, { expectedRevision: 0 });
  return version;
}

/** Serves `rows` records ~ N(shift, 1) at time `atMs`, sampling every record for drift; with `level`, LEVEL_FEATURE holds the level indices it draws. */
async function serveTraffic(name: string, options: { rows: number; shift: number; atMs: number; seed: number; level?: () => number }): Promise<void> {
  const context = createServeContext(
    { registry, rewards, store },
    { drift: { sampleRate: 1, batchRecords: 100 }, clock: () => options.atMs, metricsSink: () => {}, logger: quiet },
  );
  const rng = createRng(options.seed);
  for (let done = 0; done < options.rows; done += 50) {
    const features = options.level ? withLevels(gaussianRows(rng, 50, options.shift), options.level) : gaussianRows(rng, 50, options.shift);
    await infer(
      { project: name, records: Array.from({ length: 50 }, (_, i) => ({ features: Array.from(features.subarray(i * DIMENSION, (i + 1) * DIMENSION)) })) },
      context,
    );
  }
  await context.close();
}

async function feedback(name: string, version: number, rewardsGiven: number[], tag: string): Promise<void> {
  for (const [i, reward] of rewardsGiven.entries()) {
    await rewards.recordFeedback(name, `${tag}-${i}`, reward, { version });
  }
}

function recorder() {
  const calls: RetrainRequest[] = [];
  return { calls, startRun: async (request: RetrainRequest) => (calls.push(request), { runId: request.runId, executionArn: `arn:local:${request.runId}` }) };
}

beforeAll(() => {
  registry = new ModelRegistry({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
  rewards = new RewardLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.rewardTable });
  store = new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket });
  deps = { registry, rewards, store };
});

describe('population stability index', () => {
  it('is near zero for samples of the same distribution and large for a shifted one', () => {
    const rng = createRng(1);
    const projection = driftProjection({ dimension: DIMENSION });
    const reference = buildReference(projectRows(gaussianRows(rng, 2000, 0), projection), projection);
    expect(reference.proportions.every((bins) => Math.abs(bins.reduce((a, b) => a + b, 0) - 1) < 1e-9)).toBe(true);
    const same = Math.max(...driftOf(reference, projectRows(gaussianRows(rng, 1000, 0), projection)));
    const shifted = Math.max(...driftOf(reference, projectRows(gaussianRows(rng, 1000, 1), projection)));
    expect(same).toBeLessThan(0.05);
    expect(shifted).toBeGreaterThan(0.5);
  });

  it('bins values by the inner edges and sums (a − e)·ln(a/e)', () => {
    expect(histogram([-5, 0, 0.5, 1, 1.5, 9], [0, 1])).toEqual([1, 2, 3]);
    expect(populationStabilityIndex([0.5, 0.5], [0.5, 0.5])).toBe(0);
    expect(populationStabilityIndex([0.5, 0.5], [0.25, 0.75])).toBeCloseTo(0.25 * Math.log(0.5) * -1 + 0.25 * Math.log(1.5), 12);
  });
});

describe('projections without the category level indices', () => {
  const rng = createRng(7);
  const rows = withLevels(gaussianRows(rng, 50, 0), mixedLevels(rng));
  const projection = driftProjection({ dimension: DIMENSION, excludedFeatures: [LEVEL_FEATURE] });

  it('stay equal when only a level index changes, and change when a plain feature does', () => {
    const otherLevels = withLevels(rows.slice(), () => 900);
    const plainChanged = rows.slice();
    plainChanged[3 * DIMENSION] += 0.5;

    const projected = projectRows(rows, projection);
    expect(projectRows(otherLevels, projection)).toEqual(projected);
    const changed = projectRows(plainChanged, projection);
    expect(changed.filter((row, i) => row.some((value, k) => value !== projected[i][k])).length).toBe(1);
    expect(changed[3].every((value, k) => value !== projected[3][k])).toBe(true);
    // Counted in, the level index moves every projection of every row whose level changed.
    const all = driftProjection({ dimension: DIMENSION });
    const counted = projectRows(otherLevels, all);
    expect(projectRows(rows, all).every((row, i) => row.every((value, k) => value !== counted[i][k]))).toBe(true);
  });

  it('are those of a version whose encoder had only the other features', () => {
    const plainOnly = Float32Array.from({ length: 50 * LEVEL_FEATURE }, (_, j) => rows[Math.floor(j / LEVEL_FEATURE) * DIMENSION + (j % LEVEL_FEATURE)]);
    const narrower = driftProjection({ dimension: LEVEL_FEATURE });
    expect(projection).toMatchObject({ width: LEVEL_FEATURE, seed: narrower.seed, excludedFeatures: [LEVEL_FEATURE] });
    expect(projectRows(rows, projection)).toEqual(projectRows(plainOnly, narrower));
    expect(buildReference(projectRows(rows, projection), projection)).toMatchObject({
      dimension: DIMENSION,
      excludedFeatures: [LEVEL_FEATURE],
      seed: narrower.seed,
    });
  });

  it('leave nothing out for an encoder without embedded columns, as before there could be any', () => {
    const projection = driftProjection({ dimension: DIMENSION });
    expect(projection).toMatchObject({ width: DIMENSION, seed: driftSeed(DIMENSION), excludedFeatures: [], features: undefined });
    expect(projection.directions).toEqual(projectionDirections(DIMENSION));
    const reference = buildReference(projectRows(gaussianRows(createRng(2), 200, 0), projection), projection);
    expect(Object.keys(reference).sort()).toEqual(['dimension', 'edges', 'proportions', 'referenceVersion', 'rows', 'seed']);
  });

  it.each([
    [[DIMENSION], `drift cannot leave out feature ${DIMENSION}`],
    [[-1], 'drift cannot leave out feature -1'],
    [[2, 2], 'drift cannot leave out feature 2: the left-out features [2, 2] must be distinct positions 0 … 7'],
  ])('refuse left-out features %j, naming the feature and the fix', (excludedFeatures, message) => {
    const refuse = () => driftProjection({ dimension: DIMENSION, excludedFeatures });
    expect(refuse).toThrow(ServeError);
    expect(refuse).toThrow(message);
    expect(refuse).toThrow(/re-export the version/);
  });

  it('are not sampled for a card whose level-index features lie outside its encoder, said once and never thrown to the request', async () => {
    const errors: unknown[] = [];
    const sampler = new DriftSampler({ store, sampleRate: 1, batchRecords: 1, clock: () => T0, onError: (error) => errors.push(error) });
    const damaged = { dimension: DIMENSION, categoryEmbeddings: [{ feature: DIMENSION + 1 }] };
    sampler.offer('damaged-card', 1, rows, damaged, [0, 1]);
    sampler.offer('damaged-card', 1, rows, damaged, [2]);
    await sampler.flush();

    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toMatch(/^drift cannot leave out feature 9: .* re-export the version$/);
    expect(await store.list(samplePrefix('damaged-card', hourKey(T0), 1))).toEqual([]);
  });

  it('read a reference document written before left-out features existed', () => {
    const old = { referenceVersion: 1, dimension: 8, seed: driftSeed(8), rows: 400, edges: [[0]], proportions: [[0.5, 0.5]] };
    expect(DriftReferenceSchema.parse(old)).toEqual(old);
    expect(DriftReferenceSchema.parse({ ...old, excludedFeatures: [7] }).excludedFeatures).toEqual([7]);
  });
});

describe('monitor', () => {
  it('finds no drift when recent inputs look like the holdout, builds the reference from holdout rows only, and starts nothing', async () => {
    const version = await project('steady');
    await serveTraffic('steady', { rows: 300, shift: 0, atMs: T0, seed: 21 });
    const { calls, startRun } = recorder();
    const report = await runMonitor(deps, { now: new Date(T0 + 60_000), projects: ['steady'], startRun, logger: quiet, metricsSink: () => {} });

    const [health] = report.projects;
    expect(health.error).toBeUndefined();
    expect(health.window).toEqual({ start: new Date(Date.UTC(2031, 4, 6, 10)).toISOString(), end: new Date(Date.UTC(2031, 4, 6, 11)).toISOString() });
    const drift = health.versions[0].drift as { maxPsi: number; samples: number; referenceRows: number };
    expect(drift.samples).toBe(300);
    expect(drift.referenceRows).toBe(400);
    expect(drift.maxPsi).toBeLessThan(0.2);
    expect(health.versions[0].reward).toMatchObject({ count: 0, mean: null });
    expect(health.retrain).toBeUndefined();
    expect(calls).toHaveLength(0);
    expect(await store.exists(`${keys.modelPrefix('steady', version)}reference.json`)).toBe(true);
  });

  it('starts one retraining run per window when inputs drift, and a second pass in the window starts nothing', async () => {
    await project('drifted');
    await serveTraffic('drifted', { rows: 300, shift: 1.5, atMs: T0, seed: 22 });
    const { calls, startRun } = recorder();
    const first = await runMonitor(deps, { now: new Date(T0 + 60_000), projects: ['drifted'], startRun, logger: quiet, metricsSink: () => {} });
    const second = await runMonitor(deps, { now: new Date(T0 + 120_000), projects: ['drifted'], startRun, logger: quiet, metricsSink: () => {} });

    expect((first.projects[0].versions[0].drift as { maxPsi: number }).maxPsi).toBeGreaterThan(0.2);
    expect(first.projects[0].retrain).toMatchObject({
      started: true,
      alreadyClaimed: false,
      runId: 'drifted-retrain-20310506T1000',
      executionArn: 'arn:local:drifted-retrain-20310506T1000',
    });
    expect(first.projects[0].retrain?.reason).toMatch(/^production version 1: input drift PSI [\d.]+ over 300 sampled inputs exceeds psiThreshold 0.2$/);
    expect(calls).toEqual([
      {
        project: 'drifted',
        reason: first.projects[0].retrain?.reason,
        trigger: 'drift',
        runId: 'drifted-retrain-20310506T1000',
        specUri: `s3://${aws.config.bucket}/specs/drifted.json`,
      },
    ]);
    expect(second.projects[0].retrain).toMatchObject({
      started: false,
      alreadyClaimed: true,
      reason: first.projects[0].retrain?.reason,
      executionArn: 'arn:local:drifted-retrain-20310506T1000',
    });
    expect(calls).toHaveLength(1);
  });

  it('starts a retraining run when online reward falls below the holdout objective by more than minRewardDrop', async () => {
    const version = await project('slipping', { holdoutObjective: 0.9 });
    await feedback(
      'slipping',
      version,
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? 1 : 0)),
      'a',
    );
    const { calls, startRun } = recorder();
    const report = await runMonitor(deps, { now: new Date(T0), projects: ['slipping'], startRun, logger: quiet, metricsSink: () => {} });
    expect(report.projects[0].versions[0].reward).toEqual({ count: 40, mean: 0.5, holdoutObjective: 0.9, drop: 0.4, since: 'start' });
    expect(report.projects[0].retrain?.reason).toBe(
      'production version 1: online reward 0.5 over 40 feedback events is 0.4 below the holdout objective 0.9 (minRewardDrop 0.05)',
    );
    expect(calls.map((c) => c.trigger)).toEqual(['reward']);
  });

  it('leaves a project alone while its reward holds, then judges the next window on that window’s feedback only', async () => {
    const version = await project('holding', { holdoutObjective: 0.9 });
    await feedback(
      'holding',
      version,
      Array.from({ length: 40 }, (_, i) => (i < 37 ? 1 : 0)),
      'early',
    );
    const { calls, startRun } = recorder();
    const first = await runMonitor(deps, { now: new Date(T0), projects: ['holding'], startRun, logger: quiet, metricsSink: () => {} });
    expect(first.projects[0].versions[0].reward).toMatchObject({ count: 40, mean: 0.925, since: 'start' });
    expect(first.projects[0].retrain).toBeUndefined();

    await feedback(
      'holding',
      version,
      Array.from({ length: 30 }, () => 0),
      'late',
    );
    const next = await runMonitor(deps, { now: new Date(T0 + HOUR), projects: ['holding'], startRun, logger: quiet, metricsSink: () => {} });
    expect(next.projects[0].versions[0].reward).toMatchObject({ count: 30, mean: 0, since: 'window' });
    expect(next.projects[0].retrain).toMatchObject({ started: true, runId: 'holding-retrain-20310506T1100' });
    expect(calls).toHaveLength(1);
  });

  it('does not judge reward on too little feedback', async () => {
    const version = await project('quiet', { holdoutObjective: 0.9 });
    await feedback('quiet', version, [0, 0, 0], 'few');
    const { calls, startRun } = recorder();
    const report = await runMonitor(deps, { now: new Date(T0), projects: ['quiet'], startRun, logger: quiet, metricsSink: () => {} });
    expect(report.projects[0].versions[0].breaches).toEqual([]);
    expect(report.projects[0].versions[0].drift).toMatchObject({ unavailable: 'only 0 sampled inputs in the window (200 needed)' });
    expect(calls).toHaveLength(0);
  });

  it('gives the window’s claim back when the run cannot be started, so the next pass tries again', async () => {
    const version = await project('flaky', { holdoutObjective: 0.9 });
    await feedback(
      'flaky',
      version,
      Array.from({ length: 40 }, () => 0),
      'f',
    );
    const failing = async (): Promise<never> => {
      throw new Error('StartExecution throttled');
    };
    const failed = await runMonitor(deps, { now: new Date(T0), projects: ['flaky'], startRun: failing, logger: quiet, metricsSink: () => {} });
    expect(failed.projects[0].error?.message).toMatch(
      /could not start the retraining run of flaky \(StartExecution throttled\); the next monitor pass tries again/,
    );

    const { calls, startRun } = recorder();
    const retried = await runMonitor(deps, { now: new Date(T0 + 60_000), projects: ['flaky'], startRun, logger: quiet, metricsSink: () => {} });
    expect(retried.projects[0].retrain).toMatchObject({ started: true });
    expect(calls).toHaveLength(1);
  });

  it("leaves an embedded column's level index out of the reference and the samples, so a new level mix is no drift and a numeric shift still is", async () => {
    const version = await project('merchants', { levels: true, embedded: true });
    const shifted = await project('merchants-shifted', { levels: true, embedded: true });
    // The same inputs, monitored as if the index were a number: the level mix alone breaks the threshold.
    await project('merchants-counted', { levels: true });
    const oneMerchant = () => 900;
    await serveTraffic('merchants', { rows: 300, shift: 0, atMs: T0, seed: 23, level: oneMerchant });
    await serveTraffic('merchants-shifted', { rows: 300, shift: 1.5, atMs: T0, seed: 24, level: mixedLevels(createRng(25)) });
    await serveTraffic('merchants-counted', { rows: 300, shift: 0, atMs: T0, seed: 23, level: oneMerchant });
    const { calls, startRun } = recorder();
    const report = await runMonitor(deps, {
      now: new Date(T0 + 60_000),
      projects: ['merchants', 'merchants-shifted', 'merchants-counted'],
      startRun,
      logger: quiet,
      metricsSink: () => {},
    });

    const [steady, moved, counted] = report.projects.map((p) => p.versions[0].drift as { maxPsi: number; samples: number; excludedFeatures?: number[] });
    expect(steady).toMatchObject({ samples: 300, excludedFeatures: [LEVEL_FEATURE] });
    expect(steady.maxPsi).toBeLessThan(0.2);
    expect(moved.maxPsi).toBeGreaterThan(0.2);
    expect(counted.excludedFeatures).toBeUndefined();
    expect(counted.maxPsi).toBeGreaterThan(0.2);
    expect(calls.map((c) => c.project).sort()).toEqual(['merchants-counted', 'merchants-shifted']);

    const reference = await store.getJson(keys.modelFile('merchants', version, 'reference.json'), DriftReferenceSchema);
    expect(reference).toMatchObject({ dimension: DIMENSION, excludedFeatures: [LEVEL_FEATURE], seed: driftSeed(DIMENSION - 1), rows: 400 });
    const [sample] = await store.list(samplePrefix('merchants-shifted', hourKey(T0), shifted));
    expect(await store.getJson(sample.key, SampleBatch)).toMatchObject({
      dimension: DIMENSION,
      excludedFeatures: [LEVEL_FEATURE],
      seed: driftSeed(DIMENSION - 1),
    });
  });

  it('reports a reference or samples that left out other features than the card lists, and compares neither', async () => {
    const version = await project('mixed-releases', { levels: true, embedded: true });
    await serveTraffic('mixed-releases', { rows: 300, shift: 0, atMs: T0, seed: 26, level: mixedLevels(createRng(27)) });
    // A batch projected over every feature, as an infer that counted the level index in wrote it.
    const all = driftProjection({ dimension: DIMENSION });
    const rows = withLevels(gaussianRows(createRng(28), 40, 0), mixedLevels(createRng(29)));
    await store.putJson(`${samplePrefix('mixed-releases', hourKey(T0), version)}older.json`, {
      project: 'mixed-releases',
      version,
      dimension: DIMENSION,
      seed: all.seed,
      projections: projectRows(rows, all),
    });
    // A reference that left nothing out, from the same release.
    const referenceKey = keys.modelFile('mixed-releases', version, 'reference.json');
    await store.putJson(referenceKey, buildReference(projectRows(rows, all), all));
    const { calls, startRun } = recorder();
    const report = await runMonitor(deps, { now: new Date(T0 + 60_000), projects: ['mixed-releases'], startRun, logger: quiet, metricsSink: () => {} });

    expect(report.projects[0].versions[0].drift).toEqual({
      unavailable: `the reference left out features [] and the samples leave out [${LEVEL_FEATURE}] (the card's category level indices), so they are not compared; they come from different agentflow releases: re-export the version to get a reference that matches`,
      samples: 300,
      mismatchedSamples: 40,
    });
    expect(calls).toHaveLength(0);
  });

  it('finds the served projects itself when none are named', async () => {
    const report = await runMonitor(deps, { now: new Date(T0 + 2 * HOUR), startRun: recorder().startRun, logger: quiet, metricsSink: () => {} });
    expect(report.projects.map((p) => p.project)).toEqual(expect.arrayContaining(['steady', 'drifted', 'slipping', 'holding', 'quiet', 'flaky']));
  });
});
