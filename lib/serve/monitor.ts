import { createHash } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { ModelCard } from '#lib/domain/run/index.ts';
import { readLiveModel } from '#lib/pipeline/export/liveModel.ts';
import type { LiveModel } from '#lib/domain/run/index.ts';
import * as z from 'zod';
import { describeError } from '#lib/domain/errors/index.ts';
import type { ArmSnapshot, ArmStats, ModelRegistry, RewardLog } from '#lib/adapters/registry/index.ts';
import { denseFeatures, readShard } from '#lib/domain/shards/index.ts';
import type { MonitorSpec } from '#lib/domain/spec/index.ts';
import { keys, type ArtifactStore } from '#lib/adapters/store/index.ts';
import type { ServeLogger } from './context.ts';
import {
  DRIFT_PROJECTIONS,
  DriftReferenceSchema,
  MIN_REFERENCE_ROWS,
  REFERENCE_ROWS,
  SampleBatch,
  driftOf,
  driftProjection,
  hourKey,
  levelIndexFeatures,
  referenceFromEmbeddings,
  samplePrefix,
  sameExcludedFeatures,
  type DriftProjection,
  type DriftReference,
} from './drift.ts';
import { ServeError } from './errors.ts';
import { ServeMetrics, type MetricsSink } from './metrics.ts';
import { servingVersions } from './router.ts';

/**
 * The scheduled health check of every served project: online reward per version over the window
 * (from arm-counter snapshots), input drift (PSI of projected embeddings, see drift.ts), and one
 * retraining run per window when production breaks a threshold of the spec's `monitor` section.
 *
 * The decisions are one pure function, `judgeProject` (observed windows and thresholds in, health
 * and the retraining to start out); the rest reads and writes. In the reward table (through
 * RewardLog) it keeps a snapshot of the arm counters at each window's first pass and the window's
 * one retraining claim; in S3, for a version exported before Export wrote it,
 * `models/<p>/<v>/reference.json` (the drift reference).
 *
 * Everything it reads about a version lives with the version (`models/<p>/<v>/live.json`, see
 * lib/pipeline/export/liveModel.ts), never under `runs/`, which the bucket's lifecycle rule expires: the
 * models that stay in production longest are the ones it exists for.
 */
export interface MonitorDependencies {
  registry: ModelRegistry;
  rewards: RewardLog;
  store: ArtifactStore;
}

export interface RetrainRequest {
  project: string;
  /** Why, in words: which version broke which threshold by how much. */
  reason: string;
  trigger: 'reward' | 'drift';
  /** Deterministic per project and window, so a retried start is recognisable. */
  runId: string;
  /** The spec to retrain from: production's copy under `models/<p>/<v>/spec.json`. */
  specUri?: string;
}

export type StartRun = (request: RetrainRequest) => Promise<{ runId?: string; executionArn?: string }>;

export interface MonitorOptions {
  startRun: StartRun;
  /** The pass's time; default now. */
  now?: Date;
  /** Projects to check; default every project with a serving set. */
  projects?: readonly string[];
  /** Feedback events a window needs before its reward is judged. Default 30. */
  minFeedback?: number;
  /** Sampled inputs a window needs before drift is judged. Default 200. */
  minDriftSamples?: number;
  /** Sample batches read per version and pass, newest first. Default 500. */
  maxSampleObjects?: number;
  /** Holdout rows used to build a reference. Default 20 000. */
  maxReferenceRows?: number;
  /** The monitor thresholds and retraining spec of a version; default its live-model document (for older versions, its run's manifest). */
  monitorSpecOf?: (card: ModelCard) => Promise<{ monitor: MonitorSpec; specUri?: string }>;
  /** Holdout embeddings (rows × card.encoder.dimension) behind a card; default the holdout rows of its feature shards. */
  holdoutEmbeddings?: (card: ModelCard) => AsyncIterable<Float32Array>;
  metricsSink?: MetricsSink;
  logger?: ServeLogger;
}

export interface RewardHealth {
  count: number;
  mean: number | null;
  holdoutObjective: number;
  /** holdoutObjective − mean; positive when online reward is below the holdout's. */
  drop: number | null;
  /** `window`: since the snapshot before this window; `start`: since the version began serving. */
  since: 'window' | 'start';
}

