import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  accuracy,
  auc,
  evaluateTask,
  labelSpread,
  logLoss,
  macroF1,
  mae,
  METRICS_BY_TYPE,
  MetricsError,
  rmse,
  type TaskType,
} from '#lib/domain/metrics/index.ts';

interface FixtureCase {
  name: string;
  type: TaskType;
  numClasses?: number;
  predictions: number[];
  labels: number[];
  mask: number[] | null;
  expected: Record<string, number>;
}

// Produced by test/fixtures/metrics/make_cases.py, which computes each metric a different way
// (pairwise AUC, F1 through precision/recall) in plain Python.
const fixture = JSON.parse(readFileSync(new URL('./fixtures/metrics/cases.json', import.meta.url), 'utf8')) as { cases: FixtureCase[] };

describe('metrics against the independent Python reference', () => {
  it('covers every task type with masks, ties and absent classes', () => {
    const types = new Set(fixture.cases.map((c) => c.type));
    expect([...types].sort()).toEqual(['binary', 'multiclass', 'regression']);
    expect(fixture.cases.filter((c) => c.mask !== null).length).toBeGreaterThanOrEqual(4);
  });

  it.each(fixture.cases)('$name: evaluateTask on Float32Array inputs matches to 1e-9', (c) => {
    const result = evaluateTask({
      type: c.type,
      numClasses: c.numClasses,
      predictions: Float32Array.from(c.predictions),
      labels: Float32Array.from(c.labels),
      mask: c.mask === null ? undefined : Uint8Array.from(c.mask),
    });
    expect(Object.keys(result).sort()).toEqual([...METRICS_BY_TYPE[c.type]].sort());
    for (const [metric, expected] of Object.entries(c.expected)) {
      expect(result[metric as keyof typeof result], metric).toBeCloseTo(expected, 9);
    }
  });

  it.each(fixture.cases)('$name: single metrics on plain arrays match as well', (c) => {
    const mask = c.mask ?? undefined;
    const { predictions: p, labels: y, numClasses } = c;
    const actual: Record<string, number> =
      c.type === 'binary'
        ? { auc: auc(p, y, mask), accuracy: accuracy(p, y, { mask }), logLoss: logLoss(p, y, { mask }) }
        : c.type === 'multiclass'
          ? {
              accuracy: accuracy(p, y, { mask, numClasses }),
              macroF1: macroF1(p, y, { mask, numClasses: numClasses! }),
              logLoss: logLoss(p, y, { mask, numClasses }),
            }
          : { rmse: rmse(p, y, mask), mae: mae(p, y, mask) };
    for (const [metric, expected] of Object.entries(c.expected)) {
      expect(actual[metric], metric).toBeCloseTo(expected, 9);
    }
  });
});

describe('metric conventions', () => {
  it('gives tied positive/negative pairs half credit in AUC', () => {
    expect(auc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1])).toBe(0.875);
  });

  it('ignores masked rows entirely, whatever their labels hold', () => {
    const scores = [0.9, 0.1, 0.8, 0.7];
    expect(auc(scores, [1, 0, 0, 7], [1, 1, 0, 0])).toBe(1);
    expect(rmse([1, 2, 100], [1, 2, 0], [true, true, false])).toBe(0);
  });

  it('predicts the positive class only above 0.5', () => {
    expect(accuracy([0.5, 0.5000001], [0, 1])).toBe(1);
  });

  it('excludes from macro-F1 a class with neither support nor predictions but scores a missed class as 0', () => {
    // 3 classes declared; class 2 never appears. Class 1 is present but never predicted.
    const predictions = [0.9, 0.1, 0, 0.8, 0.2, 0, 0.7, 0.3, 0];
    expect(macroF1(predictions, [0, 0, 1], { numClasses: 3 })).toBeCloseTo((0.8 + 0) / 2, 12);
  });

  it('clips probabilities so a confident mistake costs -log(1e-15), not Infinity', () => {
    expect(logLoss([0], [1])).toBeCloseTo(-Math.log(1e-15), 9);
    expect(logLoss([1, 0, 0], [1], { numClasses: 3 })).toBeCloseTo(-Math.log(1e-15), 9);
  });
});

describe('metric errors', () => {
  function errorOf(fn: () => unknown): MetricsError {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(MetricsError);
      return error as MetricsError;
    }
    throw new Error('expected a MetricsError');
  }

  it('refuses AUC when the labelled rows hold a single class', () => {
    const error = errorOf(() => auc([0.1, 0.9, 0.4], [1, 1, 0], [1, 1, 0]));
    expect(error.code).toBe('METRIC_UNDEFINED');
    expect(error.message).toMatch(/all 2 labelled rows are positive/);
  });

  it.each([
    ['a mask of the wrong length', () => rmse([1, 2], [1, 2], [1]), 'METRIC_INPUT_INVALID', /mask has 1 entries but labels have 2/],
    ['no labelled rows', () => mae([1, 2], [1, 2], [0, 0]), 'METRIC_NO_LABELLED_ROWS', /no labelled rows/],
    ['a binary label that is not 0/1', () => accuracy([0.2, 0.7], [0, 2]), 'METRIC_INPUT_INVALID', /label 2 at row 1 is not 0 or 1/],
    ['a class index out of range', () => macroF1([1, 0, 0, 1], [0, 3], { numClasses: 2 }), 'METRIC_INPUT_INVALID', /label 3 at row 1/],
    ['a NaN score', () => auc([0.1, Number.NaN], [0, 1]), 'METRIC_INPUT_INVALID', /score at row 1 is NaN/],
    [
      'multiclass predictions of the wrong shape',
      () => logLoss([0.5, 0.5], [0, 1], { numClasses: 2 }),
      'METRIC_INPUT_INVALID',
      /predictions has 2 entries, expected 4/,
    ],
    [
      'a multiclass task without numClasses',
      () => evaluateTask({ type: 'multiclass', predictions: [1], labels: [0] }),
      'METRIC_INPUT_INVALID',
      /needs numClasses/,
    ],
  ] as const)('rejects %s with a message naming the value', (_, fn, code, message) => {
    const error = errorOf(fn);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });
});

describe('labelSpread', () => {
  it('gives the errors of predicting the mean (std) and the median (mean absolute deviation) over labelled rows', () => {
    const labels = Float32Array.from([1, 2, 3, 10, 99]);
    const mask = Uint8Array.from([1, 1, 1, 1, 0]);

    const spread = labelSpread(labels, mask);

    const mean = 4;
    expect(spread.labelStd).toBeCloseTo(Math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (3 - mean) ** 2 + (10 - mean) ** 2) / 4), 12);
    expect(spread.labelMad).toBeCloseTo((1.5 + 0.5 + 0.5 + 7.5) / 4, 12);
    expect(rmse(new Float32Array(5).fill(mean), labels, mask)).toBeCloseTo(spread.labelStd, 6);
  });
});
