import {
  followExecution,
  listStackSchedules,
  resumeAwsRun,
  setScheduleState,
  startAwsRun,
  AwsModeError,
  STACK_OUTPUTS,
  type DeployedSchedule,
  type FollowedExecution,
  type ScheduleState,
} from '#lib/adapters/aws/index.ts';
import { EXIT, table, type Output } from './output.ts';
import type { Progress } from './progress.ts';
import type { AwsCliSession } from './session.ts';
import { summarizeRun } from './summary.ts';

/** Prints how a deployed execution ended, with the run's summary from the deployed tables. */
async function finishFollowed(
  session: AwsCliSession,
  options: { output: Output; project: string; runId: string; executionArn: string; followed: FollowedExecution; extra?: Record<string, unknown> },
): Promise<number> {
  const { output, followed } = options;
  const summary = await summarizeRun(session.deps, options.project, options.runId);
  if (output.json)
    output.out(
      JSON.stringify({
        runId: options.runId,
        executionArn: options.executionArn,
        ...options.extra,
        status: followed.status,
        error: followed.error,
        cause: followed.cause,
        summary,
      }),
    );
  else output.out(summary.text);
  return followed.status === 'SUCCEEDED' ? EXIT.ok : EXIT.failed;
}

/**
 * `agentflow run --aws`: the same run against the deployed stack. Local datasets are uploaded to
 * the stack's bucket, the execution is started (named after the run id, so a repeated start
 * attaches to it), followed through its history with the local progress display, and summarized
 * from the deployed registry and reward tables.
 */
export async function runOnAws(session: AwsCliSession, options: { specPath: string; output: Output; progress: Progress; runId: string }): Promise<number> {
  const { sfn } = session.clients;
  const started = await startAwsRun({
    specPath: options.specPath,
    sfn,
    store: session.deps.store,
    stateMachineArn: session.stack.stateMachineArn,
    runId: options.runId,
  });
  if (!options.output.json) options.output.out(`${started.attached ? 'attached to' : 'started'} ${started.executionArn}`);
  const followed = await followExecution({ sfn, executionArn: started.executionArn, onEvent: options.progress.onEvent });
  options.progress.finish();
  return finishFollowed(session, {
    output: options.output,
    project: started.input.project,
    runId: started.runId,
    executionArn: started.executionArn,
    followed,
  });
}

/** `agentflow resume --aws`: redrive, restart or attach (lib/adapters/aws/resume.ts says which when), then follow. */
export async function resumeOnAws(
  session: AwsCliSession,
  options: { project: string; runId: string; restart: boolean; output: Output; progress: Progress },
): Promise<number> {
  const { sfn } = session.clients;
  const resumed = await resumeAwsRun({
    sfn,
    stateMachineArn: session.stack.stateMachineArn,
    project: options.project,
    runId: options.runId,
    runLog: session.deps.runLog,
    store: session.deps.store,
    restart: options.restart,
  });
  if (!options.output.json) options.output.out(`${resumed.how} ${resumed.executionArn}: ${resumed.reason}`);
  const followed = await followExecution({
    sfn,
    executionArn: resumed.executionArn,
    onEvent: options.progress.onEvent,
    ...(resumed.afterEventId ? { afterEventId: resumed.afterEventId } : {}),
  });
  options.progress.finish();
  return finishFollowed(session, {
    output: options.output,
    project: options.project,
    runId: options.runId,
    executionArn: resumed.executionArn,
    followed,
    extra: { how: resumed.how, reason: resumed.reason },
  });
}

/** The stack's schedule group; stacks deployed before it existed lack the output. */
function scheduleGroupOf(session: AwsCliSession): string {
  const group = session.stack.scheduleGroup;
  if (!group) {
    throw new AwsModeError(
      `the deployed stack has no ${STACK_OUTPUTS.scheduleGroup} output; redeploy it with this version (\`npx cdk deploy --outputs-file stack-outputs.json\`)`,
      {
        code: 'STACK_OUTPUTS_MISSING',
        context: { output: STACK_OUTPUTS.scheduleGroup },
      },
    );
  }
  return group;
}

function printSchedules(output: Output, schedules: DeployedSchedule[]): void {
  if (output.json) output.out(JSON.stringify(schedules));
  else
    output.out(
      table(
        ['schedule', 'kind', 'project', 'state', 'expression'],
        schedules.map((s) => [s.name, s.kind, s.project, s.state, `${s.expression}${s.timezone && s.timezone !== 'UTC' ? ` ${s.timezone}` : ''}`]),
      ),
    );
}

/** `agentflow schedule show --aws [-p project]`. */
export async function showSchedules(session: AwsCliSession, options: { output: Output; project?: string }): Promise<number> {
  const all = await listStackSchedules(session.clients.scheduler, scheduleGroupOf(session));
  const shown = options.project ? all.filter((s) => s.project === options.project) : all;
  if (shown.length === 0 && !options.output.json) {
    options.output.out(
      options.project
        ? `no schedule retrains ${options.project}; add one to the agentflow:schedules context and redeploy (docs/deploy.md, "Schedules")`
        : 'the stack has no schedules',
    );
  } else printSchedules(options.output, shown);
  return EXIT.ok;
}

/**
 * `agentflow schedule enable|disable --aws (-p project | --name schedule)`: every retraining
 * schedule of a project, or one schedule by name (the monitor's too).
 */
export async function setSchedules(
  session: AwsCliSession,
  options: { output: Output; state: ScheduleState; project?: string; name?: string },
): Promise<number> {
  const verb = options.state === 'ENABLED' ? 'enable' : 'disable';
  if (Boolean(options.project) === Boolean(options.name)) {
    throw new AwsModeError(
      `say which schedules to ${verb}: -p <project> (its retraining schedules) or --name <schedule>, not ${options.project ? 'both' : 'neither'}; \`agentflow schedule show --aws\` lists them`,
      {
        code: 'SCHEDULE_SELECTION_INVALID',
      },
    );
  }
  const group = scheduleGroupOf(session);
  let names: string[];
  if (options.name) names = [options.name];
  else {
    names = (await listStackSchedules(session.clients.scheduler, group))
      .filter((s) => s.kind === 'retrain' && s.project === options.project)
      .map((s) => s.name);
    if (names.length === 0) {
      throw new AwsModeError(`no schedule retrains ${options.project}; \`agentflow schedule show --aws\` lists the stack's schedules`, {
        code: 'SCHEDULE_NOT_FOUND',
        context: { project: options.project },
      });
    }
  }
  const results = [];
  for (const name of names) results.push(await setScheduleState(session.clients.scheduler, { group, name, state: options.state }));
  if (options.output.json) options.output.out(JSON.stringify(results.map((r) => ({ ...r.schedule, changed: r.changed }))));
  else {
    for (const { schedule, changed } of results)
      options.output.out(
        `${schedule.name}${schedule.project ? ` (${schedule.project})` : ''}: ${changed ? `now ${schedule.state}` : `already ${schedule.state}`}`,
      );
    // CloudFormation still holds the context's state: a deploy that changes the schedule sets it back.
    options.output.out('a deploy that changes a schedule sets it back to the agentflow:schedules context; set "enabled" there to keep this');
  }
  return EXIT.ok;
}
