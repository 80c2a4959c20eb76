/**
 * What an operator watches: a dashboard (executions, stage durations, serving latency and errors,
 * online reward and traffic share per model version) and alarms on the failures that need a person.
 *
 * The custom metrics it reads are the serving code's own, by the names and dimensions of
 * `SERVE_METRICS` (lib/serve/metrics.ts), so a renamed metric cannot leave a graph or alarm empty.
 *
 * GPU wait: the job queue cancels a job that waited RUNNABLE past `agentflow:maxGpuWaitMinutes`
 * (usually a GPU quota of 0). An EventBridge rule matches Batch's state change for such a job
 * (FAILED, statusReason starting with GPU_WAIT.cancelledStatusPrefix), writes the event to a log
 * group for the record, and its `AWS/Events MatchedEvents` metric drives the GpuWaitExceeded alarm.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Dashboard, GraphWidget, MathExpression, Stats, TextWidget, TreatMissingData, Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { IJobQueue } from 'aws-cdk-lib/aws-batch';
import { Rule, type IRuleTarget } from 'aws-cdk-lib/aws-events';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, ResourcePolicy, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { GPU_WAIT } from '#lib/pipeline/gpuWait.ts';
import { perStackInstanceName } from '../names.ts';
import { METRICS_NAMESPACE, SERVE_METRICS, type MetricDefinition } from '#lib/serve/metrics.ts';

export interface ObservabilityProps {
  stateMachine: StateMachine;
  /** Stage functions by workflow state name. */
  stageFunctions: ReadonlyMap<string, IFunction>;
  infer: IFunction;
  feedback: IFunction;
  inferP99AlarmMs: number;
  /** The GPU job queue and its RUNNABLE time limit, for the GPU wait rule and alarm. */
  gpuQueue: IJobQueue;
  maxGpuWaitMinutes: number;
}

/**
 * The EventBridge pattern of a job the queue cancelled after waiting RUNNABLE too long: Batch
 * moves it to FAILED with GPU_WAIT.cancelledStatusPrefix and the reason in its statusReason.
 */
export function gpuWaitEventPattern(jobQueueArn: string) {
  return {
    source: ['aws.batch'],
    detailType: ['Batch Job State Change'],
    detail: { jobQueue: [jobQueueArn], status: ['FAILED'], statusReason: [{ prefix: GPU_WAIT.cancelledStatusPrefix }] },
  };
}

