/** `--aws` mode: find the deployed stack, start a run on it, follow the execution. */
export { findStack, parseStateMachineArn, STACK_OUTPUTS, STACK_OUTPUT_ENV, type DeployedStack, type FindStackOptions } from '#lib/aws/outputs.ts';
export { startAwsRun, executionArnOf, type StartAwsRunOptions, type StartedAwsRun } from '#lib/aws/run.ts';
export { followExecution, HistoryTranslator, type ExecutionStatus, type FollowExecutionOptions, type FollowedExecution } from '#lib/aws/follow.ts';
export { describeStackWith } from '#lib/aws/cloudformation.ts';
export { AwsModeError, type AwsModeErrorCode } from '#lib/aws/errors.ts';
