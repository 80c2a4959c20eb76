/**
 * The whole CLI with `--aws`, at the SDK boundary (no AWS is reachable): the stack outputs file
 * names the local S3 and DynamoDB stand-ins' bucket and tables, Function URLs that verify SigV4
 * and hand requests to the real infer/feedback handlers, and protocol stand-ins for Step Functions
 * and EventBridge Scheduler (test/helpers/awsStandIns.ts). Every client comes from the one
 * factory, pointed at these by the CLI's `aws` hook.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SFNClient } from '@aws-sdk/client-sfn';
import { FUNCTION_URL_PERMISSIONS, FunctionUrlClient, STACK_OUTPUTS, resumeAwsRun, restartName, type AwsClientOptions } from '#lib/adapters/aws/index.ts';
import { EXIT } from '#lib/adapters/cli/index.ts';
import { CALLER_PRINCIPAL, CONFIG_ENV } from '#lib/adapters/config/index.ts';
import type { CardTask } from '#lib/domain/run/index.ts';
import type { StageDependencies } from '#lib/pipeline/dependencies.ts';
import { STAND_IN_REGION, type SchedulerStandIn, type SfnStandIn } from './helpers/awsStandIns.ts';
import type { CliResult } from './helpers/cli.ts';
import {
  failedExecution,
  jsonOf as json,
  seedFailedRun,
  seedServedProject,
  standInSchedule,
  startDeployedStandIns,
  TASKS,
  type DeployedStandIns,
} from './helpers/deployedStack.ts';
import { useLocalAws } from './helpers/localAws.ts';
import { TEST_CREDENTIALS, type SignedEndpoint } from './helpers/sigv4.ts';
import { readSdkCallLog } from './helpers/sdkCallLog.ts';

const aws = useLocalAws();
const ACCOUNT = '123456789012';
const STATE_MACHINE_ARN = `arn:aws:states:${STAND_IN_REGION}:${ACCOUNT}:stateMachine:AgentflowWorkflow`;
const GROUP = 'Agentflow-SchedulesGroup-ABC123';
const PROJECT = 'shop';

let folder: string;
let stack: DeployedStandIns;
let deps: StageDependencies;
let inferUrl: SignedEndpoint;
let sfn: SfnStandIn;
let scheduler: SchedulerStandIn;
let cloudFormation: SignedEndpoint;
/** The stack's outputs as `cdk deploy --outputs-file` and DescribeStacks give them. */
let outputs: Record<string, string>;
const RETRAIN_ROLE = `arn:aws:iam::${ACCOUNT}:role/Agentflow-SchedulesStartRunsRole-X`;
const retrain = (project: string) => JSON.stringify({ runId: 'sched-<aws.scheduler.execution-id>', project, specUri: `s3://b/specs/${project}.json` });
const SCHEDULES = [
  standInSchedule({
    group: GROUP,
    name: 'Retrain0',
    state: 'ENABLED',
    expression: 'rate(7 days)',
    target: { Arn: STATE_MACHINE_ARN, RoleArn: RETRAIN_ROLE, Input: retrain(PROJECT) },
  }),
  standInSchedule({
    group: GROUP,
    name: 'Retrain1',
    state: 'DISABLED',
    expression: 'cron(0 3 ? * MON *)',
    target: { Arn: STATE_MACHINE_ARN, RoleArn: RETRAIN_ROLE, Input: retrain('other') },
  }),
  standInSchedule({
    group: GROUP,
    name: 'Monitor',
    state: 'ENABLED',
    expression: 'rate(1 hour)',
    target: {
      Arn: `arn:aws:lambda:${STAND_IN_REGION}:${ACCOUNT}:function:Agentflow-Monitor`,
      RoleArn: `arn:aws:iam::${ACCOUNT}:role/Agentflow-InvokeMonitor-Y`,
      Input: '{"scheduledAt":"<aws.scheduler.scheduled-time>"}',
    },
  }),
];

