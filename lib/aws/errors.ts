import { AgentflowError } from '#lib/errors/index.ts';

export type AwsModeErrorCode =
  | 'STACK_OUTPUTS_UNREADABLE'
  | 'STACK_OUTPUTS_MISSING'
  | 'STACK_AMBIGUOUS'
  | 'STATE_MACHINE_ARN_INVALID'
  | 'RUN_ID_INVALID'
  | 'HISTORY_UNAVAILABLE'
  | 'FOLLOW_ABORTED';

/** Errors of `--aws` mode: finding the deployed stack, starting and following an execution. */
export class AwsModeError extends AgentflowError {
  constructor(message: string, options: { code: AwsModeErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'AwsModeError';
  }
}
