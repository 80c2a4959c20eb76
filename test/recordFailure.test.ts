/**
 * RecordFailure names a run's failure for the execution and the run record. A GPU job the job
 * queue cancelled for want of capacity cannot be produced by any local service, so its Cause is
 * injected in the exact shape Step Functions gives (test/helpers/batchCauses.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { RunLog } from '#lib/adapters/registry/index.ts';
import { FAILURE_NAMES, recordFailure, runFailureOf } from '#lib/pipeline/recordFailure/recordFailure.ts';
import { RecordFailureOutput, type CaughtError } from '#lib/pipeline/index.ts';
import { cancelledJobCause, exitedJobCause } from './helpers/batchCauses.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
let runLog: RunLog;

beforeAll(() => {
  runLog = new RunLog({ dynamodb: aws.clients.dynamodb, tableName: aws.config.registryTable });
});

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
    {
      case: 'a job that exited non-zero',
      failedState: 'Embed',
      caught: { Error: 'States.TaskFailed', Cause: exitedJobCause() },
      error: 'Agentflow.JobFailed',
      cause: 'Embed failed: Essential container in task exited',
    },
    {
      case: 'a task timeout with no cause',
      failedState: 'Embed',
      caught: { Error: 'States.Timeout' },
      error: 'Agentflow.Timeout',
      cause: 'Embed failed: it ran past its TimeoutSeconds (States.Timeout)',
    },
    {
      case: 'a Lambda stage denied by IAM',
      failedState: 'Plan',
      caught: { Error: 'States.Permissions', Cause: 'not authorized' },
      error: 'Agentflow.Permissions',
      cause: 'Plan failed: not authorized',
    },
    {
      case: 'a Map that failed with a task error',
      failedState: 'Trials',
      caught: { Error: 'States.TaskFailed', Cause: 'x' },
      error: 'Agentflow.TaskFailed',
      cause: 'Trials failed: x',
    },
    {
      case: 'a domain error, which keeps its name',
      failedState: 'Prepare',
      caught: {
        Error: 'SpecError',
        Cause: JSON.stringify({ errorType: 'SpecError', errorMessage: 'spec: tasks[0].type "maybe" is not one of binary, multiclass, regression' }),
      },
      error: 'SpecError',
      cause: 'Prepare failed: spec: tasks[0].type "maybe" is not one of binary, multiclass, regression',
    },
    {
      case: 'a Lambda service error, which keeps its name',
      failedState: 'Reward',
      caught: { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate exceeded' },
      error: 'Lambda.TooManyRequestsException',
      cause: 'Reward failed: Rate exceeded',
    },
  ])('names $case', ({ failedState, caught, error, cause }) => {
    const failure = runFailureOf({ failedState, error: caught });

    expect(failure).toEqual({ error, cause, originalError: caught.Error });
    expect(RecordFailureOutput.safeParse({ runId: 'r1', status: 'FAILED', error: failure.error, cause: failure.cause }).success).toBe(true);
  });
});

describe('the RecordFailure stage', () => {
  it('marks the run failed with the project error name and keeps the name Step Functions gave', async () => {
    await runLog.createRun({ project: 'gpuless', runId: 'run-gpu', specDigest: 'abc' });

    const output = await recordFailure(
      {
        runId: 'run-gpu',
        project: 'gpuless',
        failedState: 'Embed',
        error: { Error: 'States.TaskFailed', Cause: cancelledJobCause('CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', 31) },
      },
      { runLog },
    );

    expect(RecordFailureOutput.parse(output)).toMatchObject({
      status: 'FAILED',
      error: 'Agentflow.GpuCapacity',
      cause: expect.stringContaining('waited 31 minutes'),
    });
    const run = await runLog.getRun('gpuless', 'run-gpu');
    expect(run).toMatchObject({
      status: 'failed',
      stage: 'Embed',
      error: { name: 'Agentflow.GpuCapacity', original: 'States.TaskFailed', message: output.cause },
    });
  });

  it('records a domain error under its own name with no original beside it', async () => {
    const output = await recordFailure(
      {
        runId: 'run-spec',
        project: 'gpuless',
        failedState: 'Prepare',
        error: { Error: 'SpecError', Cause: JSON.stringify({ errorType: 'SpecError', errorMessage: 'bad spec' }) },
      },
      { runLog },
    );

    expect(output).toMatchObject({ error: 'SpecError', cause: 'Prepare failed: bad spec' });
    const run = await runLog.getRun('gpuless', 'run-spec');
    expect(run.error).toEqual({ name: 'SpecError', message: 'Prepare failed: bad spec' });
  });
});