/**
 * `excludedFeatures`: the category level indices left out of the projections (absent when none);
 * `mismatchedSamples`: sampled inputs of the window projected with other features left out than
 * the version's card lists (written by another release of infer), counted and not compared.
 */
export type DriftHealth =
  | { psi: number[]; maxPsi: number; samples: number; referenceRows: number; excludedFeatures?: number[]; mismatchedSamples?: number }
  | { unavailable: string; samples?: number; mismatchedSamples?: number };

export interface VersionHealth {
  version: number;
  production: boolean;
  reward: RewardHealth;
  drift: DriftHealth;
  /** Thresholds broken, in words; empty when healthy or when there was too little data to judge. */
  breaches: string[];
}

export interface RetrainOutcome {
  started: boolean;
  /** True when an earlier pass of this window had already started (or claimed) the run. */
  alreadyClaimed: boolean;
  reason: string;
  runId: string;
  executionArn?: string;
}

export interface ProjectHealth {
  project: string;
  window: { start: string; end: string };
  monitor?: MonitorSpec;
  versions: VersionHealth[];
  retrain?: RetrainOutcome;
  error?: { code?: string; message: string };
}

export interface MonitorReport {
  time: string;
  projects: ProjectHealth[];
}

const DRIFT_FILE_EXTENSIONS = ['.arrow', '.arrows', '.ipc'];

/** Checks each project; one project's failure is reported in its entry and does not stop the others. */
export async function runMonitor(deps: MonitorDependencies, options: MonitorOptions): Promise<MonitorReport> {
  const now = options.now ?? new Date();
  const logger = options.logger ?? new Logger({ serviceName: 'agentflow-monitor' });
  const metrics = new ServeMetrics({ clock: () => now.getTime(), ...(options.metricsSink ? { sink: options.metricsSink } : {}) });
  const projects = options.projects ?? (await deps.registry.listServedProjects());
  const report: MonitorReport = { time: now.toISOString(), projects: [] };
  for (const project of projects) {
    try {
      const health = await monitorProject(deps, { ...options, now, logger, metrics }, project);
      if (health) report.projects.push(health);
    } catch (error) {
      const described = describeError(error);
      logger.error('monitor pass failed for a project', { project, error: described });
      report.projects.push({ project, window: { start: '', end: '' }, versions: [], error: { code: described.code, message: described.message } });
    }
  }
  return report;
}

type PassOptions = MonitorOptions & { now: Date; logger: ServeLogger; metrics: ServeMetrics };

async function monitorProject(deps: MonitorDependencies, options: PassOptions, project: string): Promise<ProjectHealth | undefined> {
  const set = await deps.registry.getServingSet(project);
  if (!set) return undefined;
  const versions = servingVersions(set);
  const cards = await Promise.all(versions.map((version) => readCard(deps, project, version)));
  const lives = await Promise.all(versions.map((version) => readLiveModel(deps.store, project, version)));
  const production = cards[0];
  const { monitor, specUri } = await (options.monitorSpecOf ?? ((card) => liveMonitorSpec(deps.store, card, lives[0])))(production);
  const window = windowOf(options.now, monitor.windowHours);
  const nowMs = options.now.getTime();
  const windowMs = monitor.windowHours * 3_600_000;

  const stats = await deps.rewards.getArmStats(project, versions);
  const previous = await deps.rewards.latestArmSnapshotBefore(project, window.start);
  await deps.rewards.putArmSnapshotOnce(
    project,
    window.start,
    Object.fromEntries(stats.map((s) => [String(s.version), { count: s.count, sum: s.sum }])),
    options.now,
  );
  const drifts: DriftHealth[] = [];
  for (const [index] of versions.entries()) drifts.push(await driftHealth(deps, options, { card: cards[index], live: lives[index] }, nowMs - windowMs, nowMs));

  const judged = judgeProject({
    project,
    window,
    monitor,
    minFeedback: options.minFeedback ?? 30,
    versions: versions.map((version, index) => ({
      version,
      stats: stats[index],
      before: previous?.[String(version)],
      holdoutObjective: cards[index].holdoutObjective,
      drift: drifts[index],
    })),
  });
  for (const health of judged.versions) {
    options.metrics.monitorPass(project, health.version, {
      rewardCount: health.reward.count,
      meanReward: health.reward.mean,
      ...('maxPsi' in health.drift ? { maxPsi: health.drift.maxPsi } : {}),
    });
  }

  const result: ProjectHealth = { project, window, monitor, versions: judged.versions };
  if (judged.retrain) {
    result.retrain = await startRetrainOnce(deps, options, { project, ...judged.retrain, ...(specUri ? { specUri } : {}), windowStart: window.start });
    if (result.retrain.started) options.metrics.retrainStarted(project);
  }
  return result;
}

