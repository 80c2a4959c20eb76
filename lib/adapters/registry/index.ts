/**
 * The owner of both DynamoDB tables and every item in them: the registry table (model versions,
 * aliases, serving set: ModelRegistry; runs: RunLog) and the reward table (trial rewards, tuner
 * policy, online feedback, arm counters, serving settings, the prediction signing key, monitor
 * snapshots and retraining claims: RewardLog). Single-item conditional writes (and one batched
 * put of logged inputs), so they run unchanged on dynalite. Every item kind and its key: layout.ts.
 */
export {
  ModelRegistry,
  type AliasState,
  type ModelRegistryOptions,
  type ModelVersion,
  type ServingSet,
  type ServingSetState,
  type VersionLineage,
  type VersionStatus,
} from './modelRegistry.ts';
export { RunLog, type NewRun, type RunError, type RunEvent, type RunLogOptions, type RunRecord, type RunStatus } from './runLog.ts';
export { layout, type ItemKey } from './layout.ts';
export {
  RewardLog,
  type ArmSnapshot,
  type ArmStats,
  type RetrainClaim,
  type PolicyState,
  type FeedbackRecord,
  type LabelledFeedbackRow,
  type LoggedInputs,
  type RewardLogOptions,
  type TrialRecord,
} from './rewards.ts';
export { RegistryError } from './dynamo.ts';
export {
  DEFAULT_BUCKET,
  DEFAULT_REGISTRY_TABLE,
  DEFAULT_REWARD_TABLE,
  RUNS_BY_TIME_INDEX,
  createTablesIfMissing,
  tableDefinitions,
  type TableDefinition,
  type TableNames,
} from './tables.ts';