const agentflow = (args: string[], overrides: AwsClientOptions = {}, options: { stack?: 'outputs-file' | 'by-name' } = {}): Promise<CliResult> =>
  stack.agentflow(args, overrides, options);

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-cli-aws-'));
  stack = await startDeployedStandIns({
    aws,
    folder,
    stackName: 'Agentflow',
    stateMachineArn: STATE_MACHINE_ARN,
    scheduleGroup: GROUP,
    functionArns: {
      infer: `arn:aws:lambda:${STAND_IN_REGION}:${ACCOUNT}:function:Agentflow-Infer`,
      feedback: `arn:aws:lambda:${STAND_IN_REGION}:${ACCOUNT}:function:Agentflow-Feedback`,
    },
    schedules: SCHEDULES,
    schedulePageSize: 2,
  });
  ({ deps, inferUrl, sfn, scheduler, cloudFormation, outputs } = stack);
  await seedServedProject(deps, PROJECT);
});

afterAll(async () => {
  await stack?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('finding the deployed stack', () => {
  it('looks the stack up by name through CloudFormation when no outputs file is given', async () => {
    const before = cloudFormation.accepted.length;
    const models = json<{ production: number }>(await agentflow(['--json', 'models', 'ls', '-p', PROJECT], {}, { stack: 'by-name' }));
    expect(models.production).toBe(1);
    expect(cloudFormation.accepted.slice(before).map((r) => new URLSearchParams(r.body).get('StackName'))).toEqual(['Agentflow']);
  });

  it('names the fixes when CloudFormation has no such stack', async () => {
    const missing = await agentflow(['--stack-name', 'AgentflowTypo', 'runs', 'ls', '-p', PROJECT], {}, { stack: 'by-name' });
    expect(missing.code).toBe(EXIT.invalidInput);
    expect(missing.stderr).toMatch(/CloudFormation has no stack "AgentflowTypo" in us-east-1; deploy it .*--stack-outputs/);
  });
});

describe('reading the deployed stack', () => {
  it('lists runs, shows one, and lists its trials from the deployed tables', async () => {
    const runs = json<{ runId: string; status: string }[]>(await agentflow(['--json', 'runs', 'ls', '-p', PROJECT]));
    expect(runs).toEqual([expect.objectContaining({ runId: 'run-1', status: 'succeeded' })]);

    const shown = await agentflow(['runs', 'show', 'run-1', '-p', PROJECT]);
    expect(shown.code, shown.stderr).toBe(EXIT.ok);
    expect(shown.stdout).toMatch(/run run-1 of shop: succeeded \(last stage Promote\)/);
    expect(shown.stdout).toMatch(/2 trials \(0 failed\)/);
    expect(shown.stdout).toMatch(/registered version 1/);

    const trials = json<{ trialId: string; row: { reward: number } }[]>(await agentflow(['--json', 'trials', 'run-1', '-p', PROJECT]));
    expect(trials.map((t) => [t.trialId, t.row.reward])).toEqual([
      ['t0', 0.61],
      ['t1', 0.74],
    ]);
  });

  it('lists versions and shows one with its model card read from the deployed bucket', async () => {
    const models = json<{ production: number; versions: { version: number }[] }>(await agentflow(['--json', 'models', 'ls', '-p', PROJECT]));
    expect(models.production).toBe(1);
    expect(models.versions.map((v) => v.version).sort()).toEqual([1, 2]);

    const shown = json<{ version: number; card: { project: string; tasks: CardTask[] } }>(await agentflow(['--json', 'models', 'show', '2', '-p', PROJECT]));
    expect(shown.version).toBe(2);
    expect(shown.card).toMatchObject({ project: PROJECT, tasks: TASKS });
  });

  it('writes the report on this machine from the deployed data', async () => {
    const path = join(folder, 'reports', 'run-1.html');
    const written = json<{ path: string; uri: string }>(await agentflow(['--json', 'report', 'run-1', '-p', PROJECT, '-o', path]));
    expect(written).toEqual({ path, uri: `s3://${aws.config.bucket}/runs/run-1/report.html` });
    expect((await stat(path)).size).toBeGreaterThan(1000);
    expect(await readFile(path, 'utf8')).toContain('run-1');
  });

  it("fills docs/caller-policy.json with the stack's names", async () => {
    const policy = json<{ Statement: { Sid: string; Action: string | string[]; Resource: string | string[] }[] }>(await agentflow(['--json', 'caller-policy']));
    const text = JSON.stringify(policy);
    expect(text).not.toMatch(/\$\{/);
    const invoke = policy.Statement.find((s) => [s.Action].flat().includes('lambda:InvokeFunctionUrl'));
    expect(invoke).toMatchObject({
      Action: [...FUNCTION_URL_PERMISSIONS],
      Resource: [
        `arn:aws:lambda:${STAND_IN_REGION}:${ACCOUNT}:function:Agentflow-Infer`,
        `arn:aws:lambda:${STAND_IN_REGION}:${ACCOUNT}:function:Agentflow-Feedback`,
      ],
    });
    expect(text).toContain(`arn:aws:s3:::${aws.config.bucket}"`);
    expect(text).toContain(`arn:aws:states:${STAND_IN_REGION}:${ACCOUNT}:execution:AgentflowWorkflow:*`);
    expect(text).toContain(`arn:aws:scheduler:${STAND_IN_REGION}:${ACCOUNT}:schedule/${GROUP}/*`);
    expect(text).toContain(`arn:aws:cloudformation:${STAND_IN_REGION}:${ACCOUNT}:stack/Agentflow/*`);
  });
});

describe('promote and rollback on the deployed registry', () => {
  it('moves production to version 2 and back', async () => {
    const promoted = await agentflow(['models', 'promote', '2', '-p', PROJECT]);
    expect(promoted.code, promoted.stderr).toBe(EXIT.ok);
    expect(promoted.stdout).toBe('production of shop is now version 2 (was 1)');
    expect((await deps.registry.getAlias(PROJECT, 'production'))?.version).toBe(2);

    const rolled = await agentflow(['models', 'rollback', '-p', PROJECT]);
    expect(rolled.code, rolled.stderr).toBe(EXIT.ok);
    expect((await deps.registry.getAlias(PROJECT, 'production'))?.version).toBe(1);
    expect((await deps.registry.getServingSet(PROJECT))?.production).toBe(1);
  });
});

describe('predict and feedback through the signed Function URLs', () => {
  const record = JSON.stringify({ features: [0.5, -1, 2] });

  it('predicts through InferUrl and records feedback through FeedbackUrl, each request SigV4-signed for lambda', async () => {
    const acceptedBefore = inferUrl.accepted.length;
    const predicted = json<{ version: number; predictions: { predictionId: string; outputs: Record<string, unknown> }[] }>(
      await agentflow(['--json', 'predict', '-p', PROJECT, '--record', record]),
    );
    expect(predicted.version).toBe(1);
    expect(Object.keys(predicted.predictions[0].outputs).sort()).toEqual(['churn', 'ltv']);
    expect(inferUrl.accepted).toHaveLength(acceptedBefore + 1);
    expect(inferUrl.accepted.at(-1)?.headers.authorization).toMatch(
      new RegExp(`^AWS4-HMAC-SHA256 Credential=${TEST_CREDENTIALS.accessKeyId}/\\d{8}/${STAND_IN_REGION}/lambda/aws4_request`),
    );
    expect(inferUrl.accepted.at(-1)?.headers['x-amz-security-token']).toBe(TEST_CREDENTIALS.sessionToken);

    const { predictionId } = predicted.predictions[0];
    const recorded = await agentflow(['feedback', '-p', PROJECT, predictionId, '1']);
    expect(recorded.code, recorded.stderr).toBe(EXIT.ok);
    expect(await deps.rewards.getFeedback(PROJECT, predictionId)).toMatchObject({ reward: 1, version: 1 });

    // The handler's own refusal comes back with its code, so the exit code matches the local command's.
    const again = await agentflow(['feedback', '-p', PROJECT, predictionId, '0']);
    expect(again.code).toBe(EXIT.conflict);
    expect(again.stderr).toMatch(/already/);
  });

  it('names both lambda permissions when the Function URL refuses the caller', async () => {
    const refusedBefore = inferUrl.refused.length;
    const denied = await agentflow(['predict', '-p', PROJECT, '--record', record], { credentials: { ...TEST_CREDENTIALS, secretAccessKey: 'not-the-key' } });
    expect(denied.code).toBe(EXIT.failed);
    expect(denied.stderr).toContain('lambda:InvokeFunctionUrl and lambda:InvokeFunction');
    expect(inferUrl.refused.slice(refusedBefore).map((r) => r.reason)).toEqual(['signature does not match']);
  });

  it('is refused when the signed body is changed on the way, or the request is not signed', async () => {
    const tampering: typeof fetch = (url, init) => fetch(url, { ...init, body: String(init?.body).replace('"shop"', '"shoq"') });
    const client = new FunctionUrlClient({ region: STAND_IN_REGION, credentials: TEST_CREDENTIALS, fetch: tampering });
    await expect(client.post(inferUrl.url, { project: PROJECT, records: [{ features: [1, 2, 3] }] })).rejects.toMatchObject({
      name: 'FunctionUrlError',
      code: 'FUNCTION_URL_FORBIDDEN',
      status: 403,
    });

    const unsigned = await fetch(inferUrl.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ project: PROJECT, records: [{ features: [1, 2, 3] }] }),
    });
    expect(unsigned.status).toBe(403);
    expect(inferUrl.refused.slice(-2).map((r) => r.reason)).toEqual(['payload hash does not match the body', 'no SigV4 Authorization header']);
  });
});

