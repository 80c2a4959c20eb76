import { FLOAT_DTYPES, type Graph, type Value } from './builder.ts';
import { GraphError } from './errors.ts';
import { formatShape, sameShape } from './shape.ts';

/**
 * Masked task losses. Every loss takes a row mask `[batch]` (1 = labelled, 0 = no label for this
 * task; float or bool) and returns the mean over labelled rows as a scalar; a batch with no
 * labelled rows gives 0, not NaN (the label count is clamped to ≥ 1). Labels of unlabelled rows
 * are replaced by 0 inside the graph, so a NaN placeholder there cannot leak into gradients.
 */

/** Σ(perRow·mask) / max(Σmask, 1) for `perRow` and `mask` of shape `[batch]`. */
export function maskedMean(g: Graph, perRow: Value, mask: Value): Value {
  const m = rowMask(g, 'maskedMean', perRow, mask);
  const total = g.reduceSum(g.mul(perRow, m), { axes: [0] });
  const count = g.max(g.reduceSum(m, { axes: [0] }), 1);
  return g.div(total, count);
}

/** Binary cross-entropy from logits, stable form max(x,0) − x·y + log(1 + e^−|x|). */
export function binaryCrossEntropyWithLogits(g: Graph, logits: Value, labels: Value, mask: Value): Value {
  const y = cleanLabels(g, 'binaryCrossEntropyWithLogits', logits, labels, mask);
  const x = logits;
  const softplusTail = g.log(g.add(g.exp(g.neg(g.abs(x))), 1));
  const perElement = g.add(g.sub(g.max(x, 0), g.mul(x, y)), softplusTail);
  return maskedMean(g, perRow(g, perElement), mask);
}

/**
 * Softmax cross-entropy over the last axis of `logits [batch, classes]`; `target` is either
 * class indices `[batch]` (int64/int32; any out-of-range index, e.g. −1 for "no label", gives
 * a zero row) or class probabilities / one-hot rows with the logits' shape.
 */
export function softmaxCrossEntropy(g: Graph, logits: Value, target: Value, mask: Value): Value {
  if (logits.rank !== 2 || typeof logits.shape[1] !== 'number') {
    throw lossError('softmaxCrossEntropy', `logits ${logits} must be [batch, classes] with a static class count`);
  }
  const classes = logits.shape[1];
  let probabilities: Value;
  if (target.dtype === 'int64' || target.dtype === 'int32') {
    if (target.rank !== 1 || target.shape[0] !== logits.shape[0]) {
      throw lossError('softmaxCrossEntropy', `class indices ${target} must be [${String(logits.shape[0])}] to match logits ${logits}`);
    }
    const indices = target.dtype === 'int64' ? target : g.cast(target, 'int64');
    const arange = g.constant(
      BigInt64Array.from({ length: classes }, (_, i) => BigInt(i)),
      { dtype: 'int64' },
    );
    probabilities = g.cast(g.equal(g.unsqueeze(indices, { axes: [1] }), arange), logits.dtype);
    rowMask(g, 'softmaxCrossEntropy', logits, mask);
  } else {
    probabilities = cleanLabels(g, 'softmaxCrossEntropy', logits, target, mask);
  }
  const logp = g.logSoftmax(logits, { axis: -1 });
  const perRowLoss = g.neg(g.reduceSum(g.mul(probabilities, logp), { axes: [1] }));
  return maskedMean(g, perRowLoss, mask);
}

/** Mean squared error. */
export function mse(g: Graph, predictions: Value, targets: Value, mask: Value): Value {
  const y = cleanLabels(g, 'mse', predictions, targets, mask);
  const d = g.sub(predictions, y);
  return maskedMean(g, perRow(g, g.mul(d, d)), mask);
}

/** Huber loss: ½d² for |d| < δ, δ(|d| − ½δ) beyond. */
export function huber(g: Graph, predictions: Value, targets: Value, mask: Value, options: { delta?: number } = {}): Value {
  const delta = options.delta ?? 1;
  if (!(delta > 0)) throw lossError('huber', `delta ${delta} must be > 0`);
  const y = cleanLabels(g, 'huber', predictions, targets, mask);
  const d = g.sub(predictions, y);
  const absD = g.abs(d);
  const quadratic = g.mul(g.mul(d, d), 0.5);
  const linear = g.mul(g.sub(absD, 0.5 * delta), delta);
  return maskedMean(g, perRow(g, g.where(g.less(absD, delta), quadratic, linear)), mask);
}

/** Mean over every axis but the first: `[batch, …] → [batch]`. */
function perRow(g: Graph, perElement: Value): Value {
  if (perElement.rank === 1) return perElement;
  const trailing = perElement.shape.slice(1).map((_, i) => i + 1);
  if (perElement.shape.slice(1).every((d) => d === 1)) return g.squeeze(perElement, { axes: trailing });
  return g.reduceMean(perElement, { axes: trailing });
}

function rowMask(g: Graph, loss: string, like: Value, mask: Value): Value {
  if (mask.rank !== 1 || mask.shape[0] !== like.shape[0]) {
    throw lossError(loss, `mask ${mask} must be a row mask [${String(like.shape[0])}] matching ${like}`);
  }
  return mask.dtype === 'bool' ? g.cast(mask, like.dtype) : mask.dtype === like.dtype ? mask : g.cast(mask, like.dtype);
}

function cleanLabels(g: Graph, loss: string, predictions: Value, labels: Value, mask: Value): Value {
  if (!FLOAT_DTYPES.has(predictions.dtype)) throw lossError(loss, `predictions ${predictions} must be float`);
  if (!sameShape(predictions.shape, labels.shape)) {
    // Broadcasting [batch] against [batch, 1] would silently build a [batch, batch] loss.
    throw lossError(
      loss,
      `labels ${formatShape(labels.shape)} do not match predictions ${formatShape(predictions.shape)}; reshape the labels (e.g. g.unsqueeze(labels, { axes: [1] }))`,
    );
  }
  const m = rowMask(g, loss, predictions, mask);
  const y = labels.dtype === predictions.dtype ? labels : g.cast(labels, predictions.dtype);
  const labelled = g.greater(labels.rank === 1 ? m : g.reshape(m, [...m.shape, ...labels.shape.slice(1).map(() => 1)]), 0);
  return g.where(labelled, y, 0);
}

function lossError(loss: string, detail: string): GraphError {
  return new GraphError(`${loss}: ${detail}`, { code: 'GRAPH_SHAPE', context: { loss } });
}
