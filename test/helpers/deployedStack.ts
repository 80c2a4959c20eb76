/**
 * A "deployed stack" for CLI `--aws` tests, with no AWS reachable: the local S3 and DynamoDB
 * stand-ins (test/helpers/localAws.ts) as its bucket and tables, SigV4-checking Function URLs in
 * front of the real infer/feedback handlers, and the Step Functions, Scheduler and CloudFormation
 * protocol stand-ins (test/helpers/awsStandIns.ts); an outputs file naming them all; and
 * `agentflow(args)`, which runs one CLI command in this process against it.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { STACK_OUTPUTS, type AwsClientOptions } from '#lib/adapters/aws/index.ts';
import { EXIT } from '#lib/adapters/cli/index.ts';
import type { CardTask } from '#lib/domain/run/index.ts';
import { createRng } from '#lib/domain/random/index.ts';
import { createServeContext, handleFeedbackEvent, handleInferEvent, type ServeContext } from '#lib/serve/index.ts';
import { stageDependencies, type StageDependencies } from '#lib/pipeline/dependencies.ts';
import { buildFeaturesModel, publishModel } from './servingModels.ts';
import {
  startCloudFormationStandIn,
  startFunctionUrl,
  startSchedulerStandIn,
  startSfnStandIn,
  STAND_IN_REGION,
  type SchedulerStandIn,
  type SfnScript,
  type SfnStandIn,
  type StandInSchedule,
} from './awsStandIns.ts';
import { runCli, type CliResult } from './cli.ts';
import type { LocalAwsFixture } from './localAws.ts';
import { TEST_CREDENTIALS, type SignedEndpoint } from './sigv4.ts';

export const TASKS: CardTask[] = [
  { name: 'churn', type: 'binary', metric: 'auc' },
  { name: 'ltv', type: 'regression', metric: 'rmse' },
];

/** The JSON a command printed, after checking it exited 0 (its stderr is the failure message otherwise). */
export function jsonOf<T>(result: CliResult): T {
  expect(result.code, result.stderr || result.stdout).toBe(EXIT.ok);
  return JSON.parse(result.stdout) as T;
}

export interface DeployedStandInsOptions {
  aws: LocalAwsFixture;
  /** A temporary folder for the outputs file and the CLI's `--dir`. */
  folder: string;
  stackName: string;
  stateMachineArn: string;
  scheduleGroup: string;
  functionArns: { infer: string; feedback: string };
  schedules: StandInSchedule[];
  schedulePageSize?: number;
  sfnScript?: SfnScript;
  /** Client options every command gets on top of the stand-ins' (e.g. a recording hook). */
  clientOptions?: AwsClientOptions;
}

export interface DeployedStandIns {
  deps: StageDependencies;
  outputs: Record<string, string>;
  outputsFile: string;
  sfn: SfnStandIn;
  scheduler: SchedulerStandIn;
  cloudFormation: SignedEndpoint;
  inferUrl: SignedEndpoint;
  feedbackUrl: SignedEndpoint;
  /**
   * One `agentflow … --aws` command; the stack from the outputs file, or with `stack: 'by-name'`
   * from DescribeStacks (add `--stack-name` to the args for another name than the default).
   */
  agentflow(args: string[], overrides?: AwsClientOptions, options?: { stack?: 'outputs-file' | 'by-name' }): Promise<CliResult>;
  close(): Promise<void>;
}

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

export async function startDeployedStandIns(options: DeployedStandInsOptions): Promise<DeployedStandIns> {
  const { aws } = options;
  const deps = stageDependencies(aws.config, aws.clients);
  // What the Infer and Feedback functions run, over the same tables and bucket.
  const serve: ServeContext = createServeContext(deps, { drift: false, metricsSink: () => undefined, logger: silent, rng: createRng(3) });
  const inferUrl = await startFunctionUrl((event) => handleInferEvent(event, serve));
  const feedbackUrl = await startFunctionUrl((event) => handleFeedbackEvent(event, serve));
  const sfn = await startSfnStandIn(options.sfnScript);
  const scheduler = await startSchedulerStandIn({ schedules: options.schedules, ...(options.schedulePageSize ? { pageSize: options.schedulePageSize } : {}) });
  const outputs = {
    [STACK_OUTPUTS.bucket]: aws.config.bucket,
    [STACK_OUTPUTS.registryTable]: aws.config.registryTable,
    [STACK_OUTPUTS.rewardTable]: aws.config.rewardTable,
    [STACK_OUTPUTS.stateMachineArn]: options.stateMachineArn,
    [STACK_OUTPUTS.inferUrl]: inferUrl.url,
    [STACK_OUTPUTS.feedbackUrl]: feedbackUrl.url,
    [STACK_OUTPUTS.scheduleGroup]: options.scheduleGroup,
    [STACK_OUTPUTS.inferFunctionArn]: options.functionArns.infer,
    [STACK_OUTPUTS.feedbackFunctionArn]: options.functionArns.feedback,
  };
  const outputsFile = join(options.folder, 'stack-outputs.json');
  await writeFile(outputsFile, JSON.stringify({ Unrelated: { Foo: 'bar' }, [options.stackName]: outputs }));
  const cloudFormation = await startCloudFormationStandIn({ [options.stackName]: outputs });
  const endpoints = aws.config.endpoints!;

  return {
    deps,
    outputs,
    outputsFile,
    sfn,
    scheduler,
    cloudFormation,
    inferUrl,
    feedbackUrl,
    agentflow(args, overrides = {}, how = {}) {
      const stack = how.stack === 'by-name' ? [] : ['--stack-outputs', outputsFile];
      return runCli(['--dir', join(options.folder, 'local'), ...args, '--aws', ...stack], {
        aws: {
          credentials: TEST_CREDENTIALS,
          region: STAND_IN_REGION,
          endpoints: { s3: endpoints.s3, dynamodb: endpoints.dynamodb, sfn: sfn.url, scheduler: scheduler.url, cloudformation: cloudFormation.url },
          ...options.clientOptions,
          ...overrides,
        },
      });
    },
    async close() {
      await serve.close();
      await Promise.all([inferUrl.close(), feedbackUrl.close(), sfn.close(), scheduler.close(), cloudFormation.close()]);
    },
  };
}

