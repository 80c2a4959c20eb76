import type * as ort from 'onnxruntime-node';
import type { ModelRegistry, RewardLog } from '#lib/adapters/registry/index.ts';
import type { Rng } from '#lib/domain/random/index.ts';
import type { ArtifactStore } from '#lib/adapters/store/index.ts';
import { errorLogFields } from '#lib/domain/errors/index.ts';
import { DriftSampler, type DriftSamplerOptions } from './drift.ts';
import { createServeBase, type ServeBase } from './base.ts';
import type { MetricsSink } from './metrics.ts';
import { ModelCache } from './models.ts';

/** The services serving talks to; `stageDependencies(config)` has all of them. */
export interface ServeDependencies {
  registry: ModelRegistry;
  rewards: RewardLog;
  /** Also keeps the serving settings and the prediction-id signing key. */
  store: ArtifactStore;
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

export { DEFAULT_LIMITS } from './base.ts';

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

/** Everything one serving process keeps between requests: the serving base, plus model sessions and the drift sampler. */
export interface ServeContext extends ServeBase {
  models: ModelCache;
  sampler: DriftSampler | undefined;
  /** Writes pending drift samples and releases the sessions. */
  close(): Promise<void>;
}

export function createServeContext(deps: ServeDependencies, options: ServeOptions = {}): ServeContext {
  const base = createServeBase(deps, options);
  const { clock, logger } = base;
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
    ...base,
    models,
    sampler,
    async close() {
      await sampler?.flush();
      await models.release();
    },
  };
}
