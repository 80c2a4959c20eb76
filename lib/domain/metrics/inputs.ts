import { MetricsError } from '#lib/domain/metrics/errors.ts';

/** Predictions, scores or labels: typed arrays straight from a batch, or plain arrays from JSON. */
export type NumericArray = Float32Array | Float64Array | readonly number[];
/** 1 (or true) = the row is labelled for this task and counts; 0 (or false) = it is skipped. */
export type MaskArray = Uint8Array | readonly number[] | readonly boolean[];

/**
 * The indices of the rows that count, after checking that every array has one entry per row.
 * `metric` names the caller in messages so a failure says which metric rejected the input.
 */
export function labelledRows(metric: string, labels: NumericArray, mask: MaskArray | undefined): number[] {
  const n = labels.length;
  if (mask !== undefined && mask.length !== n) {
    throw new MetricsError(`${metric}: mask has ${mask.length} entries but labels have ${n}; pass one mask entry per row`, {
      code: 'METRIC_INPUT_INVALID',
      context: { metric, maskLength: mask.length, labelCount: n },
    });
  }
  const rows: number[] = [];
  for (let i = 0; i < n; i++) {
    if (mask === undefined || mask[i]) rows.push(i);
  }
  if (rows.length === 0) {
    throw new MetricsError(`${metric}: no labelled rows (the mask is all 0 or there are no rows); evaluate on a split with labels for this task`, {
      code: 'METRIC_NO_LABELLED_ROWS',
      context: { metric, rowCount: n },
    });
  }
  return rows;
}

export function expectLength(metric: string, what: string, values: NumericArray, expected: number, hint: string): void {
  if (values.length !== expected) {
    throw new MetricsError(`${metric}: ${what} has ${values.length} entries, expected ${expected} (${hint})`, {
      code: 'METRIC_INPUT_INVALID',
      context: { metric, what, length: values.length, expected },
    });
  }
}

export function expectFinite(metric: string, what: string, value: number, row: number): void {
  if (!Number.isFinite(value)) {
    throw new MetricsError(`${metric}: ${what} at row ${row} is ${value}; metrics need finite numbers (check the model output for NaN/Infinity)`, {
      code: 'METRIC_INPUT_INVALID',
      context: { metric, what, row, value },
    });
  }
}

export function binaryLabel(metric: string, labels: NumericArray, row: number): 0 | 1 {
  const y = labels[row];
  if (y === 0 || y === 1) return y;
  throw new MetricsError(`${metric}: label ${y} at row ${row} is not 0 or 1; binary tasks need 0/1 labels (mask unlabelled rows out)`, {
    code: 'METRIC_INPUT_INVALID',
    context: { metric, row, label: y },
  });
}

export function classLabel(metric: string, labels: NumericArray, row: number, numClasses: number): number {
  const y = labels[row];
  if (Number.isInteger(y) && y >= 0 && y < numClasses) return y;
  throw new MetricsError(`${metric}: label ${y} at row ${row} is not a class index in 0..${numClasses - 1}; multiclass labels are integer class indices`, {
    code: 'METRIC_INPUT_INVALID',
    context: { metric, row, label: y, numClasses },
  });
}

export function expectNumClasses(metric: string, numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new MetricsError(`${metric}: numClasses ${numClasses} is not an integer ≥ 2; pass the task's class count`, {
      code: 'METRIC_INPUT_INVALID',
      context: { metric, numClasses },
    });
  }
}