describe('resume on the deployed state machine', () => {
  const failedRun = (runId: string) => seedFailedRun(deps, PROJECT, runId);

  it("starts the run again when it failed through the workflow's RunFailed state, which a redrive would only repeat", async () => {
    await failedRun('run-caught');
    sfn.seed(failedExecution('run-caught', STATE_MACHINE_ARN, { failState: 'RunFailed' }));
    const before = sfn.operations.length;

    const resumed = json<{ how: string; executionArn: string; status: string }>(await agentflow(['--json', 'resume', 'run-caught', '-p', PROJECT]));

    const name = restartName('run-caught', 1);
    expect(resumed).toMatchObject({
      how: 'restarted',
      status: 'SUCCEEDED',
      executionArn: `arn:aws:states:${STAND_IN_REGION}:${ACCOUNT}:execution:AgentflowWorkflow:${name}`,
    });
    expect(sfn.operations.slice(before)).not.toContain('RedriveExecution');
    const restarted = [...sfn.executions.values()].find((e) => e.name === name);
    expect(JSON.parse(restarted!.input)).toEqual({ runId: 'run-caught', project: PROJECT, specUri: `s3://${aws.config.bucket}/runs/run-caught/spec.json` });
    expect((await deps.runLog.getRun(PROJECT, 'run-caught')).resumes).toBe(1);
  });

  it('redrives an execution that timed out and reports only what happened after the redrive', async () => {
    await failedRun('run-timeout');
    const seeded = sfn.seed(failedExecution('run-timeout', STATE_MACHINE_ARN));
    const before = sfn.operations.length;

    const resumed = json<{ how: string; executionArn: string; status: string }>(await agentflow(['--json', 'resume', 'run-timeout', '-p', PROJECT]));

    expect(resumed).toMatchObject({ how: 'redriven', status: 'SUCCEEDED', executionArn: seeded.executionArn });
    expect(sfn.operations.slice(before)).toContain('RedriveExecution');
    expect(sfn.operations.slice(before)).not.toContain('StartExecution');
    expect(seeded.redriveCount).toBe(1);
  });

  it('starts a new execution instead of a redrive when asked to (--restart, after deploying a changed definition)', async () => {
    await failedRun('run-redeployed');
    sfn.seed(failedExecution('run-redeployed', STATE_MACHINE_ARN));
    const before = sfn.operations.length;
    const resumed = json<{ how: string; reason: string }>(await agentflow(['--json', 'resume', 'run-redeployed', '-p', PROJECT, '--restart']));
    expect(resumed).toMatchObject({ how: 'restarted', reason: expect.stringMatching(/^a new execution was asked for \(--restart\)/) });
    expect(sfn.operations.slice(before)).not.toContain('RedriveExecution');
  });

  it('restarts when redrive is refused, and refuses a run that succeeded without starting anything', async () => {
    await failedRun('run-old');
    sfn.seed(failedExecution('run-old', STATE_MACHINE_ARN, { notRedrivable: 'Execution is older than 14 days' }));
    const old = await agentflow(['resume', 'run-old', '-p', PROJECT]);
    expect(old.code, old.stderr).toBe(EXIT.ok);
    expect(old.stdout).toMatch(/^restarted .*run-old-resume-1: execution .* cannot be redriven \(Execution is older than 14 days\)/);

    const before = sfn.operations.length;
    const finished = await agentflow(['resume', 'run-1', '-p', PROJECT]);
    expect(finished.code).toBe(EXIT.failed);
    expect(finished.stderr).toMatch(/run run-1 of shop succeeded .* nothing to resume/);
    expect(sfn.operations.slice(before).filter((op) => op !== 'DescribeExecution')).toEqual([]);
  });
});