/** A schedule as the stack's Schedules construct makes it (GetSchedule's shape). */
export function standInSchedule(options: {
  group: string;
  name: string;
  state: 'ENABLED' | 'DISABLED';
  expression: string;
  target: { Arn: string; RoleArn: string; Input?: string };
}): StandInSchedule {
  const account = options.target.RoleArn.split(':')[4];
  return {
    Arn: `arn:aws:scheduler:${STAND_IN_REGION}:${account}:schedule/${options.group}/${options.name}`,
    Name: options.name,
    GroupName: options.group,
    State: options.state,
    ScheduleExpression: options.expression,
    ScheduleExpressionTimezone: 'UTC',
    Description: `agentflow: ${options.name}`,
    CreationDate: 1_700_000_000,
    LastModificationDate: 1_700_000_000,
    FlexibleTimeWindow: { Mode: 'OFF' },
    ActionAfterCompletion: 'NONE',
    Target: { ...options.target, RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 86400 } },
  };
}

/**
 * A served project as Export and Promote leave it: two registered versions of a small model,
 * version 1 in production, and the run `run-1` (succeeded) with two trials.
 */
export async function seedServedProject(deps: StageDependencies, project: string): Promise<void> {
  for (const seed of [1, 2]) {
    const { model, encoder } = buildFeaturesModel({ dimension: 3, tasks: TASKS, seed, bias: seed });
    await publishModel({ registry: deps.registry, store: deps.store, project, runId: `run-${seed}`, model, encoder, tasks: TASKS });
  }
  await deps.registry.moveAlias(project, 'production', { toVersion: 1, expectedRevision: undefined });
  await deps.registry.setServingSet(project, { production: 1, challengers: [] }, { expectedRevision: undefined });
  await deps.runLog.createRun({ project, runId: 'run-1', specDigest: 'spec', specUri: `s3://${deps.config.bucket}/runs/run-1/spec.json` });
  for (const [trialId, reward] of [
    ['t0', 0.61],
    ['t1', 0.74],
  ] as const) {
    await deps.rewards.recordTrial(project, 'run-1', trialId, { generation: 0, status: 'succeeded', lambda: { churn: 1.2, ltv: 0.8 }, reward });
  }
  await deps.runLog.updateRunStatus(project, 'run-1', 'succeeded', { stage: 'Promote' });
}

/** A run that failed at Embed, as RecordFailure leaves its record. */
export async function seedFailedRun(deps: StageDependencies, project: string, runId: string): Promise<void> {
  await deps.runLog.createRun({ project, runId, specDigest: 'spec', specUri: `s3://${deps.config.bucket}/runs/${runId}/spec.json` });
  await deps.runLog.updateRunStatus(project, runId, 'failed', { stage: 'Embed', error: { name: 'EmbedFailed', message: 'exit 1' } });
}

/**
 * An execution that failed at Embed, for `sfn.seed`: caught by the workflow's `failState` (FAILED)
 * or timed out, redrivable unless `notRedrivable` gives Step Functions' reason.
 */
export function failedExecution(
  name: string,
  stateMachineArn: string,
  options: { failState?: string; notRedrivable?: string } = {},
): Parameters<SfnStandIn['seed']>[0] {
  return {
    name,
    stateMachineArn,
    input: '{}',
    status: options.failState ? 'FAILED' : 'TIMED_OUT',
    ...(options.notRedrivable === undefined
      ? { redriveStatus: 'REDRIVABLE' }
      : { redriveStatus: 'NOT_REDRIVABLE', redriveStatusReason: options.notRedrivable }),
    history: failedHistory(options.failState),
  };
}

/** An execution's history up to a failure at Embed: through the workflow's `failState` (caught), or a timeout. */
export function failedHistory(failState?: string): { type: string; details?: Record<string, unknown> }[] {
  return [
    { type: 'ExecutionStarted', details: { executionStartedEventDetails: { input: '{}' } } },
    { type: 'TaskStateEntered', details: { stateEnteredEventDetails: { name: 'Prepare', input: '{}' } } },
    { type: 'TaskStateExited', details: { stateExitedEventDetails: { name: 'Prepare', output: '{}' } } },
    { type: 'TaskStateEntered', details: { stateEnteredEventDetails: { name: 'Embed', input: '{}' } } },
    ...(failState
      ? [
          { type: 'TaskFailed', details: { taskFailedEventDetails: { error: 'States.TaskFailed', cause: 'exit 1' } } },
          { type: 'TaskStateExited', details: { stateExitedEventDetails: { name: 'Embed', output: '{}' } } },
          { type: 'FailStateEntered', details: { stateEnteredEventDetails: { name: failState, input: '{}' } } },
          { type: 'ExecutionFailed', details: { executionFailedEventDetails: { error: 'Agentflow.JobFailed', cause: 'exit 1' } } },
        ]
      : [{ type: 'ExecutionTimedOut', details: { executionTimedOutEventDetails: { cause: 'the execution ran past its timeout' } } }]),
  ];
}
