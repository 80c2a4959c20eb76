/**
 * `agentflow resume --aws`: continue a run on the deployed stack, one of three ways.
 *
 * - Its latest execution is still running: attach and follow it.
 * - It stopped outside the workflow's own failure path (timed out, aborted, or an error no Catch
 *   took): Step Functions `RedriveExecution` continues that execution from the unsuccessful step,
 *   keeping the results of every step that succeeded.
 * - It failed through the workflow's failure path (a stage failed, RecordFailure recorded it, the
 *   `RunFailed` Fail state ended the execution), or redrive no longer applies (closed over 14 days
 *   ago, or the 1,000-redrive or 25,000-event limits): a redrive would run only the unsuccessful
 *   step — that Fail state — and fail again at once. Instead a new execution of the same run
 *   context starts, named `<runId>-resume-<n>`; every stage finds what it already did (manifest,
 *   cached shards, generation files, trial results, the registered version) and skips it, which is
 *   also what a local `resume` does. `restart` asks for this even where a redrive applies.
 *
 * The run record is reopened first (it refuses a succeeded or unknown run before anything starts).
 */
import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  ExecutionNotRedrivable,
  GetExecutionHistoryCommand,
  RedriveExecutionCommand,
  type DescribeExecutionCommandOutput,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import type { RunLog } from '#lib/adapters/registry/index.ts';
import type { ArtifactStore } from '#lib/adapters/store/index.ts';
import { RunContext, executionName } from '#lib/pipeline/index.ts';
import { runExecutionArn, startRunExecution } from '#lib/adapters/aws/executions.ts';

export interface ResumeAwsRunOptions {
  sfn: SFNClient;
  stateMachineArn: string;
  project: string;
  runId: string;
  runLog: Pick<RunLog, 'reopenRun'>;
  /** For the spec's default location when the run record predates `specUri`. */
  store: Pick<ArtifactStore, 'uri'>;
  /** Attempts probed after `<runId>` (`<runId>-resume-1`, …). Default 100. */
  maxAttempts?: number;
  /**
   * Start a new execution even where a redrive applies: a redriven execution keeps the definition
   * it started with, so after deploying a changed definition only a new execution runs the new one.
   */
  restart?: boolean;
}

export interface ResumedAwsRun {
  runId: string;
  executionArn: string;
  how: 'attached' | 'redriven' | 'restarted';
  /** Why it was resumed this way, for the person who asked. */
  reason: string;
  /** Follow from after this history event (the redriven execution's first attempt comes before it). */
  afterEventId?: number;
}

/** The execution name of a run's n-th restart (the naming rule is `executionName`, lib/pipeline/contracts.ts). */
export function restartName(runId: string, attempt: number): string {
  return executionName({ runId, attempt });
}

async function describeIfExists(sfn: SFNClient, executionArn: string): Promise<DescribeExecutionCommandOutput | undefined> {
  try {
    return await sfn.send(new DescribeExecutionCommand({ executionArn }));
  } catch (error) {
    if (error instanceof ExecutionDoesNotExist) return undefined;
    throw error;
  }
}

/** The run's newest execution and how many restarts came before it (0: the first attempt). */
async function latestAttempt(options: ResumeAwsRunOptions): Promise<{ execution: DescribeExecutionCommandOutput; arn: string; attempt: number } | undefined> {
  let latest: { execution: DescribeExecutionCommandOutput; arn: string; attempt: number } | undefined;
  const limit = options.maxAttempts ?? 100;
  for (let attempt = 0; attempt <= limit; attempt += 1) {
    const arn = runExecutionArn(options.stateMachineArn, { runId: options.runId, attempt });
    const execution = await describeIfExists(options.sfn, arn);
    if (!execution) return latest;
    latest = { execution, arn, attempt };
  }
  return latest;
}

/** The newest history event's id, and whether the execution ended in a Fail state (the workflow's own failure path). */
async function howItEnded(sfn: SFNClient, executionArn: string): Promise<{ lastEventId: number; failState?: string }> {
  const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 3 }));
  const events = page.events ?? [];
  const failState = events.find((event) => event.type === 'FailStateEntered')?.stateEnteredEventDetails?.name;
  return { lastEventId: events[0]?.id ?? 0, ...(failState ? { failState } : {}) };
}

export async function resumeAwsRun(options: ResumeAwsRunOptions): Promise<ResumedAwsRun> {
  const { sfn, runId, project } = options;
  const latest = await latestAttempt(options);
  if (latest?.execution.status === 'RUNNING') {
    return { runId, executionArn: latest.arn, how: 'attached', reason: `execution ${latest.arn} is still running` };
  }
  const run = await options.runLog.reopenRun(project, runId);

  let reason: string;
  if (!latest) {
    reason = `no execution is named after run ${runId} (a scheduled run is named by EventBridge Scheduler)`;
  } else if (options.restart) {
    reason = 'a new execution was asked for (--restart)';
  } else if (latest.execution.status === 'SUCCEEDED') {
    reason = `execution ${latest.arn} succeeded but the run was not finished`;
  } else {
    const ended = await howItEnded(sfn, latest.arn);
    if (ended.failState) {
      reason = `the run failed through the workflow's ${ended.failState} state, which a redrive would only repeat`;
    } else if (latest.execution.redriveStatus !== 'REDRIVABLE') {
      reason = `execution ${latest.arn} cannot be redriven (${latest.execution.redriveStatusReason ?? latest.execution.redriveStatus ?? 'no reason given'})`;
    } else {
      try {
        await sfn.send(new RedriveExecutionCommand({ executionArn: latest.arn }));
        return {
          runId,
          executionArn: latest.arn,
          how: 'redriven',
          reason: `execution ${latest.arn} ${latest.execution.status === 'FAILED' ? 'failed' : latest.execution.status === 'TIMED_OUT' ? 'timed out' : 'was aborted'} outside the workflow's failure path; it continues from the unsuccessful step`,
          afterEventId: ended.lastEventId,
        };
      } catch (error) {
        if (!(error instanceof ExecutionNotRedrivable)) throw error;
        reason = `execution ${latest.arn} cannot be redriven (${error.message})`;
      }
    }
  }

  const input = RunContext.parse({ runId, project, specUri: run.specUri ?? options.store.uri(`runs/${runId}/spec.json`) });
  const { executionArn, started } = await startRunExecution({ sfn, stateMachineArn: options.stateMachineArn, input, attempt: (latest?.attempt ?? 0) + 1 });
  // Another resume of this run started the same attempt first: follow that one.
  if (!started) return { runId, executionArn, how: 'attached', reason: `another resume started ${executionArn} first` };
  return { runId, executionArn, how: 'restarted', reason: `${reason}; a new execution continues the run, and each stage skips what it already did` };
}
