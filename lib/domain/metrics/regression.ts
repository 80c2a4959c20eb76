import { expectFinite, expectLength, labelledRows, type MaskArray, type NumericArray } from '#lib/domain/metrics/inputs.ts';

function residuals(metric: string, predictions: NumericArray, labels: NumericArray, mask: MaskArray | undefined): Float64Array {
  expectLength(metric, 'predictions', predictions, labels.length, 'one value per row');
  const rows = labelledRows(metric, labels, mask);
  const out = new Float64Array(rows.length);
  rows.forEach((i, k) => {
    expectFinite(metric, 'prediction', predictions[i], i);
    expectFinite(metric, 'label', labels[i], i);
    out[k] = predictions[i] - labels[i];
  });
  return out;
}

/** Root mean squared error over labelled rows. */
export function rmse(predictions: NumericArray, labels: NumericArray, mask?: MaskArray): number {
  const r = residuals('rmse', predictions, labels, mask);
  let sum = 0;
  for (const e of r) sum += e * e;
  return Math.sqrt(sum / r.length);
}

/** Mean absolute error over labelled rows. */
export function mae(predictions: NumericArray, labels: NumericArray, mask?: MaskArray): number {
  const r = residuals('mae', predictions, labels, mask);
  let sum = 0;
  for (const e of r) sum += Math.abs(e);
  return sum / r.length;
}

/**
 * The errors of the best constant predictions, as references that make rmse and mae comparable
 * across tasks with different label units: the standard deviation (rmse of predicting the mean)
 * and the mean absolute deviation from the median (mae of predicting the median).
 */
export function labelSpread(labels: NumericArray, mask?: MaskArray): { labelStd: number; labelMad: number } {
  const rows = labelledRows('labelSpread', labels, mask);
  const values = Float64Array.from(rows, (i) => {
    expectFinite('labelSpread', 'label', labels[i], i);
    return labels[i];
  });
  let mean = 0;
  for (const v of values) mean += v / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  const sorted = values.slice().sort();
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  let deviations = 0;
  for (const v of values) deviations += Math.abs(v - median);
  return { labelStd: Math.sqrt(squares / values.length), labelMad: deviations / values.length };
}
