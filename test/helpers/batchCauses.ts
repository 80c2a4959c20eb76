/**
 * Causes in the exact shape Step Functions gives a failed `batch:submitJob.sync` task: the Batch
 * job description (PascalCase, as DescribeJobs returns it) serialized into the Cause string. No
 * local service produces a job the queue cancelled for want of GPU capacity, so tests inject these.
 */
import { GPU_WAIT } from '#lib/pipeline/index.ts';

export const CREATED_AT = 1_796_000_000_000;

/** A job the RUNNABLE time limit cancelled: it never started, so it has no attempts and no StartedAt. */
export function cancelledJobCause(reason: string, waitedMinutes: number): string {
  return JSON.stringify({
    Attempts: [],
    Container: {
      Command: ['node', 'functions/jobs/embed.js'],
      Environment: [
        { Name: 'AGENTFLOW_RUN_ID', Value: 'run-1' },
        { Name: 'MANAGED_BY_AWS', Value: 'STARTED_BY_STEP_FUNCTIONS' },
      ],
      Image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/agentflow-gpu:latest',
      NetworkInterfaces: [],
      ResourceRequirements: [{ Type: 'GPU', Value: '1' }],
      Ulimits: [],
      Volumes: [],
    },
    CreatedAt: CREATED_AT,
    DependsOn: [],
    JobArn: 'arn:aws:batch:us-east-1:123456789012:job/5ce9a71e-2f18-4dd1-b9ac-9d3618774d3f',
    JobDefinition: 'arn:aws:batch:us-east-1:123456789012:job-definition/agentflow-embed:3',
    JobId: '5ce9a71e-2f18-4dd1-b9ac-9d3618774d3f',
    JobName: 'agentflow-embed-run-1',
    JobQueue: 'arn:aws:batch:us-east-1:123456789012:job-queue/agentflow-gpu',
    Parameters: {},
    PlatformCapabilities: ['EC2'],
    PropagateTags: false,
    RetryStrategy: { Attempts: 3, EvaluateOnExit: [] },
    Status: 'FAILED',
    StatusReason: `${GPU_WAIT.cancelledStatusPrefix}${reason}`,
    StoppedAt: CREATED_AT + waitedMinutes * 60_000,
    Tags: { resourceArn: 'arn:aws:batch:us-east-1:123456789012:job/5ce9a71e-2f18-4dd1-b9ac-9d3618774d3f' },
    Timeout: { AttemptDurationSeconds: 14_400 },
  });
}

/** A job whose container ran and exited 1: the ordinary job failure. */
export function exitedJobCause(): string {
  return JSON.stringify({
    Attempts: [
      {
        Container: {
          ExitCode: 1,
          LogStreamName: 'agentflow-trial/default/7c7cd09e',
          NetworkInterfaces: [],
          TaskArn: 'arn:aws:ecs:us-east-1:123456789012:task/7c7cd09e',
        },
        StartedAt: CREATED_AT + 60_000,
        StatusReason: 'Essential container in task exited',
        StoppedAt: CREATED_AT + 120_000,
      },
    ],
    Container: { ExitCode: 1, LogStreamName: 'agentflow-trial/default/7c7cd09e' },
    CreatedAt: CREATED_AT,
    JobId: '1cd8414e-676b-4bd7-9aac-ab8788c4e850',
    JobName: 'agentflow-embed-run-2',
    StartedAt: CREATED_AT + 60_000,
    Status: 'FAILED',
    StatusReason: 'Essential container in task exited',
    StoppedAt: CREATED_AT + 120_000,
  });
}
