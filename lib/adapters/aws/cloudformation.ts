import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { AwsModeError } from '#lib/adapters/aws/errors.ts';

/** A `describeStack` for `findStack`: the stack's outputs by key, from CloudFormation's DescribeStacks. */
export function describeStackWith(client: CloudFormationClient): (stackName: string) => Promise<Record<string, string>> {
  return async (stackName) => {
    const region = await client.config.region().catch(() => undefined);
    if (!region) {
      throw new AwsModeError(`no AWS region to look stack "${stackName}" up in; set AWS_REGION (or a profile's region), or pass --stack-outputs`, {
        code: 'STACK_OUTPUTS_MISSING',
        context: { stackName },
      });
    }
    const missing = (cause?: unknown) =>
      new AwsModeError(
        `CloudFormation has no stack "${stackName}" in ${region}; deploy it with \`npx cdk deploy\`, pass --stack-name, set AWS_REGION, or pass --stack-outputs`,
        {
          code: 'STACK_OUTPUTS_MISSING',
          context: { stackName, region },
          ...(cause === undefined ? {} : { cause }),
        },
      );
    let response;
    try {
      response = await client.send(new DescribeStacksCommand({ StackName: stackName }));
    } catch (error) {
      // CloudFormation answers an unknown stack name with a ValidationError, not an empty list.
      if ((error as Error).name === 'ValidationError' && /does not exist/.test((error as Error).message)) throw missing(error);
      throw error;
    }
    const stack = response.Stacks?.[0];
    if (!stack) throw missing();
    return Object.fromEntries((stack.Outputs ?? []).flatMap((o) => (o.OutputKey && o.OutputValue !== undefined ? [[o.OutputKey, o.OutputValue]] : [])));
  };
}
