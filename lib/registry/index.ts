/**
 * The registry table (model versions, aliases, serving set, runs) and the reward table (trial
 * rewards, tuner policy, online feedback, arm counters), on DynamoDB with single-item
 * conditional writes only, so they run unchanged on dynalite.
 */
export {
  Registry,
  type AliasState,
  type ModelVersion,
  type NewRun,
  type RegistryOptions,
  type RunError,
  type RunEvent,
  type RunRecord,
  type RunStatus,
  type ServingSet,
  type ServingSetState,
  type VersionLineage,
  type VersionStatus,
} from './registry.ts';
export { RewardLog, type ArmStats, type PolicyState, type FeedbackRecord, type RewardLogOptions, type TrialRecord } from './rewards.ts';
export { RegistryError } from './dynamo.ts';
export {
  DEFAULT_BUCKET,
  DEFAULT_REGISTRY_TABLE,
  DEFAULT_REWARD_TABLE,
  RUNS_BY_TIME_INDEX,
  tableDefinitions,
  type TableDefinition,
  type TableNames,
} from './tables.ts';
