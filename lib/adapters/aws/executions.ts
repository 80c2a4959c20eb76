/**
 * The one adapter that starts executions of the workflow on AWS: the CLI's `run` and `resume`
 * and the monitor all start through it, so every execution is named by the one rule
 * (`executionName`, beside the run context it names).
 */
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { recordIfConfigured, type AgentflowConfig } from '#lib/adapters/config/index.ts';
import { RunContext, executionName } from '#lib/pipeline/contracts.ts';
import { AwsModeError } from '#lib/adapters/aws/errors.ts';
import { parseStateMachineArn } from '#lib/adapters/aws/outputs.ts';
import type { StartRun } from '#lib/serve/monitor.ts';

export interface StartRunExecutionOptions {
  sfn: SFNClient;
  stateMachineArn: string;
  /** The execution's input: the run it carries out, and whatever else its starter records (the monitor's trigger and reason). */
  input: RunContext & Record<string, unknown>;
  /** The restart's number (`agentflow resume`); absent for a run's first execution. */
  attempt?: number;
}

export interface StartedExecution {
  executionArn: string;
  /** False when an execution of this name already existed (a retried or racing start): nothing was started. */
  started: boolean;
  startDate?: Date;
}

/** A Step Functions client for a Lambda function's role (the monitor's), its calls recorded when the config says so (the IAM test). */
export function sfnClientFor(config: AgentflowConfig, options: { principal: string }): SFNClient {
  return recordIfConfigured(new SFNClient({ region: config.region }), config, options.principal);
}

/** `arn:…:stateMachine:<name>` → `arn:…:execution:<name>:<executionName>`. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  const { partition, region, account, name: machine } = parseStateMachineArn(stateMachineArn);
  return `arn:${partition}:states:${region}:${account}:execution:${machine}:${name}`;
}

/** The ARN the execution of a run (or of its n-th restart) has or will have. */
export function runExecutionArn(stateMachineArn: string, run: { runId: string; attempt?: number }): string {
  return executionArnOf(stateMachineArn, executionName(run));
}

/** Starts the execution of a run, named by the rule; a start of a name that exists already starts nothing and says so. */
export async function startRunExecution(options: StartRunExecutionOptions): Promise<StartedExecution> {
  const input = RunContext.safeParse(options.input);
  if (!input.success) {
    const issue = input.error.issues[0];
    throw new AwsModeError(`cannot start a run with ${issue?.path.join('.') || 'input'} ${JSON.stringify(issue?.input ?? options.input)}: ${issue?.message}`, {
      code: 'RUN_ID_INVALID',
      context: { input: options.input },
    });
  }
  const run = { runId: input.data.runId, ...(options.attempt ? { attempt: options.attempt } : {}) };
  const name = executionName(run);
  try {
    const started = await options.sfn.send(
      new StartExecutionCommand({ stateMachineArn: options.stateMachineArn, name, input: JSON.stringify({ ...options.input, ...input.data }) }),
    );
    return {
      executionArn: started.executionArn ?? executionArnOf(options.stateMachineArn, name),
      started: true,
      ...(started.startDate ? { startDate: started.startDate } : {}),
    };
  } catch (error) {
    if (error instanceof ExecutionAlreadyExists) return { executionArn: executionArnOf(options.stateMachineArn, name), started: false };
    throw error;
  }
}

/**
 * The monitor's way to start a retraining run on AWS: the run's execution, named by the rule, with
 * the trigger and reason in its input for the history. A retried start (same window, same run id)
 * starts nothing and reports the run.
 */
export function retrainStarter(options: { sfn: SFNClient; stateMachineArn: string }): StartRun {
  return async ({ project, runId, specUri, trigger, reason }) => {
    if (!specUri) {
      throw new AwsModeError(
        `cannot retrain ${project}: production names no spec to retrain from (its models/<project>/<version>/live.json, written by Export, has one)`,
        {
          code: 'RETRAIN_SPEC_MISSING',
          context: { project, runId },
        },
      );
    }
    const started = await startRunExecution({ ...options, input: { runId, project, specUri, trigger, reason } });
    return started.started ? { runId, executionArn: started.executionArn } : { runId };
  };
}
