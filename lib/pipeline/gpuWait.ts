/**
 * How long a GPU job may wait RUNNABLE for capacity. A new account's GPU quota is usually 0, and
 * then Batch jobs never leave RUNNABLE; the job queue cancels them after this time (its
 * `jobStateTimeLimitActions`) so a run fails in minutes with the fix instead of at the Batch
 * stages' task timeouts. The queue (cdk/) and the run failure message (lib/) both read this table.
 */
export const GPU_WAIT = {
  /** Default for the `agentflow:maxGpuWaitMinutes` context key; Batch accepts 10 minutes to 24 hours. */
  defaultMinutes: 30,
  minMinutes: 10,
  maxMinutes: 24 * 60,
  /** The RUNNABLE reasons Batch can act on for EC2 compute environments. */
  reasons: ['CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', 'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE', 'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT'],
  /** Batch's statusReason on a job the time limit cancelled, followed by the reason. */
  cancelledStatusPrefix: 'Canceled by JobStateTimeLimit action due to reason: ',
} as const;

export type GpuWaitReason = (typeof GPU_WAIT.reasons)[number];
