import type { Registry } from '#lib/registry/index.ts';
import type { RecordFailureInput, RecordFailureOutput } from '#lib/workflow/contracts.ts';

/**
 * Turns a caught Step Functions error into something a person can read. Lambda causes are
 * `{"errorType","errorMessage"}` JSON; Batch causes are a job description with `StatusReason`
 * (and, from the local launcher, the job's last stderr lines in `LogTail`).
 */
export function readableCause(cause: string | undefined): string {
  if (!cause) return 'no cause was given';
  let parsed: unknown;
  try {
    parsed = JSON.parse(cause);
  } catch {
    return cause;
  }
  if (typeof parsed !== 'object' || parsed === null) return cause;
  const record = parsed as Record<string, unknown>;
  if (typeof record.errorMessage === 'string') return record.errorMessage;
  const parts: string[] = [];
  if (typeof record.StatusReason === 'string') parts.push(record.StatusReason);
  const tail = record.LogTail;
  if (Array.isArray(tail) && tail.length > 0) parts.push(tail.join('\n'));
  else if (typeof tail === 'string' && tail) parts.push(tail);
  return parts.length > 0 ? parts.join('\n') : cause;
}

/**
 * The RecordFailure stage: marks the run failed with the failing state and a readable error, so
 * `runs show` says why. A run whose spec never parsed has no record yet; it gets one here.
 */
export async function recordFailure(input: RecordFailureInput, deps: { registry: Registry }): Promise<RecordFailureOutput> {
  const cause = readableCause(input.error.Cause);
  const error = { name: input.error.Error, message: `${input.failedState} failed: ${cause}` };
  if (!(await deps.registry.findRun(input.project, input.runId))) {
    await deps.registry.createRun({ project: input.project, runId: input.runId, specDigest: 'unreadable' });
  }
  await deps.registry.updateRunStatus(input.project, input.runId, 'failed', { stage: input.failedState, error });
  return { runId: input.runId, status: 'FAILED', error: input.error.Error, cause: error.message };
}