// ── decisions (pure) ──────────────────────────────────────────────────────────────────────────

/** The monitor window holding `now`: windows of `windowHours` aligned to the epoch, so every pass inside one agrees on it. */
export function windowOf(now: Date, windowHours: number): { start: string; end: string } {
  const windowMs = windowHours * 3_600_000;
  const startMs = Math.floor(now.getTime() / windowMs) * windowMs;
  return { start: new Date(startMs).toISOString(), end: new Date(startMs + windowMs).toISOString() };
}

/**
 * The retraining run of a project's window: `<project>-retrain-<yyyymmddThhmm>`. It names the
 * execution too (one rule, `executionName`), and execution names are unique per state machine
 * while run ids are unique per project, so the project is part of it; a project name too long to
 * fit the run id's 48 characters is cut and a digest of it appended.
 */
export function retrainRunId(project: string, windowStart: string): string {
  const suffix = `-retrain-${windowStart.replace(/[-:]/g, '').slice(0, 13)}`;
  if (project.length + suffix.length <= 48) return `${project}${suffix}`;
  const digest = createHash('sha256').update(project).digest('hex').slice(0, 6);
  return `${project.slice(0, 48 - suffix.length - 7)}-${digest}${suffix}`;
}

/** What a pass observed of one serving version; the first is production. */
export interface ObservedVersion {
  version: number;
  /** Its arm counters now. */
  stats: ArmStats;
  /** Its counters at the snapshot before this window; undefined when there is none. */
  before?: ArmSnapshot[string];
  holdoutObjective: number;
  drift: DriftHealth;
}

export interface Judgement {
  versions: VersionHealth[];
  /** The retraining run to start, when production broke a threshold. */
  retrain?: Pick<RetrainRequest, 'reason' | 'trigger' | 'runId'>;
}

/** Health of each version and whether to retrain, from what a pass observed and the spec's thresholds. Pure. */
export function judgeProject(observed: {
  project: string;
  window: { start: string };
  monitor: MonitorSpec;
  minFeedback: number;
  versions: readonly ObservedVersion[];
}): Judgement {
  const { monitor } = observed;
  const versions = observed.versions.map((seen, index): VersionHealth => {
    const reward = rewardHealth(seen.stats, seen.before, seen.holdoutObjective);
    const { drift } = seen;
    const breaches: string[] = [];
    if (reward.drop !== null && reward.count >= observed.minFeedback && reward.drop > monitor.minRewardDrop) {
      breaches.push(
        `online reward ${round(reward.mean ?? 0)} over ${reward.count} feedback events is ${round(reward.drop)} below the holdout objective ${round(reward.holdoutObjective)} (minRewardDrop ${monitor.minRewardDrop})`,
      );
    }
    if ('maxPsi' in drift && drift.maxPsi > monitor.psiThreshold) {
      breaches.push(`input drift PSI ${round(drift.maxPsi)} over ${drift.samples} sampled inputs exceeds psiThreshold ${monitor.psiThreshold}`);
    }
    return { version: seen.version, production: index === 0, reward, drift, breaches };
  });
  // Production decides: a weak challenger only loses traffic to the router, it is no reason to retrain.
  const production = versions[0];
  if (!production || production.breaches.length === 0) return { versions };
  return {
    versions,
    retrain: {
      reason: `production version ${production.version}: ${production.breaches.join('; ')}`,
      trigger: production.breaches.some((b) => b.startsWith('online reward')) ? 'reward' : 'drift',
      runId: retrainRunId(observed.project, observed.window.start),
    },
  };
}

