import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';

import { decodeModel, modelMetadata } from '#lib/domain/graph/index.ts';
import { evaluateTask } from '#lib/domain/metrics/index.ts';
import type { ShardBatch } from '#lib/domain/shards/index.ts';
import type { Spec } from '#lib/domain/spec/index.ts';
import { generateMultiTask } from '#lib/domain/synth/index.ts';
import {
  HEADS_METADATA_KEYS,
  TrainError,
  checkParity,
  parityDifference,
  exportHeads,
  exportedTasks,
  predictExported,
  specWithHyperparameters,
  trainTrial,
  trainingForward,
  type TrialWeights,
} from '#lib/domain/train/index.ts';
import { decodeWeights, encodeWeights } from '#lib/pipeline/trials/weights.ts';
import { featuresSpec } from './helpers/specs.ts';

const DIM = 10;
const ds = generateMultiTask({
  rows: 1500,
  dim: DIM,
  tasks: [
    { name: 'spam', type: 'binary' },
    { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c', 'd'] },
    { name: 'score', type: 'regression' },
  ],
  seed: 21,
  missingLabelRate: 0.1,
});
const TRAIN = 1200;

function rowsOf(from: number, to: number): () => AsyncIterable<ShardBatch> {
  return async function* () {
    yield {
      rows: to - from,
      dim: DIM,
      features: ds.features.slice(from * DIM, to * DIM),
      labels: Object.fromEntries(Object.entries(ds.labels).map(([t, v]) => [t, v.slice(from, to)])),
      masks: Object.fromEntries(Object.entries(ds.masks).map(([t, v]) => [t, v.slice(from, to)])),
      rowIndex: Int32Array.from({ length: to - from }, (_, i) => from + i),
    };
  };
}

function specFor(architecture: 'shared-bottom' | 'mmoe', hidden = [32, 16]): Spec {
  return featuresSpec({
    dimension: DIM,
    tasks: [
      { name: 'spam', type: 'binary' },
      { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c', 'd'] },
      { name: 'score', type: 'regression', loss: 'huber', huberDelta: 0.5 },
    ],
    model: { architecture, hidden, towerHidden: [8], experts: 3, expertHidden: 16 },
    training: { epochs: 3, batchSize: 64, learningRate: 5e-3, seed: 4 },
  });
}

const validation = { features: ds.features.slice(TRAIN * DIM), rows: ds.rows - TRAIN };
const encoder = { id: 'e0', dimension: DIM };

/** The AUC of exported spam probabilities over the validation rows, as the trainer scores an epoch. */
function validationSpamAuc(predictions: Record<string, Float32Array>): number | undefined {
  return evaluateTask({ type: 'binary', predictions: predictions['spam.probability'], labels: ds.labels.spam.slice(TRAIN), mask: ds.masks.spam.slice(TRAIN) })
    .auc;
}

/** One epoch over the train rows with λ 1 on every task: weights to export, not to judge. */
function trainOneEpoch(spec: Spec) {
  return trainTrial({
    spec,
    encoder,
    proposal: { lambda: { spam: 1, topic: 1, score: 1 } },
    data: { train: rowsOf(0, TRAIN), validation: rowsOf(TRAIN, ds.rows) },
    options: { maxEpochs: 1 },
  });
}

describe('exportHeads', () => {
  it.each(['shared-bottom', 'mmoe'] as const)(
    '%s: the exported file reproduces the trainer in a fresh session and carries its metadata',
    async (architecture) => {
      const spec = specFor(architecture);
      const lambda = { spam: 1.5, topic: 1, score: 0.5 };
      const trained = await trainTrial({
        spec,
        encoder,
        proposal: { lambda },
        data: { train: rowsOf(0, TRAIN), validation: rowsOf(TRAIN, ds.rows) },
        options: { intraOpNumThreads: 1 },
      });

      const model = exportHeads({
        spec,
        encoder,
        weights: trained.weights,
        metadata: { metrics: trained.metrics, lambda, digests: { features: 'abc' }, version: 3 },
      });
      const report = await checkParity(model, await trainingForward({ spec, weights: trained.weights, batch: validation }), { batch: validation });

      expect(report.maxAbsDiff).toBeLessThanOrEqual(1e-5);
      expect(Object.keys(report.perOutput).sort()).toEqual(['score.value', 'spam.probability', 'topic.probabilities']);
      const session = await ort.InferenceSession.create(model);
      expect(session.inputNames).toEqual(['features']);
      expect([...session.outputNames].sort()).toEqual(['score.value', 'spam.probability', 'topic.probabilities']);
      await session.release();
      const graph = decodeModel(model).graph!;
      expect(graph.input!.map((i) => i.name)).toEqual(['features']);
      expect(graph.input![0].type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))).toEqual(['batch', DIM]);

      // The exported predictions score exactly what the trainer reported for its best epoch.
      const predictions = await predictExported(model, validation);
      expect(predictions['topic.probabilities']).toHaveLength(validation.rows * 4);
      expect(predictions['spam.probability']).toHaveLength(validation.rows);
      expect(validationSpamAuc(predictions)).toBeCloseTo(trained.metrics.spam.auc, 5);

      const meta = modelMetadata(model);
      expect(exportedTasks(model)).toEqual([
        { name: 'spam', type: 'binary', output: 'spam.probability' },
        { name: 'topic', type: 'multiclass', classes: ['a', 'b', 'c', 'd'], output: 'topic.probabilities' },
        { name: 'score', type: 'regression', output: 'score.value' },
      ]);
      expect(JSON.parse(meta[HEADS_METADATA_KEYS.metrics])).toEqual(trained.metrics);
      expect(JSON.parse(meta[HEADS_METADATA_KEYS.lambda])).toEqual(lambda);
      expect(JSON.parse(meta[HEADS_METADATA_KEYS.digests])).toEqual({ features: 'abc' });
      expect(meta[HEADS_METADATA_KEYS.architecture]).toBe(architecture);
      expect(meta[HEADS_METADATA_KEYS.version]).toBe('3');
    },
  );

  it('refuses a file that does not reproduce the training-time forward pass', async () => {
    const spec = specFor('shared-bottom');
    const trained = await trainOneEpoch(spec);
    const tampered: TrialWeights = {
      ...trained.weights,
      tensors: { ...trained.weights.tensors, 'tower.topic.out.bias': trained.weights.tensors['tower.topic.out.bias'].map((v, i) => (i === 0 ? v + 1e-3 : v)) },
    };
    const model = exportHeads({ spec, encoder, weights: tampered });
    const expected = await trainingForward({ spec, weights: trained.weights, batch: validation });

    const error = await checkParity(model, expected, { batch: validation }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainError);
    expect((error as TrainError).code).toBe('PARITY');
    expect((error as TrainError).message).toMatch(
      /differs from the training-time forward pass by .* \(output "topic.probabilities"\) on 300 rows, over the tolerance 0.00001; refusing the file/,
    );
    await expect(checkParity(model, { ...expected, 'missing.value': new Float32Array(3) }, { batch: validation, tolerance: 1 })).rejects.toThrow(
      /has no output "missing.value"/,
    );
  });

  it('refuses weights that do not fit the spec or the encoder', async () => {
    const spec = specFor('shared-bottom');
    const trained = await trainOneEpoch(spec);
    const wider = specFor('shared-bottom', [64, 16]);

    expect(() => exportHeads({ spec: wider, encoder, weights: trained.weights })).toThrow(/parameter "bottom.0.weight" has shape \[10, 32\].*need \[10, 64\]/);
    expect(() => exportHeads({ spec, encoder: { id: 'e1', dimension: 11 }, weights: trained.weights })).toThrow(
      /encoder "e1" has dimension 11 but the weights take 10/,
    );
    const { [`tower.spam.out.weight`]: _dropped, ...rest } = trained.weights.tensors;
    expect(() => exportHeads({ spec, encoder, weights: { ...trained.weights, tensors: rest } })).toThrow(/weights have no parameter "tower.spam.out.weight"/);
  });
});