/** Where the matched events are kept, so the alarm's jobs can be looked up; EventBridge writes only to /aws/events/ groups. */
function logGroupTarget(group: LogGroup): IRuleTarget {
  const stack = Stack.of(group);
  return {
    bind: () => ({
      arn: stack.formatArn({ service: 'logs', resource: 'log-group', resourceName: group.logGroupName, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
    }),
  };
}

/** One series per dimension set the metric is emitted with (per version, or per project). */
const search = (metric: MetricDefinition, statistic: string, periodSeconds: number) =>
  `SEARCH('{${METRICS_NAMESPACE},${metric.dimensions.join(',')}} MetricName="${metric.name}"', '${statistic}', ${periodSeconds})`;

export class Observability extends Construct {
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];
  /** Matches GPU jobs cancelled after waiting RUNNABLE past the limit. */
  readonly gpuWaitRule: Rule;
  readonly gpuWaitEvents: LogGroup;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const period = Duration.minutes(5);
    const sm = props.stateMachine;

    this.alarms.push(
      new Alarm(this, 'ExecutionsFailed', {
        alarmDescription: 'An agentflow run failed; its execution history and the run record name the stage and the error.',
        metric: sm.metricFailed({ period, statistic: Stats.SUM }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'ExecutionsTimedOut', {
        alarmDescription: 'An agentflow run timed out (a GPU job queued or ran past its stage timeout).',
        metric: sm.metricTimedOut({ period, statistic: Stats.SUM }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'InferErrors', {
        alarmDescription: 'More than 1% of inference requests failed in 3 of the last 5 periods.',
        metric: new MathExpression({
          label: 'infer error rate (%)',
          expression: 'IF(invocations > 0, 100 * errors / invocations, 0)',
          usingMetrics: {
            errors: props.infer.metricErrors({ period, statistic: Stats.SUM }),
            invocations: props.infer.metricInvocations({ period, statistic: Stats.SUM }),
          },
          period,
        }),
        threshold: 1,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'InferLatencyP99', {
        alarmDescription: `Inference p99 latency above ${props.inferP99AlarmMs} ms in 3 of the last 5 periods.`,
        metric: props.infer.metricDuration({ period, statistic: Stats.p(99) }),
        threshold: props.inferP99AlarmMs,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
    );

    this.gpuWaitEvents = new LogGroup(this, 'GpuWaitEvents', {
      logGroupName: perStackInstanceName(this, { prefix: '/aws/events/', purpose: 'gpu-wait' }),
      retention: RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // EventBridge writes to a log group only if the group's resource policy lets it (the CDK log
    // group target would add a custom-resource Lambda for this; one policy resource does it).
    new ResourcePolicy(this, 'GpuWaitEventsPolicy', {
      resourcePolicyName: perStackInstanceName(this, { purpose: 'gpu-wait-events' }),
      policyStatements: [
        new PolicyStatement({
          principals: [new ServicePrincipal('events.amazonaws.com'), new ServicePrincipal('delivery.logs.amazonaws.com')],
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [this.gpuWaitEvents.logGroupArn],
        }),
      ],
    });
    this.gpuWaitRule = new Rule(this, 'GpuWaitExceededRule', {
      description: `agentflow: a GPU job waited RUNNABLE over ${props.maxGpuWaitMinutes} min and the job queue cancelled it`,
      eventPattern: gpuWaitEventPattern(props.gpuQueue.jobQueueArn),
      targets: [logGroupTarget(this.gpuWaitEvents)],
    });
    const gpuWaitExceeded = new Metric({
      namespace: 'AWS/Events',
      metricName: 'MatchedEvents',
      dimensionsMap: { RuleName: this.gpuWaitRule.ruleName },
      statistic: Stats.SUM,
      period,
      label: 'GPU jobs cancelled after waiting RUNNABLE',
    });
    this.alarms.push(
      new Alarm(this, 'GpuWaitExceeded', {
        alarmDescription:
          `A GPU job waited RUNNABLE over ${props.maxGpuWaitMinutes} minutes and was cancelled: no GPU instance could start. ` +
          "Usually the account's EC2 quota for G instances (Running On-Demand / All G and VT Spot Instance Requests) is 0: request an increase in Service Quotas, " +
          'or choose instance types you have quota for with the agentflow:gpuInstanceTypes context key. The events are in the log group ' +
          "named by this stack's GpuWaitEvents resource.",
        metric: gpuWaitExceeded,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
    );

    const stageDurations = [...props.stageFunctions].map(([state, fn]) => fn.metricDuration({ period, statistic: Stats.p(90), label: state }));
    this.dashboard = new Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(7),
      widgets: [
        [
          new TextWidget({
            markdown:
              '# agentflow\nRuns (Step Functions), stage durations (Lambda), serving (infer/feedback), online reward and traffic share per model version.',
            width: 24,
            height: 2,
          }),
        ],
        [
          new GraphWidget({
            title: 'Executions',
            left: [
              sm.metricStarted({ period: Duration.hours(1) }),
              sm.metricSucceeded({ period: Duration.hours(1) }),
              sm.metricFailed({ period: Duration.hours(1) }),
              sm.metricTimedOut({ period: Duration.hours(1) }),
            ],
            width: 12,
          }),
          new GraphWidget({ title: 'Stage duration p90 (ms)', left: stageDurations, width: 12 }),
        ],
        [
          new GraphWidget({
            title: `GPU jobs cancelled after ${props.maxGpuWaitMinutes} min RUNNABLE`,
            left: [gpuWaitExceeded],
            leftAnnotations: [{ value: 1, label: 'alarm' }],
            width: 12,
          }),
          new TextWidget({
            markdown:
              `**GPU wait.** Jobs that wait RUNNABLE over ${props.maxGpuWaitMinutes} min are cancelled and their run fails. ` +
              'Request the G-instance quota (Service Quotas → EC2), or set `agentflow:gpuInstanceTypes` to types you have quota for; ' +
              '`agentflow:maxGpuWaitMinutes` sets the limit.',
            width: 12,
            height: 6,
          }),
        ],
        [
          new GraphWidget({
            title: 'Infer latency (ms)',
            left: [
              props.infer.metricDuration({ period, statistic: Stats.p(50), label: 'p50' }),
              props.infer.metricDuration({ period, statistic: Stats.p(99), label: 'p99' }),
            ],
            leftAnnotations: [{ value: props.inferP99AlarmMs, label: 'p99 alarm' }],
            width: 8,
          }),
          new GraphWidget({
            title: 'Serving requests and errors',
            left: [props.infer.metricInvocations({ period, label: 'infer' }), props.feedback.metricInvocations({ period, label: 'feedback' })],
            right: [props.infer.metricErrors({ period, label: 'infer errors' }), props.feedback.metricErrors({ period, label: 'feedback errors' })],
            width: 8,
          }),
          new GraphWidget({
            title: 'Throttles',
            left: [props.infer.metricThrottles({ period, label: 'infer' }), props.feedback.metricThrottles({ period, label: 'feedback' })],
            width: 8,
          }),
        ],
        [
          new GraphWidget({
            title: 'Online reward by version',
            left: [new MathExpression({ expression: search(SERVE_METRICS.onlineReward, 'Average', 300), label: '', period })],
            width: 12,
          }),
          new GraphWidget({
            title: 'Router traffic share by version (%)',
            left: [
              new MathExpression({
                expression: '100 * routed / SUM(routed)',
                usingMetrics: { routed: new MathExpression({ expression: search(SERVE_METRICS.routedRequests, 'Sum', 300), label: '', period }) },
                label: '',
                period,
              }),
            ],
            leftYAxis: { min: 0, max: 100 },
            width: 12,
          }),
        ],
        [
          new GraphWidget({
            title: 'Input drift (PSI) by version',
            left: [new MathExpression({ expression: search(SERVE_METRICS.inputPsi, 'Maximum', 300), label: '', period: Duration.hours(1) })],
            width: 12,
          }),
          new GraphWidget({
            title: 'Retraining runs started by the monitor',
            left: [
              new MathExpression({
                expression: search(SERVE_METRICS.retrainStarted, 'Sum', 3600),
                label: '',
                period: Duration.hours(1),
              }),
            ],
            width: 12,
          }),
        ],
      ],
    });
  }
}
