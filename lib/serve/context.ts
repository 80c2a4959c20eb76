import { Logger } from '@aws-lambda-powertools/logger';
import type * as ort from 'onnxruntime-node';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Registry, RewardLog } from '#lib/registry/index.ts';
import { createRng, type Rng } from '#lib/route/index.ts';
import type { ArtifactStore } from '#lib/store/index.ts';
import { errorLogFields } from '#lib/errors/index.ts';
import { DriftSampler, type DriftSamplerOptions } from './drift.ts';
import { ServeMetrics, type MetricsSink } from './metrics.ts';
import { ModelCache } from './models.ts';
import { RoutingCache } from './router.ts';
import { ServeSettingsStore } from './settings.ts';
import { PredictionIds } from './predictionIds.ts';

/** The services serving talks to; `stageDependencies(config)` has all of them. */
export interface ServeDependencies {
  registry: Registry;
  rewards: RewardLog;
  store: ArtifactStore;
  /** The reward table's client and name, for the serving settings item. */
  dynamodb: DynamoDBDocumentClient;
  rewardTable: string;
}

/** Structured logging; a Powertools Logger fits. */
export interface ServeLogger {
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

export interface ServeLimits {
  /** Request body size limit. Default 1 MiB (Function URLs allow 6 MB; a bigger batch belongs in a batch job). */
  maxBodyBytes: number;
  /** Records per infer request. Default 256. */
  maxRecords: number;
}

export const DEFAULT_LIMITS: ServeLimits = { maxBodyBytes: 1024 * 1024, maxRecords: 256 };

export interface ServeOptions {
  /** Arm counters and serving set reuse; default 5 s. */
  statsTtlMs?: number;
  /** A refused version is tried again after this long; default 5 minutes. */
  refusalRetryMs?: number;
  limits?: Partial<ServeLimits>;
  /** Drift sampling of served embeddings; `false` turns it off. */
  drift?: Omit<DriftSamplerOptions, 'store' | 'clock' | 'onError'> | false;
  sessionOptions?: Pick<ort.InferenceSession.SessionOptions, 'executionProviders' | 'intraOpNumThreads' | 'interOpNumThreads'>;
  /** Milliseconds since the epoch; for tests and simulations. */
  clock?: () => number;
  /** The router's randomness; default seeded from the OS. */
  rng?: Rng;
  /** Days feedback is accepted after a prediction; default 30. */
  feedbackRetentionDays?: number;
  metricsSink?: MetricsSink;
  logger?: ServeLogger;
}

/** Everything one serving process keeps between requests: caches, sessions, the sampler. */
export interface ServeContext {
  deps: ServeDependencies;
  models: ModelCache;
  routing: RoutingCache;
  settings: ServeSettingsStore;
  sampler: DriftSampler | undefined;
  metrics: ServeMetrics;
  logger: ServeLogger;
  limits: ServeLimits;
  rng: Rng;
  clock: () => number;
  /** Issues and verifies the signed prediction ids that feedback refers to. */
  predictionIds: PredictionIds;
  /** Writes pending drift samples and releases the sessions. */
  close(): Promise<void>;
}

export function createServeContext(deps: ServeDependencies, options: ServeOptions = {}): ServeContext {
  const clock = options.clock ?? Date.now;
  const logger = options.logger ?? new Logger({ serviceName: 'agentflow-serve' });
  const settings = new ServeSettingsStore({ dynamodb: deps.dynamodb, tableName: deps.rewardTable });
  const models = new ModelCache({
    registry: deps.registry,
    store: deps.store,
    clock,
    ...(options.refusalRetryMs === undefined ? {} : { refusalRetryMs: options.refusalRetryMs }),
    ...(options.sessionOptions ? { sessionOptions: options.sessionOptions } : {}),
    onRefused: (error) => logger.error('model version refused', errorLogFields(error)),
  });
  const sampler =
    options.drift === false
      ? undefined
      : new DriftSampler({
          ...options.drift,
          store: deps.store,
          clock,
          onError: (error, context) => logger.warn('drift sample not written', { ...context, ...errorLogFields(error) }),
        });
  return {
    deps,
    models,
    routing: new RoutingCache({ registry: deps.registry, rewards: deps.rewards, settings, clock, ...(options.statsTtlMs === undefined ? {} : { ttlMs: options.statsTtlMs }) }),
    settings,
    sampler,
    metrics: new ServeMetrics({ clock, ...(options.metricsSink ? { sink: options.metricsSink } : {}) }),
    logger,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    rng: options.rng ?? createRng(Math.floor(Math.random() * 2 ** 52)),
    clock,
    predictionIds: new PredictionIds({
      dynamodb: deps.dynamodb,
      tableName: deps.rewardTable,
      clock,
      ...(options.feedbackRetentionDays === undefined ? {} : { retentionDays: options.feedbackRetentionDays }),
    }),
    async close() {
      await sampler?.flush();
      await models.release();
    },
  };
}
