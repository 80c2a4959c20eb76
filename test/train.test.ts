import { existsSync, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

import { UNCERTAINTY_PARAMETER } from '#lib/domain/graph/index.ts';
import { evaluateTask, labelSpread } from '#lib/domain/metrics/index.ts';
import type { ShardBatch } from '#lib/domain/shards/index.ts';
import type { Spec, SpecInput } from '#lib/domain/spec/index.ts';
import { generateMultiTask, type MultiTaskDataset } from '#lib/domain/synth/index.ts';
import {
  TrainError,
  buildHeads,
  dwaWeights,
  learningRateAt,
  regressionTargetScales,
  trainTrial,
  trainingForward,
  type TrainTrialOptions,
} from '#lib/domain/train/index.ts';
import { featuresSpec } from './helpers/specs.ts';

const DIM = 12;
const TASKS = [
  { name: 'click', type: 'binary' as const },
  { name: 'topic', type: 'multiclass' as const, classes: 3 },
  { name: 'price', type: 'regression' as const },
];
const SPEC_TASKS: SpecInput['tasks'] = [
  { name: 'click', type: 'binary' },
  { name: 'topic', type: 'multiclass', classes: ['0', '1', '2'] },
  { name: 'price', type: 'regression' },
];
const LAMBDA = { click: 1, topic: 1, price: 1 };

function specWith(overrides: { model?: SpecInput['model']; training?: SpecInput['training']; tasks?: SpecInput['tasks'] } = {}): Spec {
  return featuresSpec({
    dimension: DIM,
    tasks: overrides.tasks ?? SPEC_TASKS,
    model: { hidden: [48], towerHidden: [24], experts: 4, expertHidden: 24, ...overrides.model },
    training: { epochs: 6, batchSize: 128, learningRate: 3e-3, warmupSteps: 10, seed: 11, ...overrides.training },
  });
}

const dataset = generateMultiTask({ rows: 4000, dim: DIM, tasks: TASKS, seed: 5, missingLabelRate: 0.2 });
const TRAIN_ROWS = 3000;

/** Rows `from`…`to` of a dataset as a stream of shard batches of `chunk` rows (fresh arrays each time). */
function rowsOf(ds: MultiTaskDataset, from: number, to: number, chunk = 700): () => AsyncIterable<ShardBatch> {
  return async function* () {
    for (let start = from; start < to; start += chunk) {
      const end = Math.min(to, start + chunk);
      yield {
        rows: end - start,
        dim: ds.dim,
        features: ds.features.slice(start * ds.dim, end * ds.dim),
        labels: Object.fromEntries(Object.entries(ds.labels).map(([task, v]) => [task, v.slice(start, end)])),
        masks: Object.fromEntries(Object.entries(ds.masks).map(([task, v]) => [task, v.slice(start, end)])),
        rowIndex: Int32Array.from({ length: end - start }, (_, i) => start + i),
      };
    }
  };
}

function trial(spec: Spec, extra: Partial<TrainTrialOptions> = {}, ds: MultiTaskDataset = dataset): Promise<Awaited<ReturnType<typeof trainTrial>>> {
  return trainTrial({
    spec,
    encoder: { id: 'e0', dimension: ds.dim },
    proposal: { lambda: LAMBDA },
    data: { train: rowsOf(ds, 0, TRAIN_ROWS), validation: rowsOf(ds, TRAIN_ROWS, ds.rows) },
    options: { intraOpNumThreads: 1 },
    ...extra,
  });
}

function softmaxRows(logits: Float32Array, rows: number, classes: number): Float32Array {
  const out = new Float32Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    const top = Math.max(...row);
    const exps = Array.from(row, (v) => Math.exp(v - top));
    const total = exps.reduce((a, b) => a + b, 0);
    exps.forEach((e, k) => (out[r * classes + k] = e / total));
  }
  return out;
}

