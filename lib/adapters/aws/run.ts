/**
 * Starting a run on the deployed stack: the local spec's files are uploaded (content-addressed,
 * so a repeat sends nothing) and the workflow is started through lib/adapters/aws/executions.ts
 * with the run context, named by the run id (`executionName`), so that starting the same run twice
 * attaches to the first execution instead of a second one.
 */
import { DescribeExecutionCommand, ExecutionDoesNotExist, type SFNClient } from '@aws-sdk/client-sfn';
import { stageRunInputs, type StagedRun } from '#lib/adapters/local/stageInputs.ts';
import type { ArtifactStore } from '#lib/adapters/store/index.ts';
import { RunContext, RunId } from '#lib/pipeline/index.ts';
import { AwsModeError } from '#lib/adapters/aws/errors.ts';
import { runExecutionArn, startRunExecution } from '#lib/adapters/aws/executions.ts';

export interface StartAwsRunOptions {
  /** A local spec.json; the files it names are resolved relative to it. */
  specPath: string;
  sfn: SFNClient;
  /** The stack's artifact bucket. */
  store: ArtifactStore;
  stateMachineArn: string;
  /** Also the execution name: letters, digits, "-" or "_", at most 48. */
  runId: string;
}

export interface StartedAwsRun {
  runId: string;
  executionArn: string;
  /** The run context the execution was started with (the existing one's, when attached). */
  input: RunContext;
  /** True when an execution named `runId` already existed and this call attached to it. */
  attached: boolean;
  startDate?: Date;
  /** What was uploaded for a new execution; empty when attached. */
  uploads: StagedRun['uploads'];
}

async function describeIfExists(sfn: SFNClient, executionArn: string): Promise<{ input: RunContext; startDate?: Date } | undefined> {
  try {
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    const parsed = RunContext.safeParse(JSON.parse(described.input ?? 'null'));
    if (!parsed.success) {
      throw new AwsModeError(`execution ${executionArn} exists but was not started with an agentflow run context; pick another run id`, {
        code: 'RUN_ID_INVALID',
        context: { executionArn },
      });
    }
    return { input: parsed.data, startDate: described.startDate };
  } catch (error) {
    if (error instanceof ExecutionDoesNotExist) return undefined;
    throw error;
  }
}

/**
 * Uploads the spec's inputs and starts the execution, or attaches to the execution already named
 * `runId` (a repeated `agentflow run --aws --run-id …`). An existing execution is looked up first,
 * so attaching never rewrites the stored spec of a run in progress.
 */
export async function startAwsRun(options: StartAwsRunOptions): Promise<StartedAwsRun> {
  const runId = RunId.safeParse(options.runId);
  if (!runId.success) {
    throw new AwsModeError(`run id ${JSON.stringify(options.runId)} is invalid: ${runId.error.issues[0]?.message}`, {
      code: 'RUN_ID_INVALID',
      context: { runId: options.runId },
    });
  }
  const executionArn = runExecutionArn(options.stateMachineArn, { runId: runId.data });
  const attach = (existing: { input: RunContext; startDate?: Date }): StartedAwsRun => ({
    runId: runId.data,
    executionArn,
    input: existing.input,
    attached: true,
    ...(existing.startDate ? { startDate: existing.startDate } : {}),
    uploads: [],
  });

  const existing = await describeIfExists(options.sfn, executionArn);
  if (existing) return attach(existing);

  const staged = await stageRunInputs(options.specPath, runId.data, options.store);
  const input: RunContext = { runId: runId.data, project: staged.spec.project, specUri: staged.specUri };
  const started = await startRunExecution({ sfn: options.sfn, stateMachineArn: options.stateMachineArn, input });
  if (started.started) {
    return {
      runId: runId.data,
      executionArn: started.executionArn,
      input,
      attached: false,
      ...(started.startDate ? { startDate: started.startDate } : {}),
      uploads: staged.uploads,
    };
  }
  // Another start with this name won the race (or it closed in between): follow that one.
  const winner = await describeIfExists(options.sfn, executionArn);
  if (!winner) {
    throw new AwsModeError(
      `execution ${executionArn} already existed when run ${runId.data} was started, but it cannot be described; run again to attach to it`,
      {
        code: 'RUN_ID_INVALID',
        context: { executionArn },
      },
    );
  }
  return attach(winner);
}
