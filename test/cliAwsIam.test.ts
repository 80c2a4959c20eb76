/**
 * docs/caller-policy.json against what the CLI's `--aws` commands really call. Every command runs
 * against the deployed-stack stand-ins (test/helpers/deployedStack.ts) with the names of the
 * synthesized stack, records each SDK call and Function URL request into AGENTFLOW_SDK_CALL_LOG
 * as the caller (as the IAM conformance test records every function and job), and each is
 * evaluated with the IAM simulator against the policy as `agentflow caller-policy` fills it for
 * that stack. Removing any one statement must deny a recorded call: the policy grants what the
 * CLI needs and nothing unused.
 */
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALLER_POLICY_PATH, callerPolicyValues, fillCallerPolicy, STACK_OUTPUTS, parseStateMachineArn, type DeployedStack } from '#lib/adapters/aws/index.ts';
import { CALLER_PRINCIPAL, CONFIG_ENV } from '#lib/adapters/config/index.ts';
import { succeedExecution, type StandInExecution } from './helpers/awsStandIns.ts';
import {
  failedExecution,
  jsonOf,
  seedFailedRun,
  seedServedProject,
  standInSchedule,
  startDeployedStandIns,
  type DeployedStandIns,
} from './helpers/deployedStack.ts';
import { decide, denialMessages, nameMap, neededRequests, type NeededRequest } from './helpers/iamEvaluate.ts';
import {
  STACK_NAME,
  synthesizeStackPolicies,
  TEST_ACCOUNT,
  TEST_PARTITION,
  type PolicyDocument,
  type Principal,
  type StackResources,
} from './helpers/iamTemplate.ts';
import { useLocalAws } from './helpers/localAws.ts';
import { readSdkCallLog } from './helpers/sdkCallLog.ts';

const aws = useLocalAws();
const PROJECT = 'shop';

let folder: string;
let deployed: StackResources;
let stack: DeployedStandIns;
let requests: NeededRequest[];
let policy: PolicyDocument;

const callerOf = (document: PolicyDocument): Principal => ({
  name: CALLER_PRINCIPAL,
  roleArn: `arn:${TEST_PARTITION}:iam::${TEST_ACCOUNT}:user/agentflow-caller`,
  policies: [{ name: 'docs/caller-policy.json', policy: document }],
  grantsFrom: 'docs/caller-policy.json',
});

