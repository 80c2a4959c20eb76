import * as z from 'zod';
/**
 * `--aws` mode at the SDK boundary: the real SFN client with a request handler that records each
 * request and answers with canned AWS JSON-protocol responses (no AWS is reachable), and the real
 * artifact store on the local S3 stand-in.
 */
import { mkdtemp, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SFNClient, type SFNClientConfig } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsModeError, DEFAULT_STACK_NAME, executionArnOf, findStack, followExecution, startAwsRun, STACK_OUTPUTS } from '#lib/adapters/aws/index.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';
import type { WorkflowEvent } from '#lib/adapters/local/workflow.ts';
import { useLocalAws } from './helpers/localAws.ts';

const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:AgentflowWorkflow';

interface Recorded {
  operation: string;
  body: Record<string, unknown>;
}
type Answer = { status?: number; body: unknown };

/** An SFN client whose transport answers from `answers` in order and records what was sent. */
function cannedSfn(answers: Answer[]): { sfn: SFNClient; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const requestHandler = {
    async handle(request: { headers: Record<string, string>; body?: unknown }) {
      const target = request.headers['x-amz-target'] ?? '';
      requests.push({ operation: target.replace('AWSStepFunctions.', ''), body: JSON.parse(String(request.body ?? '{}')) as Record<string, unknown> });
      const answer = answers.shift();
      if (!answer) throw new Error(`no canned response left for ${target}`);
      return {
        response: {
          statusCode: answer.status ?? 200,
          headers: { 'content-type': 'application/x-amz-json-1.0' },
          body: new TextEncoder().encode(JSON.stringify(answer.body)),
        },
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  };
  const sfn = new SFNClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
    requestHandler: requestHandler as unknown as SFNClientConfig['requestHandler'],
  });
  return { sfn, requests };
}

const awsError = (type: string, message: string): Answer => ({ status: 400, body: { __type: `com.amazonaws.states#${type}`, message } });
const epoch = (iso: string) => Date.parse(iso) / 1000;

describe('findStack', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agentflow-outputs-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const outputs = {
    [STACK_OUTPUTS.bucket]: 'agentflow-artifacts-abc',
    [STACK_OUTPUTS.registryTable]: 'Agentflow-Registry-1',
    [STACK_OUTPUTS.rewardTable]: 'Agentflow-Rewards-1',
    [STACK_OUTPUTS.stateMachineArn]: STATE_MACHINE_ARN,
    [STACK_OUTPUTS.inferUrl]: 'https://abc.lambda-url.eu-west-1.on.aws/',
  };

  it('reads the agentflow stack from a cdk --outputs-file, with the region from the state machine ARN', async () => {
    const file = join(dir, 'outputs.json');
    await writeFile(file, JSON.stringify({ OtherStack: { Foo: 'bar' }, Agentflow: outputs }));
    const stack = await findStack({ outputsFile: file, env: {} });
    expect(stack).toMatchObject({ region: 'eu-west-1', bucket: 'agentflow-artifacts-abc', stateMachineArn: STATE_MACHINE_ARN, inferUrl: outputs.InferUrl });
    expect(stack.sources.bucket).toBe(file);
  });

  it('lets environment variables override the file', async () => {
    const file = join(dir, 'outputs-env.json');
    await writeFile(file, JSON.stringify({ Agentflow: outputs }));
    const stack = await findStack({ outputsFile: file, env: { AGENTFLOW_BUCKET: 'from-env' } });
    expect(stack.bucket).toBe('from-env');
    expect(stack.sources.bucket).toBe('$AGENTFLOW_BUCKET');
  });

  it('asks CloudFormation only for what is still missing, and names every output it cannot find', async () => {
    const asked: string[] = [];
    const stack = await findStack({ stackName: 'Agentflow', env: {}, describeStack: async (name) => (asked.push(name), outputs) });
    expect(asked).toEqual(['Agentflow']);
    expect(stack.rewardTable).toBe('Agentflow-Rewards-1');
    await expect(findStack({ env: { AGENTFLOW_BUCKET: 'b' } })).rejects.toThrow(/RegistryTableName .*RewardTableName .*StateMachineArn/);
  });

  it('describes the default stack when no name is given, and says which stack the outputs came from', async () => {
    const asked: string[] = [];
    const described = await findStack({ env: {}, describeStack: async (name) => (asked.push(name), outputs) });
    expect(asked).toEqual([DEFAULT_STACK_NAME]);
    expect(described.stackName).toBe(DEFAULT_STACK_NAME);
    const file = join(dir, 'named.json');
    await writeFile(file, JSON.stringify({ AgentflowDev: outputs }));
    // A file with one agentflow stack needs no name, whatever the stack is called.
    await expect(findStack({ outputsFile: file, env: {} })).resolves.toMatchObject({ stackName: 'AgentflowDev', bucket: 'agentflow-artifacts-abc' });
  });

  it('refuses a file with two agentflow stacks unless one is named', async () => {
    const file = join(dir, 'two.json');
    await writeFile(file, JSON.stringify({ A: outputs, B: outputs }));
    await expect(findStack({ outputsFile: file, env: {} })).rejects.toMatchObject({ code: 'STACK_AMBIGUOUS' });
    await expect(findStack({ outputsFile: file, stackName: 'B', env: {} })).resolves.toMatchObject({ bucket: 'agentflow-artifacts-abc' });
  });
});

