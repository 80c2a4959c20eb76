/** The workflow: the state machine definition as data, the stage contracts, and the local runtime. */
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
} from '#lib/workflow/definition.ts';
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
} from '#lib/workflow/stages.ts';
export { GPU_WAIT, type GpuWaitReason } from '#lib/workflow/gpuWait.ts';
export { EXECUTION_HISTORY, historyBudgetProblem, historyEventsFor, historyEventsOf, screeningBudget, type LoopBudget } from '#lib/workflow/history.ts';
export * from '#lib/workflow/contracts.ts';
export {
  runLocalWorkflow,
  localPlaceholderValues,
  type RunLocalWorkflowOptions,
  type LocalWorkflowResult,
  type WorkflowEvent,
  type WorkflowEventType,
  type LocalLambdaHandler,
  type LocalJobCommand,
} from '#lib/workflow/local.ts';
export { launchLocalJob, type LocalJobOptions, type LocalJobResult, type JobOutputLine } from '#lib/workflow/localJob.ts';
export { FAILURE_NAMES, WorkflowError, TaskError } from '#lib/workflow/errors.ts';
export type * from '#lib/workflow/asl.ts';