describe('the deployed schedules', () => {
  it('shows every schedule of the stack group, across pages, with the project each retrains', async () => {
    const shown = json<{ name: string; kind: string; project?: string; state: string; expression: string }[]>(await agentflow(['--json', 'schedule', 'show']));
    expect(shown.map(({ name, kind, project, state, expression }) => ({ name, kind, project, state, expression }))).toEqual([
      { name: 'Monitor', kind: 'monitor', project: undefined, state: 'ENABLED', expression: 'rate(1 hour)' },
      { name: 'Retrain1', kind: 'retrain', project: 'other', state: 'DISABLED', expression: 'cron(0 3 ? * MON *)' },
      { name: 'Retrain0', kind: 'retrain', project: PROJECT, state: 'ENABLED', expression: 'rate(7 days)' },
    ]);
    expect(scheduler.calls.filter((c) => c === 'GET /schedules')).toHaveLength(2);
  });

  it("disables a project's retraining schedule by resending the whole schedule with only its state changed", async () => {
    const before = { ...scheduler.schedules.get(`${GROUP}/Retrain0`)! };
    const disabled = await agentflow(['schedule', 'disable', '-p', PROJECT]);
    expect(disabled.code, disabled.stderr).toBe(EXIT.ok);
    expect(disabled.stdout).toMatch(/^Retrain0 \(shop\): now DISABLED/);

    const after = scheduler.schedules.get(`${GROUP}/Retrain0`)!;
    const { State: _s, LastModificationDate: _m, ...kept } = after;
    const { State: _s0, LastModificationDate: _m0, ...original } = before;
    expect(after.State).toBe('DISABLED');
    expect(kept).toEqual(original);

    const enabled = json<{ name: string; state: string; changed: boolean }[]>(await agentflow(['--json', 'schedule', 'enable', '-p', PROJECT]));
    expect(enabled).toEqual([expect.objectContaining({ name: 'Retrain0', state: 'ENABLED', changed: true })]);
    expect(scheduler.schedules.get(`${GROUP}/Retrain0`)?.State).toBe('ENABLED');
  });

  it('leaves a schedule already in the asked state alone, and names the fix for a bad selection', async () => {
    const puts = () => scheduler.calls.filter((c) => c.startsWith('PUT')).length;
    const before = puts();
    const same = json<{ changed: boolean }[]>(await agentflow(['--json', 'schedule', 'enable', '--name', 'Monitor']));
    expect(same).toEqual([expect.objectContaining({ changed: false })]);
    expect(puts()).toBe(before);

    const neither = await agentflow(['schedule', 'disable']);
    expect(neither.code).toBe(EXIT.invalidInput);
    expect(neither.stderr).toMatch(/-p <project> .* or --name <schedule>, not neither/);
    const unknown = await agentflow(['schedule', 'disable', '--name', 'Nope']);
    expect(unknown.code).toBe(EXIT.notFound);
    const noProject = await agentflow(['schedule', 'disable', '-p', 'nobody']);
    expect(noProject.code).toBe(EXIT.notFound);
  });
});