describe("a trial's searched hyperparameters", () => {
  it('reshape the layers a trial trains, and the weights carry that shape through encoding to the export', async () => {
    const spec = specFor('shared-bottom');
    const proposal = { lambda: { spam: 1, topic: 1, score: 1 }, hyperparameters: { width: 12, depth: 3, weightDecay: 0, patience: 1 } };
    const trained = await trainTrial({
      spec,
      encoder,
      proposal,
      data: { train: rowsOf(0, TRAIN), validation: rowsOf(TRAIN, ds.rows) },
      options: { maxEpochs: 2 },
    });
    expect(trained.weights.shapes['bottom.0.weight']).toEqual([DIM, 12]);
    expect(trained.weights.shapes['bottom.2.weight']).toEqual([12, 12]);
    expect(trained.weights.model).toEqual({ hidden: [12, 12, 12], experts: 3, expertHidden: 12, towerHidden: [8] });

    const stored = encodeWeights(trained.weights);
    const weights = decodeWeights(stored.bin, stored.index);
    const model = exportHeads({ spec, encoder, weights });
    const expected = await trainingForward({ spec, weights, batch: validation });
    await expect(checkParity(model, expected, { batch: validation })).resolves.toBeDefined();
  });

  it('dropout changes what a trial learns, the same way every run, and the served model keeps every unit', async () => {
    const spec = specFor('mmoe');
    const lambda = { spam: 1, topic: 1, score: 1 };
    const train = (hyperparameters?: Record<string, number>) =>
      trainTrial({
        spec,
        encoder,
        proposal: { lambda, ...(hyperparameters ? { hyperparameters } : {}) },
        data: { train: rowsOf(0, TRAIN), validation: rowsOf(TRAIN, ds.rows) },
        options: { maxEpochs: 2, intraOpNumThreads: 1 },
      });
    const [plain, dropped, again] = [await train(), await train({ dropout: 0.3 }), await train({ dropout: 0.3 })];
    const weight = 'tower.spam.0.weight';
    expect(dropped.weights.tensors[weight]).toEqual(again.weights.tensors[weight]);
    expect(Array.from(dropped.weights.tensors[weight]).some((v, i) => Math.abs(v - plain.weights.tensors[weight][i]) > 1e-4)).toBe(true);
    expect(dropped.weights.model?.dropout).toBe(0.3);

    const model = exportHeads({ spec, encoder, weights: dropped.weights });
    const expected = await trainingForward({ spec, weights: dropped.weights, batch: validation });
    await expect(checkParity(model, expected, { batch: validation })).resolves.toBeDefined();
    // The evaluation the trainer scored the epoch with ran without dropout: the export reproduces its metrics.
    const predictions = await predictExported(model, validation);
    expect(validationSpamAuc(predictions)).toBeCloseTo(dropped.metrics.spam.auc, 6);
  });

  it('apply over the spec: width sets every shared layer, depth their count, weight decay and patience the training settings', () => {
    const spec = specFor('mmoe', [32, 16]);
    expect(specWithHyperparameters(spec, undefined)).toBe(spec);
    const widened = specWithHyperparameters(spec, { width: 24 });
    expect([widened.model.hidden, widened.model.expertHidden]).toEqual([[24, 24], 24]);
    expect(specWithHyperparameters(spec, { depth: 1 }).model.hidden).toEqual([32]);
    const trained = specWithHyperparameters(spec, { weightDecay: 0.01, patience: 5 }).training;
    expect([trained.weightDecay, trained.earlyStoppingPatience]).toEqual([0.01, 5]);
    expect(() => specWithHyperparameters(spec, { momentum: 0.9 })).toThrow(
      /hyperparameter "momentum" is not one a trial applies \(weightDecay, patience, width, depth, dropout\); fix tuning.search/,
    );
    expect(specWithHyperparameters(spec, { dropout: 0.2 }).model.dropout).toBe(0.2);
    expect(() => specWithHyperparameters(spec, { dropout: 1 })).toThrow(/dropout = 1 must lie in \[0, 1\)/);
    expect(() => specWithHyperparameters(spec, { depth: 1.5 })).toThrow(/depth = 1.5 must be an integer ≥ 1 \(it sets the number of model.hidden layers\)/);
  });
});

