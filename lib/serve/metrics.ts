/**
 * CloudWatch Embedded Metric Format: one JSON line on stdout per event, which Lambda ships to
 * CloudWatch Logs and CloudWatch turns into metrics, with no API call on the request path.
 * Locally the lines are just logs.
 *
 * Names (namespace `agentflow`, dimensions `project`, `version`):
 * - `RoutedRequests` (Count) and `RoutedRecords` (Count): one infer request routed to a version;
 * - `InferLatencyMs` (Milliseconds): request received → response ready, DynamoDB writes included;
 * - `OnlineReward` (None): one feedback reward;
 * - `MonitorOnlineReward` (None), `MonitorRewardCount` (Count), `InputPsi` (None): per monitor pass;
 * - `RetrainStarted` (Count, dimension `project`).
 */
export const METRICS_NAMESPACE = 'agentflow';

export type MetricUnit = 'Count' | 'Milliseconds' | 'None';

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

function routedMetrics(records: number, latencyMs: number): MetricValue[] {
  return [
    { name: 'RoutedRequests', unit: 'Count', value: 1 },
    { name: 'RoutedRecords', unit: 'Count', value: records },
    { name: 'InferLatencyMs', unit: 'Milliseconds', value: latencyMs },
  ];
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

  readonly #routedParts = new Map<string, [string, string]>();
  /** The last (project, version) routed: most requests of a process go to the one it served before. */
  #lastRouted: { project: string; version: number; parts: [string, string] } = { project: '', version: 0, parts: ['', ''] };

  /**
   * One infer request's EMF line. It is on every request's path, so the line is spliced from two
   * fixed parts per (project, version) around the timestamp and the values, instead of building
   * and stringifying the record each time (the same JSON as `emit` writes; a test holds them equal).
   */
  routed(project: string, version: number, records: number, latencyMs: number): void {
    const last = this.#lastRouted;
    const parts = last.project === project && last.version === version ? last.parts : this.#partsOf(project, version);
    // Microseconds are plenty, and a short number formats faster than a full double.
    this.#sink(`${parts[0]}${this.#clock()}${parts[1]}"RoutedRequests":1,"RoutedRecords":${records},"InferLatencyMs":${Math.round(latencyMs * 1000) / 1000}}`);
  }

  #partsOf(project: string, version: number): [string, string] {
    const key = `${project}\u0000${version}`;
    let parts = this.#routedParts.get(key);
    if (!parts) {
      const marker = -1.5;
      const line = JSON.stringify(emfRecord({ dimensions: { project, version: String(version) }, metrics: routedMetrics(0, 0), timestampMs: marker }));
      const [head, tail] = line.split(`"Timestamp":${marker}`);
      const valuesAt = tail.lastIndexOf('"RoutedRequests":');
      parts = [`${head}"Timestamp":`, tail.slice(0, valuesAt)];
      if (this.#routedParts.size > 1000) this.#routedParts.clear();
      this.#routedParts.set(key, parts);
    }
    this.#lastRouted = { project, version, parts };
    return parts;
  }

  /** Input values a request's records lacked (or held a category the model does not know), encoded as training encoded missing ones. */
  imputed(project: string, version: number, values: number): void {
    this.emit({ project, version: String(version) }, [{ name: 'ImputedInputs', unit: 'Count', value: values }]);
  }

  reward(project: string, version: number, reward: number): void {
    this.emit({ project, version: String(version) }, [{ name: 'OnlineReward', unit: 'None', value: reward }]);
  }
}