// ── reward ────────────────────────────────────────────────────────────────────────────────────

function rewardHealth(now: ArmStats, before: Pick<ArmStats, 'count' | 'sum'> | undefined, holdoutObjective: number): RewardHealth {
  const count = now.count - (before?.count ?? 0);
  const sum = now.sum - (before?.sum ?? 0);
  const mean = count > 0 ? sum / count : null;
  return { count, mean, holdoutObjective, drop: mean === null ? null : holdoutObjective - mean, since: before ? 'window' : 'start' };
}

// ── drift ─────────────────────────────────────────────────────────────────────────────────────

async function driftHealth(
  deps: MonitorDependencies,
  options: PassOptions,
  version: { card: ModelCard; live?: LiveModel },
  fromMs: number,
  toMs: number,
): Promise<DriftHealth> {
  const { card } = version;
  // The card is where infer reads the layout too, so both sides leave out the same features.
  const projection = driftProjection({ dimension: card.encoder.dimension, excludedFeatures: levelIndexFeatures(card.encoder) });
  if (projection.width === 0) {
    return {
      unavailable: `every one of the ${projection.dimension} features of ${card.project} version ${card.version}'s encoder is a category level index (${(card.encoder.categoryEmbeddings ?? []).map((e) => e.column).join(', ')}), which projection drift leaves out; add a numeric column to monitor its inputs`,
    };
  }
  const { rows: samples, mismatched } = await recentSamples(deps.store, { card, projection, fromMs, toMs, maxObjects: options.maxSampleObjects ?? 500 });
  const counted = mismatched > 0 ? { mismatchedSamples: mismatched } : {};
  const minSamples = options.minDriftSamples ?? 200;
  if (samples.length < minSamples) {
    const other =
      mismatched > 0
        ? `; ${mismatched} more were projected leaving out other features than the card's level indices [${projection.excludedFeatures.join(', ')}] (written by another release of infer) and are not compared`
        : '';
    return { unavailable: `only ${samples.length} sampled inputs in the window (${minSamples} needed)${other}`, samples: samples.length, ...counted };
  }
  const reference = await referenceFor(deps.store, options, { ...version, projection });
  if ('unavailable' in reference) return { ...reference, samples: samples.length, ...counted };
  const mismatch = referenceMismatch(reference, projection);
  if (mismatch) return { unavailable: mismatch, samples: samples.length, ...counted };
  const psi = driftOf(reference, samples);
  return {
    psi: psi.map(round),
    maxPsi: round(Math.max(...psi)),
    samples: samples.length,
    referenceRows: reference.rows,
    ...(projection.excludedFeatures.length > 0 ? { excludedFeatures: projection.excludedFeatures } : {}),
    ...counted,
  };
}

/** Why a reference cannot be compared with samples projected by `projection`; undefined when it can. */
function referenceMismatch(reference: DriftReference, projection: DriftProjection): string | undefined {
  if (reference.dimension !== projection.dimension)
    return `the reference was built for dimension ${reference.dimension}, the model has ${projection.dimension}`;
  const left = reference.excludedFeatures ?? [];
  if (!sameExcludedFeatures(left, projection.excludedFeatures)) {
    return `the reference left out features [${left.join(', ')}] and the samples leave out [${projection.excludedFeatures.join(', ')}] (the card's category level indices), so they are not compared; they come from different agentflow releases: re-export the version to get a reference that matches`;
  }
  if (reference.seed !== projection.seed)
    return `the reference's projections were seeded ${reference.seed}, the samples' ${projection.seed}; re-export the version`;
  return undefined;
}

/**
 * The projected inputs infer sampled for a version between two times, newest batches first,
 * bounded; `mismatched` counts the rows of batches projected with another layout than the card's.
 */
