/**
 * What to tell a user whose GPU job never started: the job queue cancels a job that waits
 * RUNNABLE past GPU_WAIT (gpuWait.ts) and says why in its statusReason. RecordFailure (a failed
 * Embed) and Reward (a generation whose trials all went unplaced) both explain it with this.
 */
import { GPU_WAIT, type GpuWaitReason } from '#lib/pipeline/gpuWait.ts';

/** Why Batch could not place the job, and what to change, by the RUNNABLE reason it acted on. */
export const GPU_WAIT_EXPLANATIONS: Readonly<Record<GpuWaitReason, string>> = {
  'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY':
    'no GPU instance could be launched: a new account\'s GPU quota is usually 0. Request more in Service Quotas → Amazon EC2 → "All G and VT Spot Instance Requests" (Spot, the default) or "Running On-Demand G and VT instances" (with -c agentflow:spot=false), in vCPUs, for this region; or choose instance types you have quota and capacity for with `npx cdk deploy -c agentflow:gpuInstanceTypes=\'["g4dn.xlarge"]\'`',
  'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE':
    'the job needs more vCPUs than the compute environment may ever run: raise `-c agentflow:maxvCpus=…` or choose smaller instance types with `-c agentflow:gpuInstanceTypes=…`, then redeploy',
  'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT':
    'no instance type of the compute environment has the GPU and memory the job asks for: choose instance types that do with `npx cdk deploy -c agentflow:gpuInstanceTypes=\'["g5.xlarge"]\'`',
};

/** The explanation and fix for a RUNNABLE reason; unknown or absent reasons get the quota advice first, as the commonest cause. */
export function gpuCapacityFix(reason?: string): string {
  if (reason === undefined) return GPU_WAIT_EXPLANATIONS[GPU_WAIT.reasons[0]];
  const known = (GPU_WAIT.reasons as readonly string[]).includes(reason);
  return known
    ? GPU_WAIT_EXPLANATIONS[reason as GpuWaitReason]
    : `AWS Batch could not place it (${reason}); see the job queue's RUNNABLE reasons in the Batch console`;
}
