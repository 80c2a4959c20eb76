/** The pipeline: the state machine definition as data, the stage table and the contracts between its states. */
export {
  buildDefinition,
  substitutePlaceholders,
  placeholdersIn,
  failedStateName,
  FAILURE_NOT_RECORDED,
  PLACEHOLDERS,
  STATE_NAMES,
  LAMBDA_INVOKE,
  BATCH_SUBMIT_JOB_SYNC,
  LAMBDA_TRANSIENT_ERRORS,
  BATCH_TRANSIENT_ERRORS,
  type DefinitionOptions,
} from '#lib/pipeline/definition.ts';
export {
  STAGES,
  LAMBDA_STAGES,
  BATCH_STAGES,
  JOB_QUEUE_PLACEHOLDER,
  PARTITION_PLACEHOLDER,
  stageOf,
  type Stage,
  type LambdaStage,
  type BatchStage,
  type LambdaStageName,
  type BatchStageName,
  type BatchJobName,
} from '#lib/pipeline/stages.ts';
export { GPU_WAIT, type GpuWaitReason } from '#lib/pipeline/gpuWait.ts';
export { EXECUTION_HISTORY, historyBudgetProblem, historyEventsFor, historyEventsOf, screeningBudget, type LoopBudget } from '#lib/pipeline/history.ts';
export * from '#lib/pipeline/contracts.ts';
export { FAILURE_NAMES, WorkflowError, TaskError } from '#lib/pipeline/errors.ts';
export type * from '#lib/pipeline/asl.ts';
