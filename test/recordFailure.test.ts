/**
 * RecordFailure names a run's failure for the execution and the run record. A GPU job the job
 * queue cancelled for want of capacity cannot be produced by any local service, so its Cause is
 * written here in the exact shape Step Functions gives for a failed `batch:submitJob.sync` task:
 * the Batch job description (PascalCase, as DescribeJobs returns it) serialized into the string.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Registry } from '#lib/registry/index.ts';
import { FAILURE_NAMES, recordFailure, runFailureOf } from '#lib/stages/recordFailure.ts';
import { GPU_WAIT, RecordFailureOutput, type CaughtError } from '#lib/workflow/index.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
let registry: Registry;

beforeAll(() => {
  registry = new Registry({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
});

const CREATED_AT = 1_796_000_000_000;

/** A job the RUNNABLE time limit cancelled: it never started, so it has no attempts and no StartedAt. */
function cancelledJobCause(reason: string, waitedMinutes: number): string {
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
    Tags: { 'resourceArn': 'arn:aws:batch:us-east-1:123456789012:job/5ce9a71e-2f18-4dd1-b9ac-9d3618774d3f' },
    Timeout: { AttemptDurationSeconds: 14_400 },
  });
}

/** A job whose container ran and exited 1: the ordinary job failure. */
function exitedJobCause(): string {
  return JSON.stringify({
    Attempts: [
      {
        Container: { ExitCode: 1, LogStreamName: 'agentflow-trial/default/7c7cd09e', NetworkInterfaces: [], TaskArn: 'arn:aws:ecs:us-east-1:123456789012:task/7c7cd09e' },
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

describe('naming a run failure', () => {
  it('recognizes a GPU job the queue cancelled in RUNNABLE and says how long it waited and how to fix it', () => {
    const caught: CaughtError = { Error: 'States.TaskFailed', Cause: cancelledJobCause('CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', 30) };

    const failure = runFailureOf({ failedState: 'Embed', error: caught });

    expect(failure.error).toBe(FAILURE_NAMES.gpuCapacity);
    expect(failure.originalError).toBe('States.TaskFailed');
    expect(failure.cause).toMatch(/^Embed failed: its GPU job waited 30 minutes in RUNNABLE without starting/);
    expect(failure.cause).toContain('"All G and VT Spot Instance Requests"');
    expect(failure.cause).toContain('"Running On-Demand G and VT instances"');
    expect(failure.cause).toContain('-c agentflow:gpuInstanceTypes=');
    // The original cause stays in the message.
    expect(failure.cause).toContain('Batch said: Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY');
  });

  it.each([
    ['MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE', /agentflow:maxvCpus/],
    ['MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT', /no instance type of the compute environment has the GPU and memory/],
  ])('gives the fix for %s', (reason, fix) => {
    const failure = runFailureOf({ failedState: 'Embed', error: { Error: 'States.TaskFailed', Cause: cancelledJobCause(reason, 45) } });

    expect(failure.error).toBe(FAILURE_NAMES.gpuCapacity);
    expect(failure.cause).toMatch(fix);
    expect(failure.cause).toContain('waited 45 minutes');
  });

  it.each([
    { case: 'a job that exited non-zero', failedState: 'Embed', caught: { Error: 'States.TaskFailed', Cause: exitedJobCause() }, error: 'Agentflow.JobFailed', cause: 'Embed failed: Essential container in task exited' },
    { case: 'a task timeout with no cause', failedState: 'Embed', caught: { Error: 'States.Timeout' }, error: 'Agentflow.Timeout', cause: 'Embed failed: it ran past its TimeoutSeconds (States.Timeout)' },
    { case: 'a Lambda stage denied by IAM', failedState: 'Plan', caught: { Error: 'States.Permissions', Cause: 'not authorized' }, error: 'Agentflow.Permissions', cause: 'Plan failed: not authorized' },
    { case: 'a Map that failed with a task error', failedState: 'Trials', caught: { Error: 'States.TaskFailed', Cause: 'x' }, error: 'Agentflow.TaskFailed', cause: 'Trials failed: x' },
    {
      case: 'a domain error, which keeps its name',
      failedState: 'Prepare',
      caught: { Error: 'SpecError', Cause: JSON.stringify({ errorType: 'SpecError', errorMessage: 'spec: tasks[0].type "maybe" is not one of binary, multiclass, regression' }) },
      error: 'SpecError',
      cause: 'Prepare failed: spec: tasks[0].type "maybe" is not one of binary, multiclass, regression',
    },
    { case: 'a Lambda service error, which keeps its name', failedState: 'Reward', caught: { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate exceeded' }, error: 'Lambda.TooManyRequestsException', cause: 'Reward failed: Rate exceeded' },
  ])('names $case', ({ failedState, caught, error, cause }) => {
    const failure = runFailureOf({ failedState, error: caught });

    expect(failure).toEqual({ error, cause, originalError: caught.Error });
    expect(RecordFailureOutput.safeParse({ runId: 'r1', status: 'FAILED', error: failure.error, cause: failure.cause }).success).toBe(true);
  });
});

describe('the RecordFailure stage', () => {
  it('marks the run failed with the project error name and keeps the name Step Functions gave', async () => {
    await registry.createRun({ project: 'gpuless', runId: 'run-gpu', specDigest: 'abc' });

    const output = await recordFailure(
      { runId: 'run-gpu', project: 'gpuless', failedState: 'Embed', error: { Error: 'States.TaskFailed', Cause: cancelledJobCause('CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', 31) } },
      { registry },
    );

    expect(RecordFailureOutput.parse(output)).toMatchObject({ status: 'FAILED', error: 'Agentflow.GpuCapacity', cause: expect.stringContaining('waited 31 minutes') });
    const run = await registry.getRun('gpuless', 'run-gpu');
    expect(run).toMatchObject({ status: 'failed', stage: 'Embed', error: { name: 'Agentflow.GpuCapacity', original: 'States.TaskFailed', message: output.cause } });
  });

  it('records a domain error under its own name with no original beside it', async () => {
    const output = await recordFailure(
      { runId: 'run-spec', project: 'gpuless', failedState: 'Prepare', error: { Error: 'SpecError', Cause: JSON.stringify({ errorType: 'SpecError', errorMessage: 'bad spec' }) } },
      { registry },
    );

    expect(output).toMatchObject({ error: 'SpecError', cause: 'Prepare failed: bad spec' });
    const run = await registry.getRun('gpuless', 'run-spec');
    expect(run.error).toEqual({ name: 'SpecError', message: 'Prepare failed: bad spec' });
  });
});
