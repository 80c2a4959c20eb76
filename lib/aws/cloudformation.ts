import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { AwsModeError } from '#lib/aws/errors.ts';

/** A `describeStack` for `findStack`: the stack's outputs by key, from CloudFormation's DescribeStacks. */
export function describeStackWith(client: CloudFormationClient): (stackName: string) => Promise<Record<string, string>> {
  return async (stackName) => {
    const response = await client.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = response.Stacks?.[0];
    if (!stack) {
      throw new AwsModeError(`CloudFormation has no stack "${stackName}" in this region; deploy it with \`npx cdk deploy\` or pass --stack-name`, {
        code: 'STACK_OUTPUTS_MISSING',
        context: { stackName },
      });
    }
    return Object.fromEntries((stack.Outputs ?? []).flatMap((o) => (o.OutputKey && o.OutputValue !== undefined ? [[o.OutputKey, o.OutputValue]] : [])));
  };
}
