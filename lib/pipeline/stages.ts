import { WorkflowError } from '#lib/pipeline/errors.ts';

/**
 * The stages of the training loop as a table: the one place the workflow definition, the local
 * runner and the CDK stack all read, so a stage cannot be wired in one runtime and missing in another.
 */

/** Task states that invoke a Lambda function (in AWS) or an in-process handler (locally). */
export type LambdaStageName = 'Prepare' | 'Plan' | 'Reward' | 'Export' | 'Promote' | 'RecordFailure';
/** Task states that run a Batch job (in AWS) or a child process (locally). */
export type BatchStageName = 'Embed' | 'RunTrial';
/** The job commands behind the Batch stages (`functions/jobs/<job>` by convention). */
export type BatchJobName = 'embed' | 'trial';

export interface LambdaStage {
  state: LambdaStageName;
  kind: 'lambda';
  /** The handler's name; its entry point is `functions/handlers/<handler>.ts` by convention. */
  handler: string;
  /** The definition placeholder the deployment substitutes with the function's ARN. */
  placeholder: string;
  /** Task timeout. Lambda stops at 900 s anyway; the state times out with it rather than waiting 60 s by default. */
  timeoutSeconds: number;
  description: string;
}

export interface BatchStage {
  state: BatchStageName;
  kind: 'batch';
  job: BatchJobName;
  /** The definition placeholder the deployment substitutes with the job definition's ARN. */
  placeholder: string;
  /** Task timeout: how long Step Functions waits for the job (queueing included) before `States.Timeout`. */
  timeoutSeconds: number;
  /** Whether the job needs a GPU compute environment in AWS. */
  gpu: boolean;
  description: string;
}

export type Stage = LambdaStage | BatchStage;

/** Every Batch stage shares one job queue (the GPU queue). */
export const JOB_QUEUE_PLACEHOLDER = 'JobQueueArn';

/** The AWS partition (`aws`, `aws-cn`, …) of the service integration ARNs; the deployment gives the stack's. */
export const PARTITION_PLACEHOLDER = 'Partition';

export const STAGES = [
  {
    state: 'Prepare',
    kind: 'lambda',
    handler: 'prepare',
    placeholder: 'PrepareFunctionArn',
    timeoutSeconds: 900,
    description: 'validate the spec and datasets, create the run record, fit the base-model graph, fix the feature location',
  },
  {
    state: 'Embed',
    kind: 'batch',
    job: 'embed',
    placeholder: 'EmbedJobDefinitionArn',
    timeoutSeconds: 6 * 3600,
    gpu: true,
    description: 'embed the raw data with the frozen base model into feature shards (skipped when the digest is cached)',
  },
  {
    state: 'Plan',
    kind: 'lambda',
    handler: 'plan',
    placeholder: 'PlanFunctionArn',
    timeoutSeconds: 300,
    description: 'warm-start the task-weight policy and propose the first generation of trials',
  },
  {
    state: 'RunTrial',
    kind: 'batch',
    job: 'trial',
    placeholder: 'TrialJobDefinitionArn',
    timeoutSeconds: 4 * 3600,
    gpu: true,
    description: 'train the multi-task heads for one proposal and write its validation metrics',
  },
  {
    state: 'Reward',
    kind: 'lambda',
    handler: 'reward',
    placeholder: 'RewardFunctionArn',
    timeoutSeconds: 300,
    description: 'log the rewards, update the policy, propose the next generation or declare the best trial',
  },
  {
    state: 'Export',
    kind: 'lambda',
    handler: 'export',
    placeholder: 'ExportFunctionArn',
    timeoutSeconds: 900,
    description: 'merge the best trial behind the base model into one ONNX file with its model card',
  },
  {
    state: 'Promote',
    kind: 'lambda',
    handler: 'promote',
    placeholder: 'PromoteFunctionArn',
    timeoutSeconds: 300,
    description: 'register the version and move the production alias only if it beats the champion',
  },
  {
    state: 'RecordFailure',
    kind: 'lambda',
    handler: 'recordFailure',
    placeholder: 'RecordFailureFunctionArn',
    timeoutSeconds: 60,
    description: 'mark the run failed with the failing state and its error',
  },
] as const satisfies readonly Stage[];

export const LAMBDA_STAGES: readonly LambdaStage[] = STAGES.filter((s): s is Extract<(typeof STAGES)[number], { kind: 'lambda' }> => s.kind === 'lambda');
export const BATCH_STAGES: readonly BatchStage[] = STAGES.filter((s): s is Extract<(typeof STAGES)[number], { kind: 'batch' }> => s.kind === 'batch');

export function stageOf(state: LambdaStageName): LambdaStage;
export function stageOf(state: BatchStageName): BatchStage;
export function stageOf(state: LambdaStageName | BatchStageName): Stage {
  const stage = STAGES.find((s) => s.state === state);
  // The table above is exhaustive over both unions; this only guards against a future edit.
  if (!stage) throw new WorkflowError(`no stage named "${state}" in STAGES; add it to the table`, { code: 'STAGE_UNKNOWN', context: { state } });
  return stage;
}
