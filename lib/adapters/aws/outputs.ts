/**
 * The deployed stack as `--aws` mode sees it: the CloudFormation output names the CDK stack
 * declares (this module is the one place both read), and `findStack`, which assembles them from
 * `cdk deploy --outputs-file`, environment variables, or a CloudFormation DescribeStacks lookup.
 */
import { readFile } from 'node:fs/promises';
import { CONFIG_ENV } from '#lib/adapters/config/index.ts';
import { AwsModeError } from '#lib/adapters/aws/errors.ts';

/** CloudFormation output keys of the agentflow stack, by the field of `DeployedStack` they fill. */
export const STACK_OUTPUTS = {
  bucket: 'BucketName',
  registryTable: 'RegistryTableName',
  rewardTable: 'RewardTableName',
  stateMachineArn: 'StateMachineArn',
  jobQueueArn: 'JobQueueArn',
  inferUrl: 'InferUrl',
  feedbackUrl: 'FeedbackUrl',
  scheduleGroup: 'ScheduleGroupName',
  inferFunctionArn: 'InferFunctionArn',
  feedbackFunctionArn: 'FeedbackFunctionArn',
} as const;

/** Environment variables that can stand in for (or override) each output. */
export const STACK_OUTPUT_ENV = {
  bucket: CONFIG_ENV.bucket,
  registryTable: CONFIG_ENV.registryTable,
  rewardTable: CONFIG_ENV.rewardTable,
  stateMachineArn: 'AGENTFLOW_STATE_MACHINE_ARN',
  jobQueueArn: 'AGENTFLOW_JOB_QUEUE_ARN',
  inferUrl: 'AGENTFLOW_INFER_URL',
  feedbackUrl: 'AGENTFLOW_FEEDBACK_URL',
  scheduleGroup: 'AGENTFLOW_SCHEDULE_GROUP',
  inferFunctionArn: 'AGENTFLOW_INFER_FUNCTION_ARN',
  feedbackFunctionArn: 'AGENTFLOW_FEEDBACK_FUNCTION_ARN',
} as const satisfies Record<keyof typeof STACK_OUTPUTS, string>;

/** The stack `cdk deploy` creates unless the `agentflow:stackName` context names another. */
export const DEFAULT_STACK_NAME = 'Agentflow';

/** Outputs every command needs; the others (queue, serving URLs, schedule group) are checked by the commands that use them. */
const REQUIRED = ['bucket', 'registryTable', 'rewardTable', 'stateMachineArn'] as const;

export interface DeployedStack {
  /** From the state machine ARN: the region every client must use. */
  region: string;
  bucket: string;
  registryTable: string;
  rewardTable: string;
  stateMachineArn: string;
  jobQueueArn?: string;
  inferUrl?: string;
  feedbackUrl?: string;
  /** The EventBridge Scheduler group holding the stack's retraining and monitor schedules. */
  scheduleGroup?: string;
  /** The functions behind the two URLs, for the caller policy (`agentflow caller-policy`). */
  inferFunctionArn?: string;
  feedbackFunctionArn?: string;
  /** The stack's name, when the outputs came from a named stack (the file's key, or the one described). */
  stackName?: string;
  /** Where each value came from, for `agentflow` to print when something looks wrong. */
  sources: Partial<Record<keyof typeof STACK_OUTPUTS, string>>;
}

export interface FindStackOptions {
  /** A file written by `cdk deploy --outputs-file`: `{ "<StackName>": { "<OutputKey>": "<value>" } }`. */
  outputsFile?: string;
  /**
   * The stack to pick from the outputs file (needed when the file holds several agentflow stacks)
   * or to describe; `describeStack` falls back to `DEFAULT_STACK_NAME`.
   */
  stackName?: string;
  /** Variables in `STACK_OUTPUT_ENV`; they override the file and the lookup. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Reads a stack's outputs from CloudFormation (DescribeStacks), e.g. with
   * @aws-sdk/client-cloudformation. Used only when neither the file nor the environment gives
   * every required output.
   */
  describeStack?: (stackName: string) => Promise<Record<string, string>>;
}

const STATE_MACHINE_ARN = /^arn:aws[a-z-]*:states:([a-z0-9-]+):(\d{12}):stateMachine:([A-Za-z0-9_-]{1,80})$/;

/** Region, account and name of a state machine ARN; fails with the fix when it is not one. */
export function parseStateMachineArn(arn: string): { region: string; account: string; name: string; partition: string } {
  const match = STATE_MACHINE_ARN.exec(arn);
  if (!match) {
    throw new AwsModeError(
      `${JSON.stringify(arn)} is not a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>); check the StateMachineArn output`,
      {
        code: 'STATE_MACHINE_ARN_INVALID',
        context: { arn },
      },
    );
  }
  return { partition: arn.split(':')[1], region: match[1], account: match[2], name: match[3] };
}

