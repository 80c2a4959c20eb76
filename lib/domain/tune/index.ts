/** The tuner: rewards from validation metrics, and policies that propose task weights λ across trials. */
export { TuneError, type TuneErrorCode } from './errors.ts';
export {
  rewardOf,
  scoreOf,
  HIGHER_IS_BETTER,
  VIOLATION_PENALTY,
  type ObjectiveMetric,
  type ObjectiveTask,
  type FloorViolation,
  type RewardBreakdown,
} from './objective.ts';
export { lambdaOf, learningRateOf, learningRateRange, HISTORY_LIMIT, DEFAULT_LR_RANGE } from './common.ts';
export { validateSpace, dimensionValue, hyperparametersOf, SEARCH_DIMENSION_NAMES, type SearchDimension, type SearchDimensionName } from './space.ts';
export { createPgpeTuner, centeredRanks, PGPE_DEFAULTS, type PgpeHyperparameters, type PgpeState } from './pgpe.ts';
export {
  createRandomSearchTuner,
  createUniformTuner,
  RANDOM_SEARCH_DEFAULTS,
  type RandomSearchOptions,
  type RandomSearchState,
  type UniformState,
} from './search.ts';
export type { BestTrial, PendingTrial, Proposal, TrialRecord, TrialResult, Tuner, TunerInit, TunerKind, TunerStateBase } from './types.ts';
export { dimensionEffects, EFFECT_DEFAULTS, type DimensionEffect, type EffectOptions, type EffectTrial } from './effects.ts';
export type { AnyTunerState } from './registry.ts';
export { createTuner, type TunerOptions } from './registry.ts';