/** A "Prepare" for `run --aws`: the stand-in execution writes the run record a real run's first stage would, then succeeds. */
async function prepareAndSucceed(execution: StandInExecution): Promise<void> {
  const input = JSON.parse(execution.input) as { runId: string; project: string; specUri: string };
  await stack.deps.runLog.createRun({ project: input.project, runId: input.runId, specDigest: 'spec', specUri: input.specUri });
  await stack.deps.runLog.updateRunStatus(input.project, input.runId, 'succeeded', { stage: 'Promote' });
  succeedExecution(execution);
}

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-cli-aws-iam-'));
  deployed = synthesizeStackPolicies().resources;
  const group = deployed.outputs[STACK_OUTPUTS.scheduleGroup];
  const role = `arn:${TEST_PARTITION}:iam::${TEST_ACCOUNT}:role/${STACK_NAME}-SchedulesStartRunsRole-ABC`;
  stack = await startDeployedStandIns({
    aws,
    folder,
    stackName: STACK_NAME,
    stateMachineArn: deployed.stateMachineArn,
    scheduleGroup: group,
    functionArns: { infer: deployed.functionArns.infer, feedback: deployed.functionArns.feedback },
    schedules: [
      standInSchedule({
        group,
        name: 'Retrain0',
        state: 'ENABLED',
        expression: 'rate(7 days)',
        target: {
          Arn: deployed.stateMachineArn,
          RoleArn: role,
          Input: JSON.stringify({ runId: 'sched-<aws.scheduler.execution-id>', project: PROJECT, specUri: 's3://b/specs/shop.json' }),
        },
      }),
    ],
    sfnScript: { onStart: prepareAndSucceed },
  });
  await seedServedProject(stack.deps, PROJECT);
  for (const runId of ['run-caught', 'run-timeout']) await seedFailedRun(stack.deps, PROJECT, runId);
  stack.sfn.seed(failedExecution('run-caught', deployed.stateMachineArn, { failState: 'RunFailed' }));
  stack.sfn.seed(failedExecution('run-timeout', deployed.stateMachineArn));
  const example = resolve(import.meta.dirname, '..', 'examples', 'tabular');
  await copyFile(join(example, 'spec.json'), join(folder, 'spec.json'));
  await copyFile(join(example, 'train.csv'), join(folder, 'train.csv'));

  // Every command of the CLI, as a user of the deployed stack runs them.
  const log = join(folder, 'calls.jsonl');
  process.env[CONFIG_ENV.sdkCallLog] = log;
  try {
    const cli = (args: string[], how?: { stack: 'by-name' }) => stack.agentflow(['--json', ...args], {}, how);
    jsonOf(await cli(['--stack-name', STACK_NAME, 'models', 'ls', '-p', PROJECT], { stack: 'by-name' }));
    jsonOf(await cli(['run', join(folder, 'spec.json'), '--run-id', 'run-new']));
    jsonOf(await cli(['runs', 'ls', '-p', PROJECT]));
    jsonOf(await cli(['runs', 'show', 'run-1', '-p', PROJECT]));
    jsonOf(await cli(['trials', 'run-1', '-p', PROJECT]));
    jsonOf(await cli(['report', 'run-1', '-p', PROJECT, '-o', join(folder, 'report.html')]));
    jsonOf(await cli(['models', 'show', '1', '-p', PROJECT]));
    jsonOf(await cli(['models', 'promote', '2', '-p', PROJECT]));
    jsonOf(await cli(['models', 'rollback', '-p', PROJECT]));
    const predicted = jsonOf<{ predictions: { predictionId: string }[] }>(
      await cli(['predict', '-p', PROJECT, '--record', JSON.stringify({ features: [0.5, -1, 2] })]),
    );
    jsonOf(await cli(['feedback', '-p', PROJECT, predicted.predictions[0].predictionId, '1']));
    expect(jsonOf<{ how: string }>(await cli(['resume', 'run-caught', '-p', PROJECT])).how).toBe('restarted');
    expect(jsonOf<{ how: string }>(await cli(['resume', 'run-timeout', '-p', PROJECT])).how).toBe('redriven');
    jsonOf(await cli(['schedule', 'show']));
    jsonOf(await cli(['schedule', 'disable', '-p', PROJECT]));
    jsonOf(await cli(['schedule', 'enable', '-p', PROJECT]));
  } finally {
    delete process.env[CONFIG_ENV.sdkCallLog];
  }
  const calls = readSdkCallLog(log);
  expect(new Set(calls.map((c) => c.principal))).toEqual(new Set([CALLER_PRINCIPAL]));
  requests = (await neededRequests(calls, nameMap(aws.config, deployed))).get(CALLER_PRINCIPAL) ?? [];

  // The policy as `agentflow caller-policy --aws` fills it for this stack.
  const filledFor: DeployedStack = {
    region: parseStateMachineArn(deployed.stateMachineArn).region,
    bucket: deployed.bucket,
    registryTable: deployed.registryTable,
    rewardTable: deployed.rewardTable,
    stateMachineArn: deployed.stateMachineArn,
    scheduleGroup: group,
    inferFunctionArn: deployed.functionArns.infer,
    feedbackFunctionArn: deployed.functionArns.feedback,
    stackName: STACK_NAME,
    sources: {},
  };
  policy = fillCallerPolicy(await readFile(CALLER_POLICY_PATH, 'utf8'), callerPolicyValues(filledFor)) as PolicyDocument;
}, 300_000);

afterAll(async () => {
  await stack?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('docs/caller-policy.json under the IAM simulator', () => {
  it('allows every call the CLI makes with --aws', async () => {
    const actions = new Set(requests.map((r) => r.action));
    // The flows reach every kind of call the policy is for.
    for (const action of [
      'cloudformation:DescribeStacks',
      's3:ListBucket',
      's3:PutObject',
      'dynamodb:UpdateItem',
      'states:RedriveExecution',
      'lambda:InvokeFunction',
      'lambda:InvokeFunctionUrl',
      'scheduler:UpdateSchedule',
      'iam:PassRole',
    ]) {
      expect(actions, action).toContain(action);
    }
    const caller = callerOf(policy);
    const denials = [];
    for (const request of requests) {
      const decision = await decide(request, caller, deployed);
      if (decision !== 'Allowed') denials.push({ principal: caller, request, decision });
    }
    expect(denialMessages(denials)).toEqual([]);
  });

  it('needs every statement: without any one of them some call is denied', async () => {
    const unneeded: string[] = [];
    for (const [index, statement] of policy.Statement.entries()) {
      const without = callerOf({ ...policy, Statement: policy.Statement.filter((_, i) => i !== index) });
      let denied = false;
      for (const request of requests) {
        if ((await decide(request, without, deployed)) !== 'Allowed') {
          denied = true;
          break;
        }
      }
      if (!denied) unneeded.push(statement.Sid ?? `statement ${index}`);
    }
    expect(unneeded).toEqual([]);
  });
});