async function readOutputsFile(path: string, stackName: string | undefined): Promise<{ stackName: string; outputs: Record<string, string> }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new AwsModeError(`cannot read stack outputs from ${path}: ${(error as Error).message}; write it with \`cdk deploy --outputs-file ${path}\``, {
      code: 'STACK_OUTPUTS_UNREADABLE',
      context: { path },
      cause: error,
    });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new AwsModeError(`${path} is not a cdk outputs file: expected { "<StackName>": { "<OutputKey>": "<value>" } }`, {
      code: 'STACK_OUTPUTS_UNREADABLE',
      context: { path },
    });
  }
  const stacks = parsed as Record<string, unknown>;
  const names = Object.keys(stacks);
  let chosen: string | undefined = stackName;
  if (!chosen) {
    // A file may hold several stacks; the agentflow one is the one with a state machine output.
    const candidates = names.filter((name) => typeof (stacks[name] as Record<string, unknown> | null)?.[STACK_OUTPUTS.stateMachineArn] === 'string');
    if (candidates.length > 1) {
      throw new AwsModeError(`${path} holds several agentflow stacks (${candidates.join(', ')}); pass the stack name to pick one`, {
        code: 'STACK_AMBIGUOUS',
        context: { path, candidates },
      });
    }
    chosen = candidates[0];
  }
  const outputs = chosen === undefined ? undefined : stacks[chosen];
  if (!outputs || typeof outputs !== 'object') {
    throw new AwsModeError(
      chosen === undefined
        ? `${path} has no stack with a ${STACK_OUTPUTS.stateMachineArn} output (stacks: ${names.join(', ') || 'none'}); is it the outputs of the agentflow stack?`
        : `${path} has no stack named "${chosen}" (stacks: ${names.join(', ') || 'none'})`,
      { code: 'STACK_OUTPUTS_MISSING', context: { path, stackName: chosen, stacks: names } },
    );
  }
  return {
    stackName: chosen as string,
    outputs: Object.fromEntries(Object.entries(outputs).filter((entry): entry is [string, string] => typeof entry[1] === 'string')),
  };
}

/**
 * The deployed stack's resources, from (by precedence) environment variables, the outputs file,
 * then `describeStack`. Fails naming every output still missing and where it was looked for.
 */
export async function findStack(options: FindStackOptions = {}): Promise<DeployedStack> {
  const env = options.env ?? process.env;
  const values: Partial<Record<keyof typeof STACK_OUTPUTS, string>> = {};
  const sources: DeployedStack['sources'] = {};
  const fields = Object.keys(STACK_OUTPUTS) as (keyof typeof STACK_OUTPUTS)[];

  const take = (outputs: Record<string, string>, source: string) => {
    for (const field of fields) {
      const value = outputs[STACK_OUTPUTS[field]];
      if (values[field] === undefined && value) {
        values[field] = value;
        sources[field] = source;
      }
    }
  };
  for (const field of fields) {
    const value = env[STACK_OUTPUT_ENV[field]];
    if (value) {
      values[field] = value;
      sources[field] = `$${STACK_OUTPUT_ENV[field]}`;
    }
  }
  let stackName: string | undefined;
  if (options.outputsFile) {
    const file = await readOutputsFile(options.outputsFile, options.stackName);
    stackName = file.stackName;
    take(file.outputs, options.outputsFile);
  }
  const missing = () => REQUIRED.filter((field) => !values[field]);
  const describedName = options.stackName ?? DEFAULT_STACK_NAME;
  if (missing().length && options.describeStack) {
    take(await options.describeStack(describedName), `stack ${describedName}`);
    stackName ??= describedName;
  }
  if (missing().length) {
    const lookedIn = [
      'environment',
      ...(options.outputsFile ? [options.outputsFile] : []),
      ...(options.describeStack ? [`CloudFormation stack ${describedName}`] : []),
    ];
    const wanted = missing().map((field) => `${STACK_OUTPUTS[field]} (or $${STACK_OUTPUT_ENV[field]})`);
    throw new AwsModeError(
      `the deployed stack is missing ${wanted.join(', ')}; looked in ${lookedIn.join(', ')}. Deploy with \`npx cdk deploy --outputs-file stack-outputs.json\` and pass --stack-outputs stack-outputs.json`,
      { code: 'STACK_OUTPUTS_MISSING', context: { missing: missing(), lookedIn } },
    );
  }
  const stateMachineArn = values.stateMachineArn as string;
  return {
    region: parseStateMachineArn(stateMachineArn).region,
    bucket: values.bucket as string,
    registryTable: values.registryTable as string,
    rewardTable: values.rewardTable as string,
    stateMachineArn,
    ...(values.jobQueueArn ? { jobQueueArn: values.jobQueueArn } : {}),
    ...(values.inferUrl ? { inferUrl: values.inferUrl } : {}),
    ...(values.feedbackUrl ? { feedbackUrl: values.feedbackUrl } : {}),
    ...(values.scheduleGroup ? { scheduleGroup: values.scheduleGroup } : {}),
    ...(values.inferFunctionArn ? { inferFunctionArn: values.inferFunctionArn } : {}),
    ...(values.feedbackFunctionArn ? { feedbackFunctionArn: values.feedbackFunctionArn } : {}),
    ...(stackName ? { stackName } : {}),
    sources,
  };
}
