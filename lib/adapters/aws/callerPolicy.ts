/**
 * The IAM policy a person (or CI role) attaches to use `--aws`: docs/caller-policy.json, whose
 * `${Placeholders}` (CloudFormation `Fn::Sub` syntax) are filled here from a deployed stack's
 * outputs, so the file the docs show and the policy `agentflow caller-policy --aws` prints are one.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { AwsModeError } from '#lib/adapters/aws/errors.ts';
import { parseStateMachineArn, STACK_OUTPUTS, type DeployedStack } from '#lib/adapters/aws/outputs.ts';

export const CALLER_POLICY_PATH = fileURLToPath(new URL('../../../docs/caller-policy.json', import.meta.url));

/** The placeholder values of a deployed stack; fails naming every output the policy needs and the stack lacks. */
export function callerPolicyValues(stack: DeployedStack): Record<string, string> {
  const { partition, region, account, name } = parseStateMachineArn(stack.stateMachineArn);
  const needed = {
    stackName: stack.stackName,
    inferFunctionArn: stack.inferFunctionArn,
    feedbackFunctionArn: stack.feedbackFunctionArn,
    scheduleGroup: stack.scheduleGroup,
  };
  const missing = Object.entries(needed)
    .filter(([, value]) => !value)
    .map(([field]) => (field === 'stackName' ? 'the stack name (--stack-name)' : STACK_OUTPUTS[field as keyof typeof STACK_OUTPUTS]));
  if (missing.length) {
    throw new AwsModeError(
      `the caller policy needs ${missing.join(', ')}; redeploy with this version and pass --stack-outputs from \`cdk deploy --outputs-file\``,
      {
        code: 'STACK_OUTPUTS_MISSING',
        context: { missing },
      },
    );
  }
  return {
    'AWS::Partition': partition,
    'AWS::Region': region,
    'AWS::AccountId': account,
    StackName: needed.stackName as string,
    BucketName: stack.bucket,
    RegistryTableName: stack.registryTable,
    RewardTableName: stack.rewardTable,
    StateMachineName: name,
    InferFunctionArn: needed.inferFunctionArn as string,
    FeedbackFunctionArn: needed.feedbackFunctionArn as string,
    ScheduleGroupName: needed.scheduleGroup as string,
  };
}

/** The policy template with every `${Name}` replaced; a placeholder without a value is an error, not left in. */
export function fillCallerPolicy(template: string, values: Record<string, string>): unknown {
  const unknown = new Set<string>();
  const filled = template.replace(/\$\{([A-Za-z:]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) unknown.add(name);
    return value ?? '';
  });
  if (unknown.size) {
    throw new AwsModeError(`the caller policy has placeholders without a value: ${[...unknown].join(', ')}`, {
      code: 'STACK_OUTPUTS_MISSING',
      context: { placeholders: [...unknown] },
    });
  }
  return JSON.parse(filled);
}

/** docs/caller-policy.json filled for `stack`. */
export async function callerPolicyFor(stack: DeployedStack, options: { templatePath?: string } = {}): Promise<unknown> {
  return fillCallerPolicy(await readFile(options.templatePath ?? CALLER_POLICY_PATH, 'utf8'), callerPolicyValues(stack));
}
