import { Logger } from '@aws-lambda-powertools/logger';
import { createRng, type Rng } from '#lib/domain/random/index.ts';
import type { ServeDependencies, ServeLimits, ServeLogger, ServeOptions } from './context.ts';
import { ServeMetrics } from './metrics.ts';
import { PredictionIds } from './predictionIds.ts';
import { RoutingCache } from './router.ts';
import { ServeSettingsStore } from './settings.ts';

export const DEFAULT_LIMITS: ServeLimits = { maxBodyBytes: 1024 * 1024, maxRecords: 256 };

/**
 * What serving needs without running a model: routing state, settings, metrics, prediction ids.
 * Feedback runs on this alone; it lives apart from context.ts (which loads models) so that the
 * feedback function's bundle neither ships nor loads ONNX Runtime.
 */
export interface ServeBase {
  deps: ServeDependencies;
  routing: RoutingCache;
  settings: ServeSettingsStore;
  metrics: ServeMetrics;
  logger: ServeLogger;
  limits: ServeLimits;
  rng: Rng;
  clock: () => number;
  /** Issues and verifies the signed prediction ids that feedback refers to. */
  predictionIds: PredictionIds;
}

export function createServeBase(deps: ServeDependencies, options: Omit<ServeOptions, 'drift' | 'sessionOptions' | 'refusalRetryMs'> = {}): ServeBase {
  const clock = options.clock ?? Date.now;
  const settings = new ServeSettingsStore({ rewards: deps.rewards });
  return {
    deps,
    routing: new RoutingCache({
      registry: deps.registry,
      rewards: deps.rewards,
      settings,
      clock,
      ...(options.statsTtlMs === undefined ? {} : { ttlMs: options.statsTtlMs }),
    }),
    settings,
    metrics: new ServeMetrics({ clock, ...(options.metricsSink ? { sink: options.metricsSink } : {}) }),
    logger: options.logger ?? new Logger({ serviceName: 'agentflow-serve' }),
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    rng: options.rng ?? createRng(Math.floor(Math.random() * 2 ** 52)),
    clock,
    predictionIds: new PredictionIds({
      rewards: deps.rewards,
      clock,
      ...(options.feedbackRetentionDays === undefined ? {} : { retentionDays: options.feedbackRetentionDays }),
    }),
  };
}