describe('resumeAwsRun', () => {
  it('attaches to a run whose execution is still running, without reopening or starting anything', async () => {
    const live = sfn.seed({ name: 'run-live', stateMachineArn: STATE_MACHINE_ARN, input: '{}', status: 'RUNNING', history: [{ type: 'ExecutionStarted' }] });
    const before = sfn.operations.length;
    const sfnClient = new SFNClient({ region: STAND_IN_REGION, credentials: TEST_CREDENTIALS, endpoint: sfn.url });
    // run-live has no run record: reopening it would fail with RUN_NOT_FOUND.
    const resumed = await resumeAwsRun({
      sfn: sfnClient,
      stateMachineArn: STATE_MACHINE_ARN,
      project: PROJECT,
      runId: 'run-live',
      runLog: deps.runLog,
      store: deps.store,
    });
    sfnClient.destroy();
    expect(resumed).toMatchObject({ how: 'attached', executionArn: live.executionArn });
    expect(sfn.operations.slice(before)).toEqual(['DescribeExecution', 'DescribeExecution']);
  });
});

describe('commands that run only on one side', () => {
  it('says what to use instead of serve or the local schedule loop with --aws', async () => {
    const served = await agentflow(['serve', '--port', '0']);
    expect(served.code).toBe(EXIT.invalidInput);
    expect(served.stderr).toMatch(/`serve` runs on this machine only; .*predict --aws/);
    const loop = await agentflow(['schedule', join(folder, 'spec.json')]);
    expect(loop.code).toBe(EXIT.invalidInput);
    expect(loop.stderr).toMatch(/schedule show\|enable\|disable --aws/);
  });
});

