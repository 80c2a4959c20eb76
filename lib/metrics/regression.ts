import { expectFinite, expectLength, labelledRows, type MaskArray, type NumericArray } from '#lib/metrics/inputs.ts';

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