async function recentSamples(
  store: ArtifactStore,
  options: { card: ModelCard; projection: DriftProjection; fromMs: number; toMs: number; maxObjects: number },
): Promise<{ rows: number[][]; mismatched: number }> {
  const { card, projection, fromMs, toMs, maxObjects } = options;
  const hours: string[] = [];
  for (let t = Math.floor(toMs / 3_600_000) * 3_600_000; t >= fromMs - 3_599_999 && hours.length < 24 * 31; t -= 3_600_000) hours.push(hourKey(t));
  const rows: number[][] = [];
  let mismatched = 0;
  let objects = 0;
  for (const hour of hours) {
    if (objects >= maxObjects) break;
    const listed = await store.list(samplePrefix(card.project, hour, card.version));
    for (const object of listed.slice(0, maxObjects - objects)) {
      objects += 1;
      const batch = await store.getJson(object.key, SampleBatch);
      if (batch.dimension !== projection.dimension) continue;
      if (!sameExcludedFeatures(batch.excludedFeatures, projection.excludedFeatures) || batch.seed !== projection.seed) {
        mismatched += batch.projections.length;
        continue;
      }
      rows.push(...batch.projections.filter((row) => row.length === DRIFT_PROJECTIONS));
    }
  }
  return { rows, mismatched };
}

/** The version's drift reference: the one Export wrote beside it, or (older versions) one built from its holdout shards on first sight. */
async function referenceFor(
  store: ArtifactStore,
  options: PassOptions,
  version: { card: ModelCard; live?: LiveModel; projection: DriftProjection },
): Promise<DriftReference | { unavailable: string }> {
  const { card, live, projection } = version;
  if (live) {
    if (!live.reference)
      return {
        unavailable: `${card.project} version ${card.version} was exported without a drift reference: its holdout had fewer than ${MIN_REFERENCE_ROWS} rows`,
      };
    return store.getJson(live.reference.uri, DriftReferenceSchema);
  }
  const key = keys.modelFile(card.project, card.version, 'reference.json');
  const stored = await store.findJson(key, DriftReferenceSchema);
  if (stored) return stored;
  const source = options.holdoutEmbeddings ?? ((c: ModelCard) => shardHoldoutEmbeddings(store, c));
  const built = await referenceFromEmbeddings(source(card), {
    dimension: projection.dimension,
    excludedFeatures: projection.excludedFeatures,
    maxRows: options.maxReferenceRows ?? REFERENCE_ROWS,
  });
  if (!built.reference) {
    return {
      unavailable: `only ${built.rows} holdout rows found for ${card.project} version ${card.version} (features/${card.lineage.featuresDigest}/); drift needs a reference of at least ${MIN_REFERENCE_ROWS}`,
    };
  }
  await store.putJson(key, built.reference);
  options.logger.info('drift reference built', { project: card.project, version: card.version, rows: built.rows, key });
  return built.reference;
}

/** Holdout rows of the feature shards under `features/<featuresDigest>/`: by the split column, or every row of a shard named for the holdout. */
async function* shardHoldoutEmbeddings(store: ArtifactStore, card: ModelCard): AsyncGenerator<Float32Array> {
  const dimension = card.encoder.dimension;
  const objects = await store.list(keys.featuresPrefix(card.lineage.featuresDigest));
  for (const object of objects) {
    if (!DRIFT_FILE_EXTENSIONS.some((extension) => object.key.endsWith(extension))) continue;
    const named = /holdout/.test(object.key.slice(object.key.lastIndexOf('/') + 1));
    for await (const batch of readShard(await store.getStream(object.key), { dim: dimension })) {
      if (batch.split) {
        const rows: number[] = [];
        for (let i = 0; i < batch.rows; i += 1) if (batch.split[i] === 2) rows.push(i);
        const features = denseFeatures(batch);
        const out = new Float32Array(rows.length * dimension);
        rows.forEach((row, i) => out.set(features.subarray(row * dimension, (row + 1) * dimension), i * dimension));
        if (rows.length > 0) yield out;
      } else if (named) {
        yield denseFeatures(batch);
      }
    }
  }
}

// ── retraining ────────────────────────────────────────────────────────────────────────────────