describe('recording for the IAM conformance test', () => {
  it('appends every call of a command to AGENTFLOW_SDK_CALL_LOG as the caller, Function URL requests included', async () => {
    const log = join(folder, 'calls.jsonl');
    process.env[CONFIG_ENV.sdkCallLog] = log;
    try {
      json(await agentflow(['--json', 'predict', '-p', PROJECT, '--record', JSON.stringify({ features: [0, 1, 2] })]));
    } finally {
      delete process.env[CONFIG_ENV.sdkCallLog];
    }
    const calls = readSdkCallLog(log);
    expect(calls).toEqual([
      { principal: CALLER_PRINCIPAL, client: 'FunctionUrl', operation: 'Invoke', input: { FunctionName: outputs[STACK_OUTPUTS.inferFunctionArn] } },
    ]);

    process.env[CONFIG_ENV.sdkCallLog] = log;
    try {
      json(await agentflow(['--json', 'schedule', 'show', '-p', PROJECT]));
    } finally {
      delete process.env[CONFIG_ENV.sdkCallLog];
    }
    const more = readSdkCallLog(log).slice(1);
    expect(new Set(more.map((c) => `${c.principal} ${c.client}.${c.operation}`))).toEqual(
      new Set(['caller SchedulerClient.ListSchedules', 'caller SchedulerClient.GetSchedule']),
    );
    expect(more.find((c) => c.operation === 'GetSchedule')?.input).toMatchObject({ GroupName: GROUP });
  });
});
