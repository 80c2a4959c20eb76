/**
 * The state machine: `buildDefinition()` as written, with every `${Placeholder}` substituted by
 * the deployed resource, and an execution role that holds exactly what the definition's tasks use.
 * The definition is a string, so CDK cannot infer permissions from it; they are stated here.
 */
import { ArnFormat, Aws, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { EcsJobDefinition, JobQueue } from 'aws-cdk-lib/aws-batch';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  BATCH_STAGES,
  JOB_QUEUE_PLACEHOLDER,
  LAMBDA_STAGES,
  PARTITION_PLACEHOLDER,
  PLACEHOLDERS,
  buildDefinition,
  placeholdersIn,
  type BatchJobName,
} from '#lib/pipeline/index.ts';
import { DeployError } from '../errors.ts';
import { perStackInstanceName } from '../names.ts';

/** The rule Step Functions manages to learn when a `.sync` Batch job ends. */
export const BATCH_SYNC_RULE = 'StepFunctionsGetEventsForBatchJobsRule';

export interface WorkflowProps {
  /** The function of each Lambda stage, by handler name. */
  functionOf: (handler: string) => IFunction;
  jobDefinitionOf: (job: BatchJobName) => EcsJobDefinition;
  queue: JobQueue;
}

/** The `definitionSubstitutions`: one value per entry of PLACEHOLDERS, or a DeployError naming what is missing. */
export function placeholderValues(props: WorkflowProps): Record<string, string> {
  const values: Record<string, string> = { [JOB_QUEUE_PLACEHOLDER]: props.queue.jobQueueArn, [PARTITION_PLACEHOLDER]: Aws.PARTITION };
  for (const stage of LAMBDA_STAGES) values[stage.placeholder] = props.functionOf(stage.handler).functionArn;
  for (const stage of BATCH_STAGES) values[stage.placeholder] = props.jobDefinitionOf(stage.job).jobDefinitionArn;
  const missing = PLACEHOLDERS.filter((name) => values[name] === undefined);
  if (missing.length) {
    throw new DeployError(`no deployed resource for placeholder(s) ${missing.join(', ')}; wire each of PLACEHOLDERS in cdk/constructs/workflow.ts`, {
      code: 'WIRING_INCOMPLETE',
      context: { missing },
    });
  }
  return values;
}

export class Workflow extends Construct {
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: WorkflowProps) {
    super(scope, id);
    const definition = buildDefinition();
    const substitutions = placeholderValues(props);
    const unknown = placeholdersIn(definition).filter((name) => substitutions[name] === undefined);
    if (unknown.length) {
      throw new DeployError(`the definition uses placeholder(s) ${unknown.join(', ')} that PLACEHOLDERS does not list`, {
        code: 'WIRING_INCOMPLETE',
        context: { unknown },
      });
    }

    // Step Functions log groups under /aws/vendedlogs/ keep the CloudWatch Logs resource policy
    // small. The group is retained (execution logs outlive the stack), so its name carries the
    // stack instance's UUID: the next deploy after a destroy or a failed first deploy creates a new one.
    this.logGroup = new LogGroup(this, 'ExecutionLogs', {
      logGroupName: perStackInstanceName(this, { prefix: '/aws/vendedlogs/states/', purpose: 'workflow' }),
      retention: RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromString(JSON.stringify(definition)),
      definitionSubstitutions: substitutions,
      logs: { destination: this.logGroup, level: LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
      comment: definition.Comment,
    });

    const stack = Stack.of(this);
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({
        sid: 'InvokeStageFunctions',
        actions: ['lambda:InvokeFunction'],
        resources: LAMBDA_STAGES.map((stage) => props.functionOf(stage.handler).functionArn),
      }),
    );
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({
        sid: 'SubmitJobs',
        actions: ['batch:SubmitJob'],
        resources: [...BATCH_STAGES.map((stage) => props.jobDefinitionOf(stage.job).jobDefinitionArn), props.queue.jobQueueArn],
      }),
    );
    // Batch job ARNs are job/<uuid>: no name to narrow on, so the account's jobs in this region.
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({
        sid: 'StopJobs',
        actions: ['batch:TerminateJob'],
        resources: [stack.formatArn({ service: 'batch', resource: 'job', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
      }),
    );
    // DescribeJobs has no resource-level permissions.
    this.stateMachine.addToRolePolicy(new PolicyStatement({ sid: 'WatchJobs', actions: ['batch:DescribeJobs'], resources: ['*'] }));
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({
        sid: 'BatchSyncRule',
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [stack.formatArn({ service: 'events', resource: 'rule', resourceName: BATCH_SYNC_RULE, arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
      }),
    );
  }
}
