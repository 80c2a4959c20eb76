/**
 * Retraining on a schedule (DESIGN §1): one EventBridge Scheduler schedule per entry of the
 * `agentflow:schedules` context, each starting an execution with a fresh run id, and the monitor
 * function on its own schedule. All of them sit in the stack's own schedule group, so
 * `agentflow schedule show|enable|disable --aws` finds exactly these by listing it (the group's
 * name is the `ScheduleGroupName` output).
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { ContextAttribute, Schedule, ScheduleExpression, ScheduleGroup, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke, StepFunctionsStartExecution } from 'aws-cdk-lib/aws-scheduler-targets';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { RetrainingSchedule } from '../context.ts';

/** Scheduled run ids: the prefix plus the scheduler's execution id, unique per invocation (and a valid RunId). */
export const SCHEDULED_RUN_ID_PREFIX = 'sched-';

export interface SchedulesProps {
  stateMachine: IStateMachine;
  schedules: readonly RetrainingSchedule[];
  monitor: IFunction;
  /** `rate(…)`. */
  monitorRate: string;
}

export class Schedules extends Construct {
  readonly group: ScheduleGroup;
  readonly retraining: Schedule[] = [];
  readonly monitor: Schedule;

  constructor(scope: Construct, id: string, props: SchedulesProps) {
    super(scope, id);
    // CDK names the group after the stack and this construct's path. Destroyed with the stack (and
    // its schedules, which are the stack's anyway): a retained group would make the next deploy
    // of the same stack fail with "already exists".
    this.group = new ScheduleGroup(this, 'Group', { removalPolicy: RemovalPolicy.DESTROY });
    const account = Stack.of(this).account;
    const schedulerPrincipal = () => new ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': account } } });

    if (props.schedules.length) {
      // One role for every retraining schedule; the target grants it states:StartExecution on this state machine only.
      const startRuns = new Role(this, 'StartRunsRole', {
        assumedBy: schedulerPrincipal(),
        description: 'EventBridge Scheduler: start agentflow retraining runs',
      });
      props.schedules.forEach((schedule, index) => {
        this.retraining.push(
          new Schedule(this, `Retrain${index}`, {
            scheduleGroup: this.group,
            description: `agentflow: retrain ${schedule.project} (${schedule.expression})`,
            schedule: ScheduleExpression.expression(schedule.expression),
            enabled: schedule.enabled,
            target: new StepFunctionsStartExecution(props.stateMachine, {
              role: startRuns,
              input: ScheduleTargetInput.fromObject({
                runId: `${SCHEDULED_RUN_ID_PREFIX}${ContextAttribute.executionId}`,
                project: schedule.project,
                specUri: schedule.specUri,
              }),
              retryAttempts: 3,
            }),
          }),
        );
      });
    }

    // The schedules name the group by a literal string, which gives CloudFormation no order: say it.
    for (const schedule of this.retraining) schedule.node.addDependency(this.group);

    const invokeMonitor = new Role(this, 'InvokeMonitorRole', {
      assumedBy: schedulerPrincipal(),
      description: 'EventBridge Scheduler: run the agentflow monitor',
    });
    this.monitor = new Schedule(this, 'Monitor', {
      scheduleGroup: this.group,
      description: `agentflow: online reward and drift check (${props.monitorRate})`,
      schedule: ScheduleExpression.expression(props.monitorRate),
      target: new LambdaInvoke(props.monitor, {
        role: invokeMonitor,
        input: ScheduleTargetInput.fromObject({ scheduledAt: ContextAttribute.scheduledTime }),
        retryAttempts: 0,
      }),
    });
    this.monitor.node.addDependency(this.group);
  }
}
