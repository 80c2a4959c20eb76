import { AgentflowError } from '#lib/errors/index.ts';

/** Errors of the workflow module: a bad definition or wiring, a local run that timed out. */
export class WorkflowError extends AgentflowError {
  constructor(message: string, options: { code: string; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'WorkflowError';
  }
}

/**
 * A Task failure as the state machine sees it. Its `name` is the States Language error name
 * (`States.TaskFailed`, `Lambda.TooManyRequestsException`, a handler's own error name…), because
 * `Retry` and `Catch` match on the name; its `message` becomes the catcher's `Cause`.
 */
export class TaskError extends WorkflowError {
  constructor(errorName: string, cause: string, context: Record<string, unknown> = {}, original?: unknown) {
    super(cause, { code: 'TASK_FAILED', context: { error: errorName, ...context }, cause: original });
    this.name = errorName;
  }
}
