import { AgentflowError } from '#lib/domain/errors/index.ts';

export type MetricsErrorCode =
  /** Arrays of mismatched length, labels outside the task's range, NaN scores. */
  | 'METRIC_INPUT_INVALID'
  /** The mask leaves no labelled row, so there is nothing to average over. */
  | 'METRIC_NO_LABELLED_ROWS'
  /** The metric is mathematically undefined on this data (AUC with a single class). */
  | 'METRIC_UNDEFINED';

export class MetricsError extends AgentflowError {
  constructor(message: string, options: { code: MetricsErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'MetricsError';
  }
}
