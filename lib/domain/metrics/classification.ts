import { MetricsError } from '#lib/domain/metrics/errors.ts';
import {
  binaryLabel,
  classLabel,
  expectFinite,
  expectLength,
  expectNumClasses,
  labelledRows,
  type MaskArray,
  type NumericArray,
} from '#lib/domain/metrics/inputs.ts';

/** Probabilities are clipped to [EPS, 1 − EPS] before the log, as scikit-learn did with `eps=1e-15`. */
export const LOG_LOSS_EPS = 1e-15;

export interface ClassificationOptions {
  mask?: MaskArray;
  /**
   * Absent: a binary task, `predictions` holds one probability of the positive class per row.
   * Present: a multiclass task, `predictions` is row-major rows × numClasses (probabilities for
   * `logLoss`; any scores for `accuracy` and `macroF1`, which only take the argmax).
   */
  numClasses?: number;
}

/**
 * Area under the ROC curve by the rank-sum (Mann–Whitney U) statistic: tied scores share their
 * average rank, which is the same as giving half credit to tied positive/negative pairs.
 *
 * Only one class among the labelled rows makes AUC undefined (0/0). We throw `METRIC_UNDEFINED`
 * rather than return NaN, because a NaN would flow silently into rewards and promotion gates;
 * callers that can tolerate it catch the error by its code.
 */
export function auc(scores: NumericArray, labels: NumericArray, mask?: MaskArray): number {
  const metric = 'auc';
  expectLength(metric, 'scores', scores, labels.length, 'one score per row');
  const rows = labelledRows(metric, labels, mask);
  const n = rows.length;
  const s = new Float64Array(n);
  const y = new Uint8Array(n);
  let positives = 0;
  for (let k = 0; k < n; k++) {
    const i = rows[k];
    expectFinite(metric, 'score', scores[i], i);
    s[k] = scores[i];
    y[k] = binaryLabel(metric, labels, i);
    positives += y[k];
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) {
    throw new MetricsError(
      `auc: undefined because all ${n} labelled rows are ${positives === 0 ? 'negative (0)' : 'positive (1)'}; ` +
        'evaluate on a split that holds both classes, or catch code METRIC_UNDEFINED to skip this task',
      { code: 'METRIC_UNDEFINED', context: { metric, rows: n, positives } },
    );
  }
  const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => s[a] - s[b]);
  let positiveRankSum = 0;
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && s[order[end]] === s[order[start]]) end++;
    // Ranks are 1-based; the tie group [start, end) shares the mean of ranks start+1 … end.
    const averageRank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) if (y[order[k]] === 1) positiveRankSum += averageRank;
    start = end;
  }
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Index of the largest score in row `row` of a row-major rows × numClasses array (first wins ties, like numpy). */
function argmaxRow(metric: string, predictions: NumericArray, row: number, numClasses: number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let c = 0; c < numClasses; c++) {
    const v = predictions[row * numClasses + c];
    expectFinite(metric, 'prediction', v, row);
    if (v > bestValue) {
      bestValue = v;
      best = c;
    }
  }
  return best;
}

function expectMulticlassShape(metric: string, predictions: NumericArray, labels: NumericArray, numClasses: number): void {
  expectNumClasses(metric, numClasses);
  expectLength(metric, 'predictions', predictions, labels.length * numClasses, `rows × numClasses, row-major, for ${labels.length} rows`);
}

/**
 * Fraction of labelled rows predicted correctly. Binary: the positive class is predicted when
 * p > 0.5 (p = 0.5 counts as negative, as a logistic model's decision function > 0 would).
 * Multiclass: the argmax of each row, first class on ties.
 */
export function accuracy(predictions: NumericArray, labels: NumericArray, options: ClassificationOptions = {}): number {
  const metric = 'accuracy';
  const { mask, numClasses } = options;
  const rows = labelledRows(metric, labels, mask);
  let correct = 0;
  if (numClasses === undefined) {
    expectLength(metric, 'predictions', predictions, labels.length, 'one probability per row for a binary task');
    for (const i of rows) {
      expectFinite(metric, 'prediction', predictions[i], i);
      const predicted = predictions[i] > 0.5 ? 1 : 0;
      if (predicted === binaryLabel(metric, labels, i)) correct++;
    }
  } else {
    expectMulticlassShape(metric, predictions, labels, numClasses);
    for (const i of rows) {
      if (argmaxRow(metric, predictions, i, numClasses) === classLabel(metric, labels, i, numClasses)) correct++;
    }
  }
  return correct / rows.length;
}

/**
 * Unweighted mean of per-class F1 over the classes that occur among the labelled rows, either as
 * a true label or as a prediction (argmax). This is scikit-learn's `f1_score(average='macro')`
 * with its default `labels=None` and `zero_division='warn'` (which scores 0): a class with support
 * but never predicted, or predicted but without support, has F1 = 0 and pulls the mean down; a
 * class with neither support nor predictions is left out, since `numClasses` alone says nothing
 * about whether the split could contain it.
 */
export function macroF1(predictions: NumericArray, labels: NumericArray, options: ClassificationOptions & { numClasses: number }): number {
  const metric = 'macroF1';
  const { mask, numClasses } = options;
  expectMulticlassShape(metric, predictions, labels, numClasses);
  const rows = labelledRows(metric, labels, mask);
  const truePositives = new Float64Array(numClasses);
  const support = new Float64Array(numClasses);
  const predicted = new Float64Array(numClasses);
  for (const i of rows) {
    const y = classLabel(metric, labels, i, numClasses);
    const p = argmaxRow(metric, predictions, i, numClasses);
    support[y]++;
    predicted[p]++;
    if (p === y) truePositives[y]++;
  }
  let sum = 0;
  let present = 0;
  for (let c = 0; c < numClasses; c++) {
    if (support[c] === 0 && predicted[c] === 0) continue;
    present++;
    // F1 = 2TP / (2TP + FP + FN) = 2TP / (support + predicted); the denominator is > 0 here.
    sum += (2 * truePositives[c]) / (support[c] + predicted[c]);
  }
  return sum / present;
}

function clipProbability(p: number): number {
  return Math.min(Math.max(p, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS);
}

/**
 * Mean negative log-likelihood over labelled rows, probabilities clipped to [1e-15, 1 − 1e-15].
 * Multiclass rows are used as given (not renormalized): pass softmax outputs.
 */
export function logLoss(predictions: NumericArray, labels: NumericArray, options: ClassificationOptions = {}): number {
  const metric = 'logLoss';
  const { mask, numClasses } = options;
  const rows = labelledRows(metric, labels, mask);
  let total = 0;
  if (numClasses === undefined) {
    expectLength(metric, 'predictions', predictions, labels.length, 'one probability per row for a binary task');
    for (const i of rows) {
      expectFinite(metric, 'prediction', predictions[i], i);
      const p = clipProbability(predictions[i]);
      total -= binaryLabel(metric, labels, i) === 1 ? Math.log(p) : Math.log(1 - p);
    }
  } else {
    expectMulticlassShape(metric, predictions, labels, numClasses);
    for (const i of rows) {
      const y = classLabel(metric, labels, i, numClasses);
      const p = predictions[i * numClasses + y];
      expectFinite(metric, 'prediction', p, i);
      total -= Math.log(clipProbability(p));
    }
  }
  return total / rows.length;
}
