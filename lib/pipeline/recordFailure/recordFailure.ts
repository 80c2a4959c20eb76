import type { RunLog } from '#lib/adapters/registry/index.ts';
import type { CaughtError, RecordFailureInput, RecordFailureOutput } from '#lib/pipeline/contracts.ts';
import { FAILURE_NAMES } from '#lib/pipeline/errors.ts';
import { gpuCapacityFix } from '#lib/pipeline/gpuCapacity.ts';
import { GPU_WAIT } from '#lib/pipeline/gpuWait.ts';
import { BATCH_STAGES } from '#lib/pipeline/stages.ts';

export { FAILURE_NAMES };

const RESERVED_PREFIX = 'States.';

/** What RecordFailure records: the project's error name, a readable cause, and what Step Functions said. */
export interface RunFailure {
  error: string;
  cause: string;
  /** The caught error's own name, kept on the run record (e.g. `States.TaskFailed`). */
  originalError: string;
}

/** A Batch job description, as `submitJob.sync` puts it (PascalCase) in a failed task's Cause. */
interface BatchJobDescription {
  StatusReason?: unknown;
  CreatedAt?: unknown;
  StartedAt?: unknown;
  StoppedAt?: unknown;
  LogTail?: unknown;
  errorMessage?: unknown;
}

function parseCause(cause: string | undefined): BatchJobDescription | undefined {
  if (!cause) return undefined;
  try {
    const parsed: unknown = JSON.parse(cause);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as BatchJobDescription) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Turns a caught Step Functions error into something a person can read. Lambda causes are
 * `{"errorType","errorMessage"}` JSON; Batch causes are a job description with `StatusReason`
 * (and, from the local launcher, the job's last stderr lines in `LogTail`).
 */
export function readableCause(cause: string | undefined): string {
  if (!cause) return 'no cause was given';
  const record = parseCause(cause);
  if (!record) return cause;
  if (typeof record.errorMessage === 'string') return record.errorMessage;
  const parts: string[] = [];
  if (typeof record.StatusReason === 'string') parts.push(record.StatusReason);
  const tail = record.LogTail;
  if (Array.isArray(tail) && tail.length > 0) parts.push(tail.join('\n'));
  else if (typeof tail === 'string' && tail) parts.push(tail);
  return parts.length > 0 ? parts.join('\n') : cause;
}

/**
 * A GPU job the job queue cancelled after waiting RUNNABLE past GPU_WAIT (its statusReason is
 * `Canceled by JobStateTimeLimit action due to reason: <REASON>`), described with the fix.
 * Undefined for any other failure.
 */
export function gpuCapacityFailure(failedState: string, caught: CaughtError): string | undefined {
  const job = parseCause(caught.Cause);
  const statusReason = job?.StatusReason;
  if (typeof statusReason !== 'string' || !statusReason.startsWith(GPU_WAIT.cancelledStatusPrefix)) return undefined;
  const reason = statusReason.slice(GPU_WAIT.cancelledStatusPrefix.length).trim();
  const created = job?.CreatedAt;
  const stopped = job?.StoppedAt;
  const waited =
    typeof created === 'number' && typeof stopped === 'number' && stopped >= created
      ? `${Math.round((stopped - created) / 60_000)} minutes`
      : `the job queue's limit (${GPU_WAIT.defaultMinutes} minutes unless -c agentflow:maxGpuWaitMinutes changed it)`;
  const explanation = gpuCapacityFix(reason);
  return (
    `${failedState} failed: its GPU job waited ${waited} in RUNNABLE without starting and the job queue cancelled it (${reason}): ${explanation}. ` +
    `Then resume the run (agentflow resume <runId> -p <project> --aws). Batch said: ${statusReason}`
  );
}

/** The project's name for a caught error: `States.*` renamed, every other name kept. */
function projectErrorName(failedState: string, caught: CaughtError): string {
  const name = caught.Error;
  if (!name.startsWith(RESERVED_PREFIX)) return name;
  if (name === 'States.Timeout') return FAILURE_NAMES.timeout;
  if (name === 'States.TaskFailed' && BATCH_STAGES.some((stage) => stage.state === failedState)) return FAILURE_NAMES.jobFailed;
  return `${FAILURE_NAMES.prefix}${name.slice(RESERVED_PREFIX.length)}`;
}

/** The run's failure as the execution ends with it: a project error name and a readable cause. Pure. */
export function runFailureOf(input: Pick<RecordFailureInput, 'failedState' | 'error'>): RunFailure {
  const gpu = gpuCapacityFailure(input.failedState, input.error);
  if (gpu) return { error: FAILURE_NAMES.gpuCapacity, cause: gpu, originalError: input.error.Error };
  const error = projectErrorName(input.failedState, input.error);
  const cause = readableCause(input.error.Cause);
  if (error === FAILURE_NAMES.timeout) {
    // A task timeout's Cause is often empty or just the error name; say what it means.
    const said = cause === input.error.Error || cause === 'no cause was given' ? '' : `: ${cause}`;
    return { error, cause: `${input.failedState} failed: it ran past its TimeoutSeconds (${input.error.Error}${said})`, originalError: input.error.Error };
  }
  return { error, cause: `${input.failedState} failed: ${cause}`, originalError: input.error.Error };
}

/**
 * The RecordFailure stage: marks the run failed with the failing state and a readable error, so
 * `runs show` says why. A run whose spec never parsed has no record yet; it gets one here.
 */
export async function recordFailure(input: RecordFailureInput, deps: { runLog: RunLog }): Promise<RecordFailureOutput> {
  const failure = runFailureOf(input);
  if (!(await deps.runLog.findRun(input.project, input.runId))) {
    await deps.runLog.createRun({ project: input.project, runId: input.runId, specDigest: 'unreadable' });
  }
  await deps.runLog.updateRunStatus(input.project, input.runId, 'failed', {
    stage: input.failedState,
    error: { name: failure.error, message: failure.cause, ...(failure.originalError === failure.error ? {} : { original: failure.originalError }) },
  });
  return { runId: input.runId, status: 'FAILED', error: failure.error, cause: failure.cause };
}