/** The teacher's own (Bayes-optimal) scores on the validation rows: the ceiling a student can reach. */
function teacherCeiling(ds: MultiTaskDataset): { auc: number; accuracy: number } {
  const features = ds.features.slice(TRAIN_ROWS * ds.dim);
  const scores = ds.teacher.score(features);
  const rows = ds.rows - TRAIN_ROWS;
  const slice = (task: string) => ({ labels: ds.labels[task].slice(TRAIN_ROWS), mask: ds.masks[task].slice(TRAIN_ROWS) });
  const click = evaluateTask({ type: 'binary', predictions: scores.click.map((s) => 1 / (1 + Math.exp(-s))), ...slice('click') });
  const topic = evaluateTask({ type: 'multiclass', numClasses: 3, predictions: softmaxRows(scores.topic, rows, 3), ...slice('topic') });
  return { auc: click.auc!, accuracy: topic.accuracy! };
}

describe('trainTrial', () => {
  const ceiling = teacherCeiling(dataset);

  // Labels are draws from the teacher's probabilities, so no model beats the teacher itself: the
  // floors sit a fixed margin under the teacher's own validation scores (AUC 0.955, accuracy 0.80 here)
  // rather than at absolute numbers the data cannot reach. Regression labels are the teacher's
  // value plus N(0, 0.1²) on a unit-variance target, so rmse under half the label std is real skill.
  it.each(['shared-bottom', 'mmoe'] as const)('%s reaches the quality floors of every task type', async (architecture) => {
    const result = await trial(specWith({ model: { architecture, expertHidden: 32 }, training: { epochs: 10, learningRate: 1e-2, batchSize: 64 } }));

    expect(result.architecture).toBe(architecture);
    expect(result.metrics.click.auc).toBeGreaterThanOrEqual(ceiling.auc - 0.04);
    expect(result.metrics.topic.accuracy).toBeGreaterThanOrEqual(ceiling.accuracy - 0.07);
    expect(result.metrics.topic.macroF1).toBeGreaterThanOrEqual(0.6);
    expect(result.metrics.price.rmse).toBeLessThan(0.5 * result.metrics.price.labelStd);
    expect(result.metrics.price.mae).toBeLessThan(0.5 * result.metrics.price.labelMad);
    expect(result.history.map((h) => h.epoch)).toEqual(result.history.map((_, i) => i));
    expect(result.history.at(-1)!.trainLoss.click).toBeLessThan(result.history[0].trainLoss.click);
  });

  it('gives identical weights, metrics and history for identical inputs', async () => {
    const spec = specWith({ training: { epochs: 2 } });
    const options = { intraOpNumThreads: 2 };
    const first = await trial(spec, { options });
    const second = await trial(spec, { options });

    expect(Object.keys(first.weights.tensors).sort()).toEqual(Object.keys(second.weights.tensors).sort());
    for (const [name, values] of Object.entries(first.weights.tensors)) expect(second.weights.tensors[name], name).toEqual(values);
    expect(second.metrics).toEqual(first.metrics);
    expect(second.history).toEqual(first.history);
  });

  it('changes the weights when the seed changes', async () => {
    const a = await trial(specWith({ training: { epochs: 1, seed: 1 } }));
    const b = await trial(specWith({ training: { epochs: 1, seed: 2 } }));
    expect(b.weights.tensors['bottom.0.weight']).not.toEqual(a.weights.tensors['bottom.0.weight']);
  });

  it('stops early once validation stops improving and returns the best epoch with its weights', async () => {
    // 200 training rows, a wide model and a constant high rate: it overfits within a few epochs.
    const small = generateMultiTask({ rows: 1200, dim: DIM, tasks: TASKS, seed: 9, labelNoise: 0.2 });
    const spec = specWith({
      model: { hidden: [128], towerHidden: [64] },
      training: { epochs: 40, learningRate: 2e-2, schedule: 'constant', warmupSteps: 0, weightDecay: 0, earlyStoppingPatience: 2, batchSize: 32 },
    });
    const result = await trainTrial({
      spec,
      encoder: { id: 'e0', dimension: DIM },
      proposal: { lambda: LAMBDA },
      data: { train: rowsOf(small, 0, 200), validation: rowsOf(small, 200, 1200) },
      options: { intraOpNumThreads: 1 },
    });

    expect(result.stoppedEarly).toBe(true);
    expect(result.epochsRun).toBe(result.bestEpoch + 1 + 2);
    expect(result.epochsRun).toBeLessThan(40);
    const objectives = result.history.map((h) => h.objective);
    expect(result.objective).toBe(Math.max(...objectives));
    expect(result.metrics).toEqual(result.history[result.bestEpoch].validation);
    // The returned weights are the best epoch's: they reproduce its validation predictions' metrics.
    const validationRows = { features: small.features.slice(200 * DIM), rows: 1000 };
    const predictions = await trainingForward({ spec, weights: result.weights, batch: validationRows });
    const auc = evaluateTask({
      type: 'binary',
      predictions: predictions['click.probability'],
      labels: small.labels.click.slice(200),
      mask: small.masks.click.slice(200),
    }).auc;
    expect(auc).toBeCloseTo(result.history[result.bestEpoch].validation.click.auc, 6);
    expect(auc).not.toBeCloseTo(result.history.at(-1)!.validation.click.auc, 6);
  });

  it('counts patience from the last epoch that beat the objective by earlyStoppingMinDelta, and still keeps the best epoch', async () => {
    const small = generateMultiTask({ rows: 1200, dim: DIM, tasks: TASKS, seed: 9, labelNoise: 0.2 });
    const run = (earlyStoppingMinDelta: number) =>
      trainTrial({
        spec: specWith({
          training: { epochs: 12, learningRate: 3e-3, schedule: 'constant', warmupSteps: 0, earlyStoppingPatience: 2, earlyStoppingMinDelta, batchSize: 32 },
        }),
        encoder: { id: 'e0', dimension: DIM },
        proposal: { lambda: LAMBDA },
        data: { train: rowsOf(small, 0, 600), validation: rowsOf(small, 600, 1200) },
        options: { intraOpNumThreads: 1 },
      });
    // No epoch can beat the first by a whole unit of objective: patience runs out two epochs after it.
    const strict = await run(1);
    expect(strict.stoppedEarly).toBe(true);
    expect(strict.epochsRun).toBe(3);
    const objectives = strict.history.map((h) => h.objective);
    expect(strict.objective).toBe(Math.max(...objectives));
    expect(strict.metrics).toEqual(strict.history[strict.bestEpoch].validation);
    // The same epochs, trained alike, as far as the strict run went.
    const loose = await run(0);
    expect(loose.epochsRun).toBeGreaterThan(3);
    expect(loose.history.slice(0, 3).map((h) => h.objective)).toEqual(objectives);
  });

  it('uses the proposal learning rate over the spec, with warm-up then cosine decay', async () => {
    // 3000 rows in batches of 128: 24 steps per epoch, so warm-up (30 steps) ends in epoch 2.
    const result = await trial(specWith({ training: { epochs: 3, warmupSteps: 30, learningRate: 0.5 } }), { proposal: { lambda: LAMBDA, learningRate: 1e-3 } });
    const rates = result.history.map((h) => h.learningRate);
    expect(result.history.map((h) => h.steps)).toEqual([24, 24, 24]);
    expect(rates[0]).toBeCloseTo((1e-3 * 24) / 30, 12);
    expect(rates[1]).toBeCloseTo(1e-3 * 0.5 * (1 + Math.cos((Math.PI * (1 + 23 / 24)) / 3)), 12);
    expect(rates[2]).toBeLessThan(rates[1]);
    expect(rates[2]).toBeGreaterThan(0);
  });

  it('learns per-task log-variances under uncertainty weighting and reports λ·½e^(−s) as the task weights', async () => {
    const lambda = { click: 2, topic: 1, price: 0.5 };
    const result = await trial(specWith({ training: { weighting: 'uncertainty', epochs: 4, earlyStoppingPatience: 0 } }), { proposal: { lambda } });

    const s = result.weights.tensors[UNCERTAINTY_PARAMETER];
    expect(s).toHaveLength(3);
    expect(Array.from(s).every((v) => v !== 0)).toBe(true);
    const last = result.history.at(-1)!;
    (['click', 'topic', 'price'] as const).forEach((task, k) => {
      expect(last.taskWeights[task]).toBeCloseTo(lambda[task] * 0.5 * Math.exp(-s[k]), 6);
    });
    expect(last.taskWeights).not.toEqual(result.history[0].taskWeights);
    expect(result.metrics.click.auc).toBeGreaterThan(0.85);
  });

  it('reweights tasks by DWA from the third epoch, times the proposal λ', async () => {
    const lambda = { click: 2, topic: 1, price: 0.5 };
    const result = await trial(specWith({ training: { weighting: 'dwa', epochs: 4, earlyStoppingPatience: 0 } }), { proposal: { lambda } });

    const [e0, e1, e2, e3] = result.history;
    expect(e0.taskWeights).toEqual(lambda);
    expect(e1.taskWeights).toEqual(lambda);
    const losses = (e: typeof e0) => [e.trainLoss.click, e.trainLoss.topic, e.trainLoss.price];
    const w2 = dwaWeights([losses(e0), losses(e1)], { taskCount: 3 });
    const w3 = dwaWeights([losses(e0), losses(e1), losses(e2)], { taskCount: 3 });
    expect(e2.taskWeights.click).toBeCloseTo(2 * w2[0], 12);
    expect(e2.taskWeights.topic).toBeCloseTo(1 * w2[1], 12);
    expect(e3.taskWeights.price).toBeCloseTo(0.5 * w3[2], 12);
    expect(w2).not.toEqual([1, 1, 1]);
  });

  it('fails with DIVERGED naming the task, epoch and step when a loss passes maxDivergenceLoss', async () => {
    const error = await trial(specWith({ training: { learningRate: 50, warmupSteps: 0, maxDivergenceLoss: 100 } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainError);
    expect((error as TrainError).code).toBe('DIVERGED');
    expect((error as TrainError).message).toMatch(/^task "(click|topic|price)": loss .* exceeds training.maxDivergenceLoss 100 at epoch \d+, step \d+/);
    expect((error as TrainError).context).toMatchObject({ epoch: expect.any(Number), step: expect.any(Number) });
  });

  it('fails with DIVERGED when an absurd learning rate makes a loss non-finite', async () => {
    const error = await trial(specWith({ training: { learningRate: 1e12, warmupSteps: 0 } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainError);
    expect((error as TrainError).code).toBe('DIVERGED');
    expect((error as TrainError).message).toMatch(/is not finite at epoch 1, step \d+/);
  });

  it('fails with NO_LABELS when a task has no labelled training rows', async () => {
    const unlabelled = generateMultiTask({ rows: 1000, dim: DIM, tasks: TASKS, seed: 5 });
    unlabelled.masks.price.fill(0, 0, 800);
    const error = await trainTrial({
      spec: specWith({ training: { epochs: 1 } }),
      encoder: { id: 'e0', dimension: DIM },
      proposal: { lambda: LAMBDA },
      data: { train: rowsOf(unlabelled, 0, 800), validation: rowsOf(unlabelled, 800, 1000) },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainError);
    expect((error as TrainError).code).toBe('NO_LABELS');
    expect((error as TrainError).message).toContain('task "price" has no labelled rows in the train split');
  });

  it.each([
    [{ click: 1, topic: 1 }, /proposal λ for task "price" is undefined/],
    [{ click: 1, topic: 1, price: 1, other: 1 }, /names task "other", which is not in the spec/],
    [{ click: -1, topic: 1, price: 1 }, /proposal λ for task "click" is -1/],
  ])('refuses the proposal λ %j', async (lambda, message) => {
    await expect(trial(specWith(), { proposal: { lambda } })).rejects.toThrow(message);
  });

  it('refuses shards of another dimension', async () => {
    const other = generateMultiTask({ rows: 300, dim: DIM + 1, tasks: TASKS, seed: 5 });
    await expect(trial(specWith({ training: { epochs: 1 } }), { data: { train: rowsOf(other, 0, 200), validation: rowsOf(other, 200, 300) } })).rejects.toThrow(
      /shard features have dimension 13 but the heads take 12/,
    );
  });

  it('asks for CUDA explicitly: it trains where the CUDA provider is installed and fails by name where it is not', async () => {
    const ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
    const binaries = readdirSync(`${ortDir}/../bin`, { recursive: true }).map(String);
    const hasCuda = binaries.some((f) => f.endsWith('libonnxruntime_providers_cuda.so')) && existsSync('/dev/nvidia0');
    const outcome = await trial(specWith({ training: { epochs: 1 } }), { options: { executionProviders: ['cuda'] } }).catch((e: unknown) => e);
    if (hasCuda) {
      expect(outcome).not.toBeInstanceOf(Error);
    } else {
      expect(outcome).toBeInstanceOf(TrainError);
      expect((outcome as TrainError).code).toBe('DEVICE');
      expect((outcome as TrainError).message).toMatch(
        /execution providers \[cuda\].*CUDA execution provider did not load.*libonnxruntime_providers_cuda\.so.*unset AGENTFLOW_DEVICE/,
      );
    }
  });
});

describe('heads', () => {
  it('initialises deterministically per parameter name, independent of the other tasks', () => {
    const model = { hidden: [16], towerHidden: [8], experts: 2, expertHidden: 8 };
    const one = buildHeads({ architecture: 'shared-bottom', model, tasks: [{ name: 'a', type: 'binary' }], inputDim: 4, seed: 3 });
    const two = buildHeads({
      architecture: 'shared-bottom',
      model,
      tasks: [
        { name: 'a', type: 'binary' },
        { name: 'b', type: 'regression' },
      ],
      inputDim: 4,
      seed: 3,
    });
    const pick = (h: typeof one, name: string) => h.parameters.find((p) => p.name === name)!.init;
    expect(pick(two, 'bottom.0.weight')).toEqual(pick(one, 'bottom.0.weight'));
    expect(pick(two, 'tower.a.0.weight')).toEqual(pick(one, 'tower.a.0.weight'));
    expect(pick(one, 'bottom.0.bias')).toEqual(new Float32Array(16));
  });

  it('gives MMoE one expert matrix, one gate matrix over all tasks and a tower per task', () => {
    const heads = buildHeads({
      architecture: 'mmoe',
      model: { hidden: [16], towerHidden: [8], experts: 3, expertHidden: 5 },
      tasks: [
        { name: 'a', type: 'binary' },
        { name: 'b', type: 'multiclass', classes: ['x', 'y', 'z', 'w'] },
      ],
      inputDim: 6,
      seed: 1,
    });
    expect(Object.fromEntries(heads.parameters.map((p) => [p.name, p.shape]))).toEqual({
      'experts.weight': [6, 15],
      'experts.bias': [15],
      'gates.weight': [6, 6],
      'gates.bias': [6],
      'tower.a.0.weight': [5, 8],
      'tower.a.0.bias': [8],
      'tower.a.out.weight': [8, 1],
      'tower.a.out.bias': [1],
      'tower.b.0.weight': [5, 8],
      'tower.b.0.bias': [8],
      'tower.b.out.weight': [8, 4],
      'tower.b.out.bias': [4],
    });
    expect(heads.tasks.map((t) => t.outputName)).toEqual(['a.probability', 'b.probabilities']);
  });

  it.each([
    [{ inputDim: 0 }, /inputDim 0 is not a positive integer/],
    [{ tasks: [{ name: 'm', type: 'multiclass' as const, classes: ['only'] }] }, /multiclass task "m" has 1 classes/],
    [
      {
        tasks: [
          { name: 'a', type: 'binary' as const },
          { name: 'a', type: 'binary' as const },
        ],
      },
      /task "a" is listed twice/,
    ],
    [{ model: { hidden: [], towerHidden: [], experts: 1, expertHidden: 1 } }, /shared-bottom needs at least one shared layer/],
  ])('refuses %j', (override, message) => {
    const base = {
      architecture: 'shared-bottom' as const,
      model: { hidden: [4], towerHidden: [], experts: 1, expertHidden: 1 },
      tasks: [{ name: 't', type: 'binary' as const }],
      inputDim: 3,
      seed: 1,
    };
    expect(() => buildHeads({ ...base, ...override })).toThrow(message);
  });
});

describe('schedule and weighting arithmetic', () => {
  it.each([
    [{ step: 0, progress: 0 }, 'cosine', 0.1],
    [{ step: 9, progress: 0 }, 'cosine', 1],
    [{ step: 50, progress: 0.5 }, 'cosine', 0.5],
    [{ step: 99, progress: 1 }, 'cosine', 0],
    [{ step: 99, progress: 1 }, 'constant', 1],
  ] as const)('learning rate at %j (%s) is %f of the base', (at, schedule, factor) => {
    expect(learningRateAt({ baseRate: 2, warmupSteps: 10, schedule }, at)).toBeCloseTo(2 * factor, 12);
  });

  it('weights DWA tasks by K·softmax of loss ratios over T = 2, 1 each before two epochs exist', () => {
    expect(dwaWeights([], { taskCount: 2 })).toEqual([1, 1]);
    expect(dwaWeights([[1, 2]], { taskCount: 2 })).toEqual([1, 1]);
    const w = dwaWeights(
      [
        [1, 1, 1],
        [0.5, 1, 2],
      ],
      { taskCount: 3 },
    );
    const e = [0.5, 1, 2].map((r) => Math.exp(r / 2));
    const total = e.reduce((a, b) => a + b, 0);
    w.forEach((v, k) => expect(v).toBeCloseTo((3 * e[k]) / total, 12));
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(3, 12);
    expect(
      dwaWeights(
        [
          [0, 1],
          [0.3, 1],
        ],
        { taskCount: 2 },
      ),
    ).toEqual([1, 1]);
  });

  it('measures the trivial predictors: std for rmse, mean absolute deviation from the median for mae', () => {
    const spread = labelSpread(Float32Array.from([1, 2, 3, 100, 4]), Uint8Array.from([1, 1, 1, 0, 1]));
    expect(spread.labelStd).toBeCloseTo(Math.sqrt(1.25), 6);
    expect(spread.labelMad).toBeCloseTo(1, 6);
  });
});

describe('regression targets in label units', () => {
  it('learns a target in grams as well as the same target in unit scale, and serves grams', async () => {
    const grams: MultiTaskDataset = { ...dataset, labels: { ...dataset.labels, price: dataset.labels.price.map((v) => 4000 + 800 * v) } };
    const spec = specWith();

    const unit = await trial(spec);
    const scaled = await trial(spec, {}, grams);

    const unitSkill = unit.metrics.price.rmse / unit.metrics.price.labelStd;
    const scaledSkill = scaled.metrics.price.rmse / scaled.metrics.price.labelStd;
    expect(scaledSkill).toBeLessThan(0.5);
    expect(Math.abs(scaledSkill - unitSkill)).toBeLessThan(0.05);
    expect(scaled.weights.targetScales?.price.mean).toBeGreaterThan(3500);
    const rows = { features: grams.features.slice(TRAIN_ROWS * DIM, (TRAIN_ROWS + 50) * DIM), rows: 50 };
    const served = await trainingForward({ spec, weights: scaled.weights, batch: rows });
    const mean = served['price.value'].reduce((a, b) => a + b, 0) / 50;
    expect(mean).toBeGreaterThan(3000);
    expect(mean).toBeLessThan(5000);
  });

  it('computes each regression task mean and std over labelled train rows only', async () => {
    const scales = await regressionTargetScales(
      [
        { name: 'price', type: 'regression' },
        { name: 'click', type: 'binary' },
      ],
      async function* () {
        yield {
          rows: 4,
          dim: 1,
          features: new Float32Array(4),
          labels: { price: Float32Array.from([2, 4, 999, 6]) },
          masks: { price: Uint8Array.from([1, 1, 0, 1]) },
          rowIndex: new Int32Array(4),
        };
      },
    );

    expect(Object.keys(scales)).toEqual(['price']);
    expect(scales.price.mean).toBeCloseTo(4, 6);
    expect(scales.price.std).toBeCloseTo(Math.sqrt(8 / 3), 6);
  });
});