async function startRetrainOnce(deps: MonitorDependencies, options: PassOptions, request: RetrainRequest & { windowStart: string }): Promise<RetrainOutcome> {
  const { windowStart, ...run } = request;
  const claim = await deps.rewards.claimRetrain({
    project: run.project,
    windowStart,
    reason: run.reason,
    trigger: run.trigger,
    runId: run.runId,
    claimedAt: options.now.toISOString(),
  });
  if (!claim.claimed) {
    const { existing } = claim;
    return {
      started: false,
      alreadyClaimed: true,
      reason: existing.reason ?? run.reason,
      runId: existing.runId ?? run.runId,
      ...(existing.executionArn ? { executionArn: existing.executionArn } : {}),
    };
  }
  let started: Awaited<ReturnType<StartRun>>;
  try {
    started = await options.startRun(run);
  } catch (error) {
    // Give the claim back so the next pass in this window tries again.
    await deps.rewards.releaseRetrain(run.project, windowStart);
    throw new ServeError(`could not start the retraining run of ${run.project} (${describeError(error).message}); the next monitor pass tries again`, {
      code: 'MONITOR_FAILED',
      context: { project: run.project, reason: run.reason },
      cause: error,
    });
  }
  const runId = started.runId ?? run.runId;
  await deps.rewards.markRetrainStarted(run.project, windowStart, { runId, ...(started.executionArn ? { executionArn: started.executionArn } : {}) });
  options.logger.info('retraining started', { project: run.project, runId, reason: run.reason, trigger: run.trigger });
  return { started: true, alreadyClaimed: false, reason: run.reason, runId, ...(started.executionArn ? { executionArn: started.executionArn } : {}) };
}

// ── reading ───────────────────────────────────────────────────────────────────────────────────

async function readCard(deps: MonitorDependencies, project: string, version: number): Promise<ModelCard> {
  const registered = await deps.registry.getVersion(project, version);
  return deps.store.getJson(registered.lineage.cardUri ?? keys.modelCard(project, version), ModelCard);
}

/** Production's thresholds and retraining spec from its live-model document; a version exported before there was one falls back to its run's manifest. */
async function liveMonitorSpec(store: ArtifactStore, card: ModelCard, live: LiveModel | undefined): Promise<{ monitor: MonitorSpec; specUri?: string }> {
  if (live) return { monitor: live.monitor, specUri: live.spec.uri };
  return manifestMonitorSpec(store, card);
}

/** The part of an older version's run manifest the monitor reads: where the spec is and its thresholds (judged by CompleteMonitor, for a message that names them). */
const ManifestMonitorPart = z.looseObject({ specUri: z.string().optional(), spec: z.looseObject({ monitor: z.unknown().optional() }).optional() });
const CompleteMonitor = z.object({ windowHours: z.number().positive(), minRewardDrop: z.number(), psiThreshold: z.number() });

async function manifestMonitorSpec(store: ArtifactStore, card: ModelCard): Promise<{ monitor: MonitorSpec; specUri?: string }> {
  const key = keys.runManifest(card.runId);
  let manifest: z.infer<typeof ManifestMonitorPart>;
  try {
    manifest = await store.getJson(key, ManifestMonitorPart);
  } catch (cause) {
    throw new ServeError(
      `${card.project} version ${card.version} has no ${keys.modelFile(card.project, card.version, 'live.json')} (it was exported before Export wrote one) and ${key}, the manifest of its run ${card.runId}, cannot be read (runs/ expires); promote a version exported since, or pass monitorSpecOf`,
      { code: 'MONITOR_FAILED', context: { project: card.project, version: card.version, key }, cause },
    );
  }
  const monitor = manifest.spec?.monitor;
  const complete = CompleteMonitor.safeParse(monitor);
  if (!complete.success) {
    throw new ServeError(`${key} has no complete spec.monitor (windowHours, minRewardDrop, psiThreshold); it was not written by Prepare`, {
      code: 'MONITOR_FAILED',
      context: { project: card.project, key, monitor },
    });
  }
  return { monitor: complete.data, ...(manifest.specUri ? { specUri: manifest.specUri } : {}) };
}

function round(value: number): number {
  return Math.round(value * 1e4) / 1e4;
}
