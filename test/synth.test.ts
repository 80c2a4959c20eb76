import { describe, expect, it } from 'vitest';
import { accuracy, auc, rmse } from '#lib/domain/metrics/index.ts';
import { generateMultiTask, generateTextCorpus, REGRESSION_NOISE_STD, SynthError, type SynthTaskOptions } from '#lib/domain/synth/index.ts';
import { mulberry32, Random } from '#lib/domain/random/index.ts';

const TASKS: SynthTaskOptions[] = [
  { name: 'click', type: 'binary' },
  { name: 'topic', type: 'multiclass', classes: ['news', 'sport', 'tech', 'other'] },
  { name: 'dwell', type: 'regression' },
];

function correlation(a: Float32Array, b: Float32Array): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    ma += a[i] / a.length;
    mb += b[i] / b.length;
  }
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < a.length; i++) {
    cov += (a[i] - ma) * (b[i] - mb);
    va += (a[i] - ma) ** 2;
    vb += (b[i] - mb) ** 2;
  }
  return cov / Math.sqrt(va * vb);
}

function sum(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}

describe('random', () => {
  it('repeats the same stream for the same seed and differs across seeds', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const first = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(first);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(first);
    expect(first.every((u) => u >= 0 && u < 1)).toBe(true);
  });

  it('draws standard normals with mean 0 and variance 1', () => {
    const rng = new Random(3);
    const n = 50_000;
    const draws = Array.from({ length: n }, () => rng.normal());
    const mean = draws.reduce((s, v) => s + v, 0) / n;
    const variance = draws.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
  });
});

describe('generateMultiTask', () => {
  it('is deterministic for a seed and changes with the seed', () => {
    const a = generateMultiTask({ rows: 500, dim: 16, tasks: TASKS, seed: 1, missingLabelRate: 0.2 });
    const b = generateMultiTask({ rows: 500, dim: 16, tasks: TASKS, seed: 1, missingLabelRate: 0.2 });
    const c = generateMultiTask({ rows: 500, dim: 16, tasks: TASKS, seed: 2, missingLabelRate: 0.2 });
    expect(b.features).toEqual(a.features);
    expect(b.labels).toEqual(a.labels);
    expect(b.masks).toEqual(a.masks);
    expect(c.features).not.toEqual(a.features);
  });

  it('keeps features and labels unchanged when only the missing-label rate changes', () => {
    const full = generateMultiTask({ rows: 400, dim: 8, tasks: TASKS, seed: 5 });
    const sparse = generateMultiTask({ rows: 400, dim: 8, tasks: TASKS, seed: 5, missingLabelRate: { click: 0.5 } });
    expect(sparse.features).toEqual(full.features);
    expect(sparse.labels.topic).toEqual(full.labels.topic);
    for (let r = 0; r < 400; r++) {
      if (sparse.masks.click[r]) expect(sparse.labels.click[r]).toBe(full.labels.click[r]);
      else expect(sparse.labels.click[r]).toBe(0);
    }
  });

  it('returns arrays of the documented shapes and the normalized task list', () => {
    const d = generateMultiTask({ rows: 300, dim: 12, tasks: [...TASKS, { name: 'tier', type: 'multiclass', classes: 3 }], seed: 9 });
    expect(d.features).toHaveLength(300 * 12);
    expect(d.tasks.map((t) => t.classes)).toEqual([undefined, ['news', 'sport', 'tech', 'other'], undefined, ['0', '1', '2']]);
    expect(d.teacher.score(d.features).topic).toHaveLength(300 * 4);
    expect(new Set(d.labels.tier)).toEqual(new Set([0, 1, 2]));
    expect(new Set(d.labels.click)).toEqual(new Set([0, 1]));
  });

  it('makes labels learnable: the teacher itself scores well on its own labels', () => {
    const d = generateMultiTask({ rows: 8000, dim: 32, tasks: TASKS, seed: 11, missingLabelRate: 0.2 });
    const scores = d.teacher.score(d.features);
    expect(auc(scores.click, d.labels.click, d.masks.click)).toBeGreaterThanOrEqual(0.9);
    // Four classes: chance is about 0.25.
    expect(accuracy(scores.topic, d.labels.topic, { numClasses: 4, mask: d.masks.topic })).toBeGreaterThan(0.6);
    expect(rmse(scores.dwell, d.labels.dwell, d.masks.dwell)).toBeCloseTo(REGRESSION_NOISE_STD, 2);
  });

  it('corrupts the requested fraction of labels with labelNoise', () => {
    const clean = generateMultiTask({ rows: 20_000, dim: 8, tasks: TASKS, seed: 4 });
    const noisy = generateMultiTask({ rows: 20_000, dim: 8, tasks: TASKS, seed: 4, labelNoise: 0.2 });
    const changed = clean.labels.topic.filter((y, r) => y !== noisy.labels.topic[r]).length / 20_000;
    // A replacement draws one of 4 classes uniformly, so 3/4 of the 20% actually change.
    expect(changed).toBeGreaterThan(0.15 * 0.8);
    expect(changed).toBeLessThan(0.15 * 1.2);
    const teacher = noisy.teacher.score(noisy.features);
    expect(auc(teacher.click, noisy.labels.click)).toBeLessThan(auc(teacher.click, clean.labels.click));
  });

  it.each([0, 0.1, 0.35, 0.8])('leaves about %s of the labels missing', (rate) => {
    const rows = 20_000;
    const d = generateMultiTask({ rows, dim: 4, tasks: TASKS, seed: 21, missingLabelRate: rate });
    for (const task of TASKS) {
      const missing = 1 - sum(d.masks[task.name]) / rows;
      // Binomial standard deviation at 20k rows is at most 0.0035.
      expect(Math.abs(missing - rate)).toBeLessThan(0.015);
    }
  });

  it('draws independent masks per task', () => {
    const d = generateMultiTask({ rows: 20_000, dim: 4, tasks: TASKS, seed: 8, missingLabelRate: 0.5 });
    let bothMissing = 0;
    for (let r = 0; r < 20_000; r++) if (!d.masks.click[r] && !d.masks.dwell[r]) bothMissing++;
    expect(bothMissing / 20_000).toBeGreaterThan(0.22);
    expect(bothMissing / 20_000).toBeLessThan(0.28);
  });

  it('aligns tasks at conflict 0 and decorrelates them at conflict 1', () => {
    const tasks: SynthTaskOptions[] = [
      { name: 'a', type: 'binary' },
      { name: 'b', type: 'binary' },
    ];
    const aligned = generateMultiTask({ rows: 5000, dim: 32, tasks, seed: 3, conflict: 0 });
    const opposed = generateMultiTask({ rows: 5000, dim: 32, tasks, seed: 3, conflict: 1 });
    const halfway = generateMultiTask({ rows: 5000, dim: 32, tasks, seed: 3, conflict: 0.5 });
    const r = (d: typeof aligned): number => {
      const s = d.teacher.score(d.features);
      return correlation(s.a, s.b);
    };
    expect(r(aligned)).toBeCloseTo(1, 6);
    expect(Math.abs(r(opposed))).toBeLessThan(0.4);
    expect(r(halfway)).toBeGreaterThan(Math.abs(r(opposed)));
    expect(r(halfway)).toBeLessThan(0.9);
  });

  it.each([
    ['no tasks', { tasks: [] }, /tasks is empty/],
    ['a repeated task name', { tasks: [TASKS[0], TASKS[0]] }, /tasks\[1\]\.name "click" is empty or repeated/],
    ['a multiclass task with one class', { tasks: [{ name: 't', type: 'multiclass', classes: 1 }] }, /classes 1; pass a count ≥ 2/],
    ['a missing-label rate of 1', { missingLabelRate: 1 }, /missingLabelRate for task "click" 1 is outside \[0, 1\)/],
    ['a rate for an unknown task', { missingLabelRate: { clicks: 0.1 } }, /names task "clicks", which is not in tasks/],
    ['conflict above 1', { conflict: 1.5 }, /conflict 1.5 is outside \[0, 1\]/],
    ['fractional rows', { rows: 10.5 }, /rows 10.5 is not a positive integer/],
  ] as const)('rejects %s', (_, override, message) => {
    const options = { rows: 10, dim: 4, tasks: TASKS, seed: 1, ...override } as Parameters<typeof generateMultiTask>[0];
    expect(() => generateMultiTask(options)).toThrowError(SynthError);
    expect(() => generateMultiTask(options)).toThrowError(message);
  });
});