describe('trial weights encoding', () => {
  const weights: TrialWeights = {
    architecture: 'mmoe',
    inputDim: 3,
    tensors: { b: Float32Array.from([1, 2]), a: Float32Array.from([0.5, -1, 2, 3, 4, 5]) },
    shapes: { b: [2], a: [3, 2] },
  };

  it('round-trips names, shapes and values through weights.bin and its index', () => {
    const { bin, index } = encodeWeights(weights);
    expect(index.parameters).toEqual([
      { name: 'a', shape: [3, 2], offset: 0, length: 6 },
      { name: 'b', shape: [2], offset: 24, length: 2 },
    ]);
    expect(bin.byteLength).toBe(32);
    // An unaligned copy of the bytes still decodes.
    const unaligned = new Uint8Array(bin.byteLength + 1).subarray(1);
    unaligned.set(bin);
    expect(decodeWeights(unaligned, index)).toEqual({ architecture: 'mmoe', inputDim: 3, tensors: weights.tensors, shapes: weights.shapes });
  });

  it('refuses data that does not match its index', () => {
    const { bin, index } = encodeWeights(weights);
    bin[0] ^= 1;
    expect(() => decodeWeights(bin, index, 's3://b/w.bin')).toThrow(/s3:\/\/b\/w.bin: weights.bin \(32 bytes\) does not match its index/);
    expect(() => decodeWeights(bin, { ...index, version: 2 as 1 })).toThrow(/is not agentflow-trial-weights version 1/);
  });
});

describe('parityDifference', () => {
  it('is absolute below 1 and relative above, and infinite for NaN', () => {
    expect(parityDifference([0.5 + 2e-6], [0.5])).toBeCloseTo(2e-6, 12);
    expect(parityDifference([4000.0005], [4000])).toBeCloseTo(0.0005 / 4000, 9);
    expect(parityDifference([4001], [4000])).toBeGreaterThan(1e-5);
    expect(parityDifference([Number.NaN], [1])).toBe(Infinity);
  });
});
