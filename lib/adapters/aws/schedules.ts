/**
 * The deployed stack's EventBridge Scheduler schedules (cdk/constructs/schedules.ts): the
 * retraining schedules from the `agentflow:schedules` context and the monitor's. They live in the
 * stack's own schedule group (the `ScheduleGroupName` output), so listing that group finds exactly
 * them. Every Scheduler call of the CLI is in this file.
 */
import {
  GetScheduleCommand,
  ListSchedulesCommand,
  ResourceNotFoundException,
  UpdateScheduleCommand,
  type GetScheduleCommandOutput,
  type SchedulerClient,
} from '@aws-sdk/client-scheduler';
import { AwsModeError } from '#lib/adapters/aws/errors.ts';

export type ScheduleState = 'ENABLED' | 'DISABLED';

export interface DeployedSchedule {
  name: string;
  group: string;
  state: ScheduleState;
  /** `rate(7 days)`, `cron(0 3 ? * MON *)`. */
  expression: string;
  timezone?: string;
  description?: string;
  /** `retrain` starts executions of the state machine; `monitor` invokes the monitor function. */
  kind: 'retrain' | 'monitor' | 'other';
  /** The project a retraining schedule starts runs of (from its target input). */
  project?: string;
  targetArn: string;
}

function kindOf(targetArn: string): DeployedSchedule['kind'] {
  if (/^arn:[^:]+:states:/.test(targetArn)) return 'retrain';
  if (/^arn:[^:]+:lambda:/.test(targetArn)) return 'monitor';
  return 'other';
}

function projectOf(input: string | undefined): string | undefined {
  try {
    const project = (JSON.parse(input ?? 'null') as { project?: unknown } | null)?.project;
    return typeof project === 'string' ? project : undefined;
  } catch {
    return undefined;
  }
}

function describe(got: GetScheduleCommandOutput): DeployedSchedule {
  const targetArn = got.Target?.Arn ?? '';
  const project = projectOf(got.Target?.Input);
  return {
    name: got.Name ?? '',
    group: got.GroupName ?? '',
    state: got.State === 'DISABLED' ? 'DISABLED' : 'ENABLED',
    expression: got.ScheduleExpression ?? '',
    ...(got.ScheduleExpressionTimezone ? { timezone: got.ScheduleExpressionTimezone } : {}),
    ...(got.Description ? { description: got.Description } : {}),
    kind: kindOf(targetArn),
    ...(project ? { project } : {}),
    targetArn,
  };
}

async function getSchedule(scheduler: SchedulerClient, group: string, name: string): Promise<GetScheduleCommandOutput> {
  try {
    return await scheduler.send(new GetScheduleCommand({ GroupName: group, Name: name }));
  } catch (error) {
    if (error instanceof ResourceNotFoundException) {
      throw new AwsModeError(`schedule group ${group} has no schedule "${name}"; list them with \`agentflow schedule show --aws\``, {
        code: 'SCHEDULE_NOT_FOUND',
        context: { group, name },
        cause: error,
      });
    }
    throw error;
  }
}

/** Every schedule of the group, with what `show` prints (ListSchedules has no target input, so each is read whole). */
export async function listStackSchedules(scheduler: SchedulerClient, group: string): Promise<DeployedSchedule[]> {
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await scheduler.send(new ListSchedulesCommand({ GroupName: group, ...(nextToken ? { NextToken: nextToken } : {}) }));
    for (const summary of page.Schedules ?? []) if (summary.Name) names.push(summary.Name);
    nextToken = page.NextToken;
  } while (nextToken);
  const schedules = await Promise.all(names.map(async (name) => describe(await getSchedule(scheduler, group, name))));
  return schedules.sort((a, b) => a.kind.localeCompare(b.kind) || (a.project ?? '').localeCompare(b.project ?? '') || a.name.localeCompare(b.name));
}

/**
 * Turns a schedule on or off. UpdateSchedule replaces the whole schedule (a field left out is
 * reset, a missing target or window is refused), so it resends everything GetSchedule returned
 * with only `State` changed. A schedule already in that state is left alone.
 */
export async function setScheduleState(
  scheduler: SchedulerClient,
  target: { group: string; name: string; state: ScheduleState },
): Promise<{ schedule: DeployedSchedule; changed: boolean }> {
  const got = await getSchedule(scheduler, target.group, target.name);
  if (got.State === target.state) return { schedule: describe(got), changed: false };
  await scheduler.send(
    new UpdateScheduleCommand({
      Name: got.Name,
      GroupName: got.GroupName,
      ScheduleExpression: got.ScheduleExpression,
      ScheduleExpressionTimezone: got.ScheduleExpressionTimezone,
      Description: got.Description,
      StartDate: got.StartDate,
      EndDate: got.EndDate,
      KmsKeyArn: got.KmsKeyArn,
      Target: got.Target,
      FlexibleTimeWindow: got.FlexibleTimeWindow,
      ActionAfterCompletion: got.ActionAfterCompletion,
      State: target.state,
    }),
  );
  return { schedule: { ...describe(got), state: target.state }, changed: true };
}