describe('generateTextCorpus', () => {
  const corpus = generateTextCorpus({ documents: 600, vocabulary: 5000, tokens: [50, 90], seed: 4 });

  it('is the same for a seed, with documents of the requested length and balanced 0/1 labels', () => {
    const again = generateTextCorpus({ documents: 600, vocabulary: 5000, tokens: [50, 90], seed: 4 });
    const lengths = corpus.records.map((r) => String(r.text).split(' ').length);

    expect(again.records).toEqual(corpus.records);
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(50);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(90);
    for (const task of ['spam', 'urgent']) {
      const positives = corpus.records.filter((r) => r[task] === 1).length;
      expect(positives).toBeGreaterThan(240);
      expect(positives).toBeLessThan(360);
    }
  });

  it('draws words by Zipf rank and decides each label by its few signal words', () => {
    const counts = new Map<string, number>();
    for (const r of corpus.records) for (const word of String(r.text).split(' ')) counts.set(word, (counts.get(word) ?? 0) + 1);

    expect(counts.get('w0')! / counts.get('wa')!).toBeGreaterThan(5);
    for (const task of ['spam', 'urgent']) {
      const words = new Set(corpus.signalWords[task]);
      const mentions = Float32Array.from(
        corpus.records,
        (r) =>
          String(r.text)
            .split(' ')
            .filter((w) => words.has(w)).length,
      );
      const labels = Float32Array.from(corpus.records, (r) => Number(r[task]));
      expect(auc(mentions, labels, new Uint8Array(labels.length).fill(1))).toBeGreaterThan(0.9);
    }
  });

  it('refuses a vocabulary too small to draw from, naming the option', () => {
    expect(() => generateTextCorpus({ documents: 10, vocabulary: 20, seed: 1 })).toThrow(/vocabulary 20 must be an integer ≥ 100/);
  });
});
