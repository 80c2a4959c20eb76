/**
 * CloudWatch Embedded Metric Format: one JSON line on stdout per event, which Lambda ships to
 * CloudWatch Logs and CloudWatch turns into metrics, with no API call on the request path.
 * Locally the lines are just logs. The lines are written here, not by Powertools Metrics: one
 * small helper (`emfRecord`) is all the serving functions need.
 *
 * Every metric is named once, in `SERVE_METRICS`; the CDK alarms and dashboard
 * (cdk/constructs/observability.ts) read the same table, and a test holds every metric they read
 * to one the serving code emits.
 */
export const METRICS_NAMESPACE = 'agentflow';

export type MetricUnit = 'Count' | 'Milliseconds' | 'None';

/** A metric's name and unit, and the dimensions it is emitted with (CloudWatch tells metrics apart by the set). */
export interface MetricDefinition {
  name: string;
  unit: MetricUnit;
  dimensions: readonly string[];
}

const PER_VERSION = ['project', 'version'] as const;

/** The custom metrics of the serving functions and the monitor, in namespace `METRICS_NAMESPACE`. */
export const SERVE_METRICS = {
  /** 1 per infer request routed to a version (Sum = traffic). */
  routedRequests: { name: 'RoutedRequests', unit: 'Count', dimensions: PER_VERSION },
  /** The records of one routed request. */
  routedRecords: { name: 'RoutedRecords', unit: 'Count', dimensions: PER_VERSION },
  /** Request received → response ready. */
  inferLatencyMs: { name: 'InferLatencyMs', unit: 'Milliseconds', dimensions: PER_VERSION },
  /** Input values a request's records lacked (or held a category the model does not know), encoded as training encoded missing ones. */
  imputedInputs: { name: 'ImputedInputs', unit: 'Count', dimensions: PER_VERSION },
  /** Served records whose raw inputs were not kept for feedback (`datasets.feedback`): too large for one item, or the write failed. */
  unloggedInputs: { name: 'UnloggedInputs', unit: 'Count', dimensions: PER_VERSION },
  /** The reward of one feedback event (Average = mean online reward). */
  onlineReward: { name: 'OnlineReward', unit: 'None', dimensions: PER_VERSION },
  /** Per monitor pass: the mean online reward over its window, when there was feedback. */
  monitorOnlineReward: { name: 'MonitorOnlineReward', unit: 'None', dimensions: PER_VERSION },
  /** Per monitor pass: the feedback events in its window. */
  monitorRewardCount: { name: 'MonitorRewardCount', unit: 'Count', dimensions: PER_VERSION },
  /** Per monitor pass: the population stability of the inputs (drift), when inputs were sampled. */
  inputPsi: { name: 'InputPsi', unit: 'None', dimensions: PER_VERSION },
  /** 1 when the monitor starts a retraining run. */
  retrainStarted: { name: 'RetrainStarted', unit: 'Count', dimensions: ['project'] },
} as const satisfies Record<string, MetricDefinition>;

export interface MetricValue {
  name: string;
  unit: MetricUnit;
  value: number;
}

/** Where EMF lines go; default stdout. */
export type MetricsSink = (line: string) => void;

export const stdoutSink: MetricsSink = (line) => {
  process.stdout.write(`${line}\n`);
};

/** One EMF record: the metrics, their dimensions as properties, and the `_aws` directive. */
export function emfRecord(options: {
  dimensions: Readonly<Record<string, string>>;
  metrics: readonly MetricValue[];
  timestampMs: number;
  namespace?: string;
  properties?: Readonly<Record<string, unknown>>;
}): Record<string, unknown> {
  const record: Record<string, unknown> = {
    _aws: {
      Timestamp: options.timestampMs,
      CloudWatchMetrics: [
        {
          Namespace: options.namespace ?? METRICS_NAMESPACE,
          Dimensions: [Object.keys(options.dimensions)],
          Metrics: options.metrics.map((metric) => ({ Name: metric.name, Unit: metric.unit })),
        },
      ],
    },
    ...options.properties,
    ...options.dimensions,
  };
  for (const metric of options.metrics) record[metric.name] = metric.value;
  return record;
}

/** A value of one of `SERVE_METRICS`. */
function valueOf(metric: MetricDefinition, value: number): MetricValue {
  return { name: metric.name, unit: metric.unit, value };
}

/** The monitor's findings for one version in one pass. */
export interface MonitorPassValues {
  rewardCount: number;
  /** null when the window had no feedback. */
  meanReward: number | null;
  /** Absent when no inputs were sampled. */
  maxPsi?: number;
}

export class ServeMetrics {
  readonly #sink: MetricsSink;
  readonly #clock: () => number;

  constructor(options: { sink?: MetricsSink; clock?: () => number } = {}) {
    this.#sink = options.sink ?? stdoutSink;
    this.#clock = options.clock ?? Date.now;
  }

  emit(dimensions: Readonly<Record<string, string>>, metrics: readonly MetricValue[], properties?: Readonly<Record<string, unknown>>): void {
    this.#sink(JSON.stringify(emfRecord({ dimensions, metrics, timestampMs: this.#clock(), ...(properties ? { properties } : {}) })));
  }

  /** One infer request routed to a version. */
  routed(project: string, version: number, records: number, latencyMs: number): void {
    this.emit({ project, version: String(version) }, [
      valueOf(SERVE_METRICS.routedRequests, 1),
      valueOf(SERVE_METRICS.routedRecords, records),
      // Microseconds are plenty for a latency; the rest of a double is noise in the logs.
      valueOf(SERVE_METRICS.inferLatencyMs, Math.round(latencyMs * 1000) / 1000),
    ]);
  }

  imputed(project: string, version: number, values: number): void {
    this.emit({ project, version: String(version) }, [valueOf(SERVE_METRICS.imputedInputs, values)]);
  }

  unlogged(project: string, version: number, records: number): void {
    this.emit({ project, version: String(version) }, [valueOf(SERVE_METRICS.unloggedInputs, records)]);
  }

  reward(project: string, version: number, reward: number): void {
    this.emit({ project, version: String(version) }, [valueOf(SERVE_METRICS.onlineReward, reward)]);
  }

  monitorPass(project: string, version: number, values: MonitorPassValues): void {
    this.emit({ project, version: String(version) }, [
      valueOf(SERVE_METRICS.monitorRewardCount, values.rewardCount),
      ...(values.meanReward === null ? [] : [valueOf(SERVE_METRICS.monitorOnlineReward, values.meanReward)]),
      ...(values.maxPsi === undefined ? [] : [valueOf(SERVE_METRICS.inputPsi, values.maxPsi)]),
    ]);
  }

  retrainStarted(project: string): void {
    this.emit({ project }, [valueOf(SERVE_METRICS.retrainStarted, 1)]);
  }
}