describe('startAwsRun', () => {
  const aws = useLocalAws();
  let dir: string;
  let specPath: string;
  let store: ArtifactStore;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agentflow-awsrun-'));
    const example = resolve(import.meta.dirname, '..', 'examples', 'tabular');
    specPath = join(dir, 'spec.json');
    await copyFile(join(example, 'spec.json'), specPath);
    await copyFile(join(example, 'train.csv'), join(dir, 'train.csv'));
    store = new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads the datasets, then starts an execution named by the run id with the run context as input', async () => {
    const executionArn = executionArnOf(STATE_MACHINE_ARN, 'run-1');
    const { sfn, requests } = cannedSfn([awsError('ExecutionDoesNotExist', 'none'), { body: { executionArn, startDate: epoch('2025-01-02T03:04:05Z') } }]);

    const started = await startAwsRun({ specPath, sfn, store, stateMachineArn: STATE_MACHINE_ARN, runId: 'run-1' });

    const specUri = `s3://${aws.config.bucket}/runs/run-1/spec.json`;
    expect(requests).toEqual([
      { operation: 'DescribeExecution', body: { executionArn } },
      {
        operation: 'StartExecution',
        body: { stateMachineArn: STATE_MACHINE_ARN, name: 'run-1', input: JSON.stringify({ runId: 'run-1', project: 'churn-tabular', specUri }) },
      },
    ]);
    expect(started).toMatchObject({
      executionArn,
      attached: false,
      input: { runId: 'run-1', project: 'churn-tabular', specUri },
      startDate: new Date('2025-01-02T03:04:05Z'),
    });
    const stored = await store.getJson(specUri, z.looseObject({ datasets: z.looseObject({ train: z.string() }) }));
    expect(stored.datasets.train).toMatch(new RegExp(`^s3://${aws.config.bucket}/datasets/churn-tabular/[0-9a-f]{64}/train\\.csv$`));
    expect(started.uploads.map((u) => u.field)).toEqual(['datasets.train']);
  });

  it('attaches to an execution already named by the run id without uploading or starting anything', async () => {
    const executionArn = executionArnOf(STATE_MACHINE_ARN, 'run-2');
    const input = { runId: 'run-2', project: 'churn-tabular', specUri: 's3://elsewhere/runs/run-2/spec.json' };
    const { sfn, requests } = cannedSfn([
      { body: { executionArn, stateMachineArn: STATE_MACHINE_ARN, status: 'RUNNING', input: JSON.stringify(input), startDate: epoch('2025-01-01T00:00:00Z') } },
    ]);

    const started = await startAwsRun({ specPath, sfn, store, stateMachineArn: STATE_MACHINE_ARN, runId: 'run-2' });

    expect(requests.map((r) => r.operation)).toEqual(['DescribeExecution']);
    expect(started).toMatchObject({ executionArn, attached: true, input, uploads: [] });
    expect(await store.exists('runs/run-2/spec.json')).toBe(false);
  });

  it('attaches to the winner when StartExecution answers ExecutionAlreadyExists', async () => {
    const executionArn = executionArnOf(STATE_MACHINE_ARN, 'run-3');
    const input = { runId: 'run-3', project: 'churn-tabular', specUri: `s3://${aws.config.bucket}/runs/run-3/spec.json` };
    const { sfn, requests } = cannedSfn([
      awsError('ExecutionDoesNotExist', 'none'),
      awsError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`),
      {
        body: { executionArn, stateMachineArn: STATE_MACHINE_ARN, status: 'SUCCEEDED', input: JSON.stringify(input), startDate: epoch('2025-01-01T00:00:00Z') },
      },
    ]);

    const started = await startAwsRun({ specPath, sfn, store, stateMachineArn: STATE_MACHINE_ARN, runId: 'run-3' });

    expect(requests.map((r) => r.operation)).toEqual(['DescribeExecution', 'StartExecution', 'DescribeExecution']);
    expect(started).toMatchObject({ executionArn, attached: true, input });
  });

  it('rejects an invalid run id before any request', async () => {
    const { sfn, requests } = cannedSfn([]);
    await expect(startAwsRun({ specPath, sfn, store, stateMachineArn: STATE_MACHINE_ARN, runId: 'no spaces' })).rejects.toBeInstanceOf(AwsModeError);
    expect(requests).toEqual([]);
  });
});

describe('followExecution', () => {
  const executionArn = executionArnOf(STATE_MACHINE_ARN, 'run-9');
  const t = (second: number) => epoch(`2025-01-01T00:00:${String(second).padStart(2, '0')}Z`);
  const started = { id: 1, type: 'ExecutionStarted', timestamp: t(0), executionStartedEventDetails: { input: '{}' } };
  const entered = (id: number, previousEventId: number, name: string, type = 'TaskStateEntered') => ({
    id,
    previousEventId,
    type,
    timestamp: t(id),
    stateEnteredEventDetails: { name, input: '{}' },
  });
  const exited = (id: number, previousEventId: number, name: string, output: unknown, type = 'TaskStateExited') => ({
    id,
    previousEventId,
    type,
    timestamp: t(id),
    stateExitedEventDetails: { name, output: JSON.stringify(output) },
  });

  it('pages each poll newest-first, stops at the last event seen, and reports only new events in order', async () => {
    const { sfn, requests } = cannedSfn([
      // poll 1: two pages
      { body: { events: [exited(3, 2, 'Prepare', { prepared: true }), entered(2, 1, 'Prepare')], nextToken: 'page-2' } },
      { body: { events: [started] } },
      // poll 2: the newest page reaches event 3, so no second page is fetched
      {
        body: {
          events: [
            { id: 5, previousEventId: 4, type: 'ExecutionSucceeded', timestamp: t(5), executionSucceededEventDetails: { output: '{"done":true}' } },
            entered(4, 3, 'Succeeded', 'SucceedStateEntered'),
            exited(3, 2, 'Prepare', {}),
          ],
          nextToken: 'older',
        },
      },
    ]);
    const events: WorkflowEvent[] = [];

    const result = await followExecution({ sfn, executionArn, onEvent: (e) => events.push(e), pollIntervalMs: 0, pageSize: 2 });

    expect(requests).toEqual([
      { operation: 'GetExecutionHistory', body: { executionArn, reverseOrder: true, maxResults: 2, includeExecutionData: true } },
      { operation: 'GetExecutionHistory', body: { executionArn, reverseOrder: true, maxResults: 2, includeExecutionData: true, nextToken: 'page-2' } },
      { operation: 'GetExecutionHistory', body: { executionArn, reverseOrder: true, maxResults: 2, includeExecutionData: true } },
    ]);
    expect(events.map((e) => [e.type, e.state])).toEqual([
      ['ExecutionStarted', undefined],
      ['StateEntered', 'Prepare'],
      ['StateExited', 'Prepare'],
      ['StateEntered', 'Succeeded'],
      ['ExecutionSucceeded', undefined],
    ]);
    expect(events[2].detail).toEqual({ output: { prepared: true } });
    expect(events[0].at).toBe('2025-01-01T00:00:00.000Z');
    expect(result).toEqual({ status: 'SUCCEEDED', executionArn, output: { done: true } });
  });

  it.each([
    [
      'ExecutionFailed',
      'executionFailedEventDetails',
      { error: 'PrepareFailed', cause: 'spec: tasks[0].type is "binry"' },
      { status: 'FAILED', error: 'PrepareFailed', cause: 'spec: tasks[0].type is "binry"' },
    ],
    [
      'ExecutionTimedOut',
      'executionTimedOutEventDetails',
      { cause: 'the execution ran past its timeout' },
      { status: 'TIMED_OUT', error: 'States.Timeout', cause: 'the execution ran past its timeout' },
    ],
    ['ExecutionAborted', 'executionAbortedEventDetails', {}, { status: 'ABORTED', error: 'ExecutionAborted' }],
  ] as const)('reports %s as the result and as an ExecutionFailed event', async (type, field, details, expected) => {
    const { sfn } = cannedSfn([{ body: { events: [{ id: 2, previousEventId: 1, type, timestamp: t(2), [field]: details }, started] } }]);
    const events: WorkflowEvent[] = [];
    const result = await followExecution({ sfn, executionArn, onEvent: (e) => events.push(e), pollIntervalMs: 0 });
    expect(result).toEqual({ executionArn, ...expected });
    expect(events.at(-1)).toMatchObject({ type: 'ExecutionFailed', detail: { error: expected.error, status: expected.status } });
  });

  it('keeps polling while the execution runs', async () => {
    const { sfn, requests } = cannedSfn([
      { body: { events: [started] } },
      { body: { events: [started] } },
      {
        body: {
          events: [{ id: 2, previousEventId: 1, type: 'ExecutionSucceeded', timestamp: t(2), executionSucceededEventDetails: { output: '{}' } }, started],
        },
      },
    ]);
    const result = await followExecution({ sfn, executionArn, pollIntervalMs: 0 });
    expect(result.status).toBe('SUCCEEDED');
    expect(requests).toHaveLength(3);
  });

  it('names the Map iteration of trial events and tells retries and catches from plain failures', async () => {
    // One attempt of the RunTrial Batch job: scheduled at `id`, failed at `id + 1`.
    const batchAttempt = (id: number, error: string, cause: string) => [
      {
        id,
        previousEventId: id - 1,
        type: 'TaskScheduled',
        timestamp: t(id),
        taskScheduledEventDetails: { resource: 'submitJob.sync', resourceType: 'batch', region: 'eu-west-1', parameters: '{}' },
      },
      {
        id: id + 1,
        previousEventId: id,
        type: 'TaskFailed',
        timestamp: t(id + 1),
        taskFailedEventDetails: { resource: 'submitJob.sync', resourceType: 'batch', error, cause },
      },
    ];
    const history = [
      started,
      entered(2, 1, 'Trials', 'MapStateEntered'),
      { id: 3, previousEventId: 2, type: 'MapStateStarted', timestamp: t(3), mapStateStartedEventDetails: { length: 2 } },
      { id: 4, previousEventId: 3, type: 'MapIterationStarted', timestamp: t(4), mapIterationStartedEventDetails: { name: 'Trials', index: 1 } },
      entered(5, 4, 'RunTrial'),
      ...batchAttempt(6, 'Batch.AWSBatchException', 'throttled'),
      ...batchAttempt(8, 'States.TaskFailed', 'exit 1'),
      exited(10, 9, 'RunTrial', { error: { Error: 'States.TaskFailed' } }),
      entered(11, 10, 'TrialFailed', 'PassStateEntered'),
      exited(12, 11, 'TrialFailed', { status: 'failed' }, 'PassStateExited'),
      { id: 13, previousEventId: 12, type: 'MapIterationSucceeded', timestamp: t(13), mapIterationSucceededEventDetails: { name: 'Trials', index: 1 } },
      exited(14, 13, 'Trials', [], 'MapStateExited'),
      { id: 15, previousEventId: 14, type: 'ExecutionSucceeded', timestamp: t(15), executionSucceededEventDetails: { output: '{}' } },
    ];
    const { sfn } = cannedSfn([{ body: { events: [...history].reverse() } }]);
    const events: WorkflowEvent[] = [];
    await followExecution({ sfn, executionArn, onEvent: (e) => events.push(e), pollIntervalMs: 0, pageSize: 1000 });
    expect(events.map(({ type, state, index, detail }) => ({ type, state, index, detail }))).toEqual([
      { type: 'ExecutionStarted', state: undefined, index: undefined, detail: undefined },
      { type: 'StateEntered', state: 'Trials', index: undefined, detail: undefined },
      { type: 'StateEntered', state: 'RunTrial', index: 1, detail: undefined },
      { type: 'StateFailed', state: 'RunTrial', index: 1, detail: { error: 'Batch.AWSBatchException', cause: 'throttled' } },
      { type: 'StateRetried', state: 'RunTrial', index: 1, detail: { attempt: 1, error: 'Batch.AWSBatchException' } },
      { type: 'StateFailed', state: 'RunTrial', index: 1, detail: { error: 'States.TaskFailed', cause: 'exit 1' } },
      { type: 'StateCaught', state: 'RunTrial', index: 1, detail: { error: 'States.TaskFailed', cause: 'exit 1' } },
      { type: 'StateExited', state: 'RunTrial', index: 1, detail: { output: { error: { Error: 'States.TaskFailed' } } } },
      { type: 'StateEntered', state: 'TrialFailed', index: 1, detail: undefined },
      { type: 'StateExited', state: 'TrialFailed', index: 1, detail: { output: { status: 'failed' } } },
      { type: 'StateExited', state: 'Trials', index: undefined, detail: { output: [] } },
      { type: 'ExecutionSucceeded', state: undefined, index: undefined, detail: { output: {} } },
    ]);
  });

  it('fails with the fix when the execution does not exist', async () => {
    const { sfn } = cannedSfn([awsError('ExecutionDoesNotExist', 'Execution Does Not Exist')]);
    await expect(followExecution({ sfn, executionArn, pollIntervalMs: 0 })).rejects.toMatchObject({ name: 'AwsModeError', code: 'HISTORY_UNAVAILABLE' });
  });

  it('stops following when aborted, leaving the execution alone', async () => {
    const { sfn, requests } = cannedSfn([{ body: { events: [started] } }]);
    const controller = new AbortController();
    const following = followExecution({ sfn, executionArn, pollIntervalMs: 60_000, signal: controller.signal });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    await expect(following).rejects.toMatchObject({ code: 'FOLLOW_ABORTED' });
    expect(requests.map((r) => r.operation)).toEqual(['GetExecutionHistory']);
  });
});
