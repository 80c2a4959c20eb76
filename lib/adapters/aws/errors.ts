import { AgentflowError } from '#lib/domain/errors/index.ts';

export type AwsModeErrorCode =
  | 'STACK_OUTPUTS_UNREADABLE'
  | 'STACK_OUTPUTS_MISSING'
  | 'STACK_AMBIGUOUS'
  | 'STATE_MACHINE_ARN_INVALID'
  | 'RUN_ID_INVALID'
  | 'RETRAIN_SPEC_MISSING'
  | 'HISTORY_UNAVAILABLE'
  | 'FOLLOW_ABORTED'
  | 'FUNCTION_URL_FORBIDDEN'
  | 'FUNCTION_URL_FAILED'
  | 'SCHEDULE_NOT_FOUND'
  | 'SCHEDULE_SELECTION_INVALID';

/** Errors of `--aws` mode: finding the deployed stack, starting, resuming and following executions, Function URLs, schedules. */
export class AwsModeError extends AgentflowError {
  constructor(message: string, options: { code: AwsModeErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'AwsModeError';
  }
}
