/** `--aws` mode: find the deployed stack and make its clients; start, resume and follow runs; call its Function URLs; manage its schedules. */
export {
  DEFAULT_STACK_NAME,
  findStack,
  parseStateMachineArn,
  STACK_OUTPUTS,
  STACK_OUTPUT_ENV,
  type DeployedStack,
  type FindStackOptions,
} from '#lib/adapters/aws/outputs.ts';
export {
  cloudFormationClient,
  recordCallerCalls,
  stackClients,
  withCallRecording,
  type AwsClientOptions,
  type AwsServiceName,
  type InstrumentableClient,
  type StackClients,
} from '#lib/adapters/aws/clients.ts';
export { startAwsRun, type StartAwsRunOptions, type StartedAwsRun } from '#lib/adapters/aws/run.ts';
export {
  executionArnOf,
  retrainStarter,
  runExecutionArn,
  startRunExecution,
  type StartRunExecutionOptions,
  type StartedExecution,
} from '#lib/adapters/aws/executions.ts';
export { resumeAwsRun, restartName, type ResumeAwsRunOptions, type ResumedAwsRun } from '#lib/adapters/aws/resume.ts';
export { followExecution, HistoryTranslator, type ExecutionStatus, type FollowExecutionOptions, type FollowedExecution } from '#lib/adapters/aws/follow.ts';
export {
  FunctionUrlClient,
  FunctionUrlError,
  FUNCTION_URL_PERMISSIONS,
  readServedAnswer,
  type FunctionUrlClientOptions,
  type FunctionUrlRequest,
} from '#lib/adapters/aws/functionUrl.ts';
export { listStackSchedules, setScheduleState, type DeployedSchedule, type ScheduleState } from '#lib/adapters/aws/schedules.ts';
export { callerPolicyFor, callerPolicyValues, fillCallerPolicy, CALLER_POLICY_PATH } from '#lib/adapters/aws/callerPolicy.ts';
export { describeStackWith } from '#lib/adapters/aws/cloudformation.ts';
export { AwsModeError, type AwsModeErrorCode } from '#lib/adapters/aws/errors.ts';
