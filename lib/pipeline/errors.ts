import { AgentflowError } from '#lib/domain/errors/index.ts';

/**
 * The names a failed run ends with. AWS reserves the `States.` prefix for errors Step Functions
 * raises itself, so a Fail state must not re-raise `States.TaskFailed` or `States.Timeout`: the
 * project names them instead. Domain errors (`SpecError`, `ExportError`, …) and the Lambda
 * service's own (`Lambda.TooManyRequestsException`) keep their names.
 */
export const FAILURE_NAMES = {
  /** A Batch job exited non-zero, was killed, or its container never started (`States.TaskFailed` from a job). */
  jobFailed: 'Agentflow.JobFailed',
  /** A task outlived its TimeoutSeconds (`States.Timeout`). */
  timeout: 'Agentflow.Timeout',
  /** A GPU job waited RUNNABLE past GPU_WAIT and the job queue cancelled it: no GPU capacity or quota. */
  gpuCapacity: 'Agentflow.GpuCapacity',
  /** Any other `States.<Name>` becomes `Agentflow.<Name>` (e.g. `States.Permissions`). */
  prefix: 'Agentflow.',
} as const;

/** Errors of the state machine's definition and wiring, and of a local run that timed out. */
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
