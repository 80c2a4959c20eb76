/**
 * What an operator watches: a dashboard (executions, stage durations, serving latency and errors,
 * online reward and traffic share per model version) and alarms on the failures that need a person.
 *
 * Custom metrics the serving code emits (Powertools Metrics / EMF) in namespace `agentflow`,
 * dimensions `project` and `version`:
 *   OnlineReward     the reward of one feedback event (Average = mean online reward)
 *   RoutedRequests   1 per inference routed to a version (Sum = traffic)
 *   InputPsi         population stability of the inputs per monitor pass (drift)
 * and `RetrainStarted` (dimension `project`) when the monitor starts a retraining run.
 */
import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Stats,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE } from './functions.ts';

export const CUSTOM_METRICS = {
  onlineReward: 'OnlineReward',
  routedRequests: 'RoutedRequests',
  inputPsi: 'InputPsi',
  retrainStarted: 'RetrainStarted',
  dimensions: ['project', 'version'],
} as const;

export interface ObservabilityProps {
  stateMachine: StateMachine;
  /** Stage functions by workflow state name. */
  stageFunctions: ReadonlyMap<string, IFunction>;
  infer: IFunction;
  feedback: IFunction;
  inferP99AlarmMs: number;
}

const search = (metric: string, statistic: string) =>
  `SEARCH('{${METRICS_NAMESPACE},${CUSTOM_METRICS.dimensions.join(',')}} MetricName="${metric}"', '${statistic}', 300)`;

export class Observability extends Construct {
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];

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
          usingMetrics: { errors: props.infer.metricErrors({ period, statistic: Stats.SUM }), invocations: props.infer.metricInvocations({ period, statistic: Stats.SUM }) },
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

    const stageDurations = [...props.stageFunctions].map(([state, fn]) => fn.metricDuration({ period, statistic: Stats.p(90), label: state }));
    this.dashboard = new Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(7),
      widgets: [
        [
          new TextWidget({ markdown: '# agentflow\nRuns (Step Functions), stage durations (Lambda), serving (infer/feedback), online reward and traffic share per model version.', width: 24, height: 2 }),
        ],
        [
          new GraphWidget({
            title: 'Executions',
            left: [sm.metricStarted({ period: Duration.hours(1) }), sm.metricSucceeded({ period: Duration.hours(1) }), sm.metricFailed({ period: Duration.hours(1) }), sm.metricTimedOut({ period: Duration.hours(1) })],
            width: 12,
          }),
          new GraphWidget({ title: 'Stage duration p90 (ms)', left: stageDurations, width: 12 }),
        ],
        [
          new GraphWidget({
            title: 'Infer latency (ms)',
            left: [props.infer.metricDuration({ period, statistic: Stats.p(50), label: 'p50' }), props.infer.metricDuration({ period, statistic: Stats.p(99), label: 'p99' })],
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
            left: [new MathExpression({ expression: search(CUSTOM_METRICS.onlineReward, 'Average'), label: '', period })],
            width: 12,
          }),
          new GraphWidget({
            title: 'Router traffic share by version (%)',
            left: [
              new MathExpression({
                expression: '100 * routed / SUM(routed)',
                usingMetrics: { routed: new MathExpression({ expression: search(CUSTOM_METRICS.routedRequests, 'Sum'), label: '', period }) },
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
            left: [new MathExpression({ expression: search(CUSTOM_METRICS.inputPsi, 'Maximum'), label: '', period: Duration.hours(1) })],
            width: 12,
          }),
          new GraphWidget({
            title: 'Retraining runs started by the monitor',
            left: [
              new MathExpression({
                expression: `SEARCH('{${METRICS_NAMESPACE},project} MetricName="${CUSTOM_METRICS.retrainStarted}"', 'Sum', 3600)`,
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
