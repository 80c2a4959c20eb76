import { describe, expect, it } from 'vitest';
import { rewardOf, scoreOf, TuneError, VIOLATION_PENALTY, type ObjectiveTask } from '#lib/domain/tune/index.ts';
import { createRng } from '#lib/domain/random/index.ts';

describe('scoreOf', () => {
  it.each([
    { metric: 'auc', value: 0.83, reference: undefined, score: 0.83 },
    { metric: 'accuracy', value: 0.9, reference: undefined, score: 0.9 },
    { metric: 'macroF1', value: 0.41, reference: undefined, score: 0.41 },
    { metric: 'logLoss', value: 0.693, reference: undefined, score: Math.exp(-0.693) },
    { metric: 'logLoss', value: 0, reference: undefined, score: 1 },
    { metric: 'rmse', value: 2, reference: 4, score: 0.5 },
    { metric: 'mae', value: 3, reference: 3, score: 0 },
    { metric: 'rmse', value: 100, reference: 4, score: -1 },
  ] as const)('scores $metric $value (reference $reference) as $score', ({ metric, value, reference, score }) => {
    expect(scoreOf(metric, value, reference)).toBeCloseTo(score, 12);
  });

  it('makes lower-is-better metrics score higher as they fall', () => {
    expect(scoreOf('logLoss', 0.2)).toBeGreaterThan(scoreOf('logLoss', 0.4));
    expect(scoreOf('mae', 1, 5)).toBeGreaterThan(scoreOf('mae', 2, 5));
  });

  it('requires a reference for rmse and mae, naming the fix', () => {
    expect(() => scoreOf('rmse', 1)).toThrow(/trivial predictor/);
  });
});

describe('rewardOf', () => {
  const tasks: ObjectiveTask[] = [
    { name: 'churn', metric: 'auc', weight: 3, floor: 0.7 },
    { name: 'ltv', metric: 'rmse', weight: 1, floor: 12, reference: 20 },
  ];

  it('is the weighted mean of task scores when no floor is violated', () => {
    const result = rewardOf({ churn: { auc: 0.8, logLoss: 0.4 }, ltv: { rmse: 10 } }, tasks);
    expect(result.reward).toBeCloseTo((3 * 0.8 + 1 * 0.5) / 4, 12);
    expect(result.violations).toEqual([]);
    expect(result.perTask.ltv).toEqual({ metric: 'rmse', value: 10, score: 0.5 });
  });

  it('lists violations, treating floors of lower-is-better metrics as maxima', () => {
    const result = rewardOf({ churn: { auc: 0.65 }, ltv: { rmse: 14 } }, tasks);
    expect(result.violations).toEqual([
      { task: 'churn', metric: 'auc', value: 0.65, floor: 0.7 },
      { task: 'ltv', metric: 'rmse', value: 14, floor: 12 },
    ]);
    const mean = (3 * 0.65 + 1 * (1 - 14 / 20)) / 4;
    const shortfall = 0.7 - 0.65 + (1 - 12 / 20 - (1 - 14 / 20));
    expect(result.reward).toBeCloseTo(mean - VIOLATION_PENALTY - shortfall, 12);
  });

  it('ranks every floor violator below every non-violator on the same tasks', () => {
    const rng = createRng(17);
    const draw = (): { reward: number; violated: boolean } => {
      const result = rewardOf({ churn: { auc: 0.5 + 0.5 * rng.uniform() }, ltv: { rmse: 40 * rng.uniform() } }, tasks);
      return { reward: result.reward, violated: result.violations.length > 0 };
    };
    const samples = Array.from({ length: 2000 }, draw);
    const worstClean = Math.min(...samples.filter((s) => !s.violated).map((s) => s.reward));
    const bestViolator = Math.max(...samples.filter((s) => s.violated).map((s) => s.reward));
    expect(samples.some((s) => s.violated) && samples.some((s) => !s.violated)).toBe(true);
    expect(bestViolator).toBeLessThan(worstClean);
  });

  it('ranks a larger shortfall lower', () => {
    const near = rewardOf({ churn: { auc: 0.69 }, ltv: { rmse: 5 } }, tasks).reward;
    const far = rewardOf({ churn: { auc: 0.6 }, ltv: { rmse: 5 } }, tasks).reward;
    expect(far).toBeLessThan(near);
  });

  it.each<{ metrics: Record<string, Record<string, number>>; message: RegExp }>([
    { metrics: { ltv: { rmse: 10 } }, message: /task "churn": metric auc is missing/ },
    { metrics: { churn: { accuracy: 0.9 }, ltv: { rmse: 10 } }, message: /reported: accuracy/ },
    { metrics: { churn: { auc: Number.NaN }, ltv: { rmse: 10 } }, message: /metric auc is NaN/ },
  ])('rejects a missing or non-finite metric: $message', ({ metrics, message }) => {
    let caught: unknown;
    try {
      rewardOf(metrics, tasks);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TuneError);
    expect((caught as TuneError).code).toBe('TUNE_METRIC_MISSING');
    expect((caught as TuneError).message).toMatch(message);
  });

  it.each([
    { tasks: [], message: /no tasks/ },
    { tasks: [{ name: 'a', metric: 'auc', weight: 0 }], message: /sum to 0/ },
    { tasks: [{ name: 'a', metric: 'auc', weight: -1 }], message: /weight -1/ },
    { tasks: [{ name: 'a', metric: 'f2', weight: 1 }], message: /metric "f2"/ },
    {
      tasks: [
        { name: 'a', metric: 'auc', weight: 1 },
        { name: 'a', metric: 'auc', weight: 1 },
      ],
      message: /twice/,
    },
  ] as { tasks: ObjectiveTask[]; message: RegExp }[])('rejects an invalid objective: $message', ({ tasks: bad, message }) => {
    expect(() => rewardOf({ a: { auc: 0.9 } }, bad)).toThrow(message);
  });
});
