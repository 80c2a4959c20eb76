import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { SFNClient } from '@aws-sdk/client-sfn';
import { describeStackWith, findStack, followExecution, startAwsRun } from '#lib/aws/index.ts';
import { stageDependencies } from '#lib/stages/index.ts';
import { EXIT, type Output } from './output.ts';
import type { Progress } from './progress.ts';
import { summarizeRun } from './summary.ts';

/**
 * `agentflow run --aws`: the same run against the deployed stack. Local datasets are uploaded to
 * the stack's bucket, the execution is started (named after the run id, so a repeated start
 * attaches to it), followed through its history with the local progress display, and summarized
 * from the deployed registry and reward tables.
 */
export async function runOnAws(options: { specPath: string; output: Output; progress: Progress; runId: string; stackOutputs?: string; stackName: string }): Promise<number> {
  const stack = await findStack({
    ...(options.stackOutputs ? { outputsFile: options.stackOutputs } : {}),
    stackName: options.stackName,
    describeStack: describeStackWith(new CloudFormationClient({})),
  });
  const deps = stageDependencies({ region: stack.region, bucket: stack.bucket, registryTable: stack.registryTable, rewardTable: stack.rewardTable });
  const sfn = new SFNClient({ region: stack.region });
  try {
    const started = await startAwsRun({ specPath: options.specPath, sfn, store: deps.store, stateMachineArn: stack.stateMachineArn, runId: options.runId });
    if (!options.output.json) options.output.out(`${started.attached ? 'attached to' : 'started'} ${started.executionArn}`);
    const followed = await followExecution({ sfn, executionArn: started.executionArn, onEvent: options.progress.onEvent });
    options.progress.finish();
    const summary = await summarizeRun(deps, started.input.project, started.runId);
    if (options.output.json) options.output.out(JSON.stringify({ runId: started.runId, executionArn: started.executionArn, status: followed.status, error: followed.error, cause: followed.cause, summary }));
    else options.output.out(summary.text);
    return followed.status === 'SUCCEEDED' ? EXIT.ok : EXIT.failed;
  } finally {
    sfn.destroy();
    deps.clients.s3.destroy();
    deps.clients.dynamodb.destroy();
  }
}
