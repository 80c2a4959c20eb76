import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';

import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { encoderDescriptor, encoderFeeds, fitEncoder, loadEncoder, mergeEncoderAndHeads } from '#lib/domain/encoders/index.ts';
import { denseFeatures, piecedSparse, type ShardBatch, type SparseRow } from '#lib/domain/shards/index.ts';
import type { Spec, TextBaseModelSpec } from '#lib/domain/spec/index.ts';
import { generateTextCorpus } from '#lib/domain/synth/index.ts';
import { TrainingSession } from '#lib/domain/graph/index.ts';
import {
  FEATURES_INPUT,
  batchFeeds,
  buildHeads,
  buildHeadsTrainingStep,
  buildInferenceGraph,
  evaluateSplit,
  exportHeads,
  parityDifference,
  sparseLayerOptimizer,
  trainTrial,
  trainingForward,
} from '#lib/domain/train/index.ts';
import { featuresSpec } from './helpers/specs.ts';

/**
 * Heads trained on sparse TF-IDF rows (the embedding-bag first layer) learn, train the same
 * weights as on the same rows densified, and export to a model that takes raw text and gives
 * what the trained heads give on the training-time features.
 */

const TASKS = ['spam', 'urgent'] as const;
const TRAIN = 900;
const corpus = generateTextCorpus({ documents: 1200, vocabulary: 3000, tokens: [40, 120], seed: 11 });
const rows: ValidatedRow[] = corpus.records.map((r) => ({ input: { text: r.text }, labels: { spam: Number(r.spam), urgent: Number(r.urgent) } }));
const textSpec: TextBaseModelSpec = { kind: 'text', field: 'text', ngramRange: [1, 2], vocabularySize: 4000, minDocumentFrequency: 2, lowercase: true };

let encoderModel: Uint8Array;
let dim: number;
let sparse: SparseRow[];

beforeAll(async () => {
  encoderModel = (
    await fitEncoder(textSpec, async function* () {
      yield* rows.slice(0, TRAIN);
    })
  ).model;
  const encoder = await loadEncoder(encoderModel);
  dim = encoder.dimension;
  sparse = encoder.encodeSparse(rows);
  await encoder.release();
});

/** With `shortRows`, three rows in four keep only their first three terms: a batch of mixed lengths, which the training step cuts into pieces. */
function batchOf(from: number, to: number, layout: 'sparse' | 'dense', options: { shortRows?: boolean } = {}): ShardBatch {
  const rowsSparse = sparse
    .slice(from, to)
    .map((row, i) => (options.shortRows && i % 4 !== 0 ? { indices: row.indices.subarray(0, 3), values: row.values.subarray(0, 3) } : row));
  const labels = Object.fromEntries(TASKS.map((t) => [t, Float32Array.from(rows.slice(from, to), (r) => r.labels[t] as number)]));
  const masks = Object.fromEntries(TASKS.map((t) => [t, new Uint8Array(to - from).fill(1)]));
  const common = { rows: to - from, dim, labels, masks, rowIndex: Int32Array.from({ length: to - from }, (_, i) => from + i) };
  return layout === 'sparse'
    ? { ...common, features: new Float32Array(0), sparse: rowsSparse }
    : { ...common, features: denseFeatures({ rows: to - from, dim, features: new Float32Array(0), sparse: rowsSparse }) };
}

function source(from: number, to: number, layout: 'sparse' | 'dense'): () => AsyncIterable<ShardBatch> {
  return async function* () {
    // Two record batches, as a shard of several would give.
    const middle = Math.floor((from + to) / 2);
    yield batchOf(from, middle, layout);
    yield batchOf(middle, to, layout);
  };
}

function specFor(architecture: 'shared-bottom' | 'mmoe'): Spec {
  return featuresSpec({
    dimension: 1,
    tasks: TASKS.map((name) => ({ name, type: 'binary' as const, metric: 'auc' as const })),
    model: { architecture, hidden: [32], towerHidden: [8], experts: 2, expertHidden: 16 },
    training: { epochs: 8, batchSize: 64, learningRate: 1e-2, seed: 5, earlyStoppingPatience: 0 },
  });
}

const train = (spec: Spec, layout: 'sparse' | 'dense') =>
  trainTrial({
    spec,
    encoder: { id: 'text', dimension: dim },
    proposal: { lambda: { spam: 1, urgent: 1 } },
    data: { train: source(0, TRAIN, layout), validation: source(TRAIN, rows.length, layout) },
    options: { intraOpNumThreads: 1 },
  });

describe('training on sparse TF-IDF rows', () => {
  // Label noise and chance mentions cap a perfect reader at about 0.96 AUC here; chance is 0.5.
  it.each(['shared-bottom', 'mmoe'] as const)('%s: learns both tasks from the few words that decide them', async (architecture) => {
    const trained = await train(specFor(architecture), 'sparse');

    expect(trained.metrics.spam.auc).toBeGreaterThan(0.85);
    expect(trained.metrics.urgent.auc).toBeGreaterThan(0.85);
  });

  it('gives the sparse layer a momentum-SGD rate that grows with the batch, and refuses a batch that is not a row count', () => {
    const spec = specFor('shared-bottom');
    const layer = (batchSize: number) =>
      buildHeads({ architecture: 'shared-bottom', model: spec.model, tasks: spec.tasks, inputDim: dim, seed: 3, sparseInput: true, batchSize }).parameters.find(
        (p) => p.name === 'bottom.0.weight',
      )!;

    expect(layer(256)).toMatchObject({ eps: 0.1, learningRateScale: 100 });
    expect(layer(64)).toMatchObject({ eps: 0.1, learningRateScale: 25 });
    expect(() => layer(0)).toThrow(/batchSize 0 must be a positive integer; fix training.batchSize/);
  });

  it.each(['shared-bottom', 'mmoe'] as const)(
    '%s: the embedding-bag step (rows cut into pieces where their lengths differ) trains the weights a dense MatMul step trains on the same rows',
    async (architecture) => {
      const spec = specFor(architecture);
      const options = { architecture, model: spec.model, tasks: spec.tasks, inputDim: dim, seed: 3 };
      const sparseHeads = buildHeads({ ...options, sparseInput: true });
      const denseHeads = buildHeads(options);
      // The same optimizer settings per parameter, so the two steps differ only in how the first layer reads the rows.
      const denseSame = { ...denseHeads, parameters: sparseHeads.parameters };
      const sessions = await Promise.all(
        [sparseHeads, denseSame].map((heads) => TrainingSession.create(buildHeadsTrainingStep(heads), { intraOpNumThreads: 1 })),
      );

      for (let from = 0; from < 320; from += 64) {
        // Every other batch mixes lengths, so the sparse step's rows go in as several pieces each.
        const shortRows = from % 128 === 64;
        const sparseBatch = batchOf(from, from + 64, 'sparse', { shortRows });
        const denseBatch = batchOf(from, from + 64, 'dense', { shortRows });
        if (shortRows) expect(piecedSparse(sparseBatch.sparse!).pieces).toBeGreaterThan(sparseBatch.rows);
        await sessions[0].step(batchFeeds(sparseHeads, sparseBatch), { lambda: [1, 1], learningRate: 1e-2 });
        await sessions[1].step(batchFeeds(denseSame, denseBatch), { lambda: [1, 1], learningRate: 1e-2 });
      }

      const [onSparse, onDense] = sessions.map((session) => session.parameters());
      const overFeatures = sparseHeads.parameters.filter((p) => p.eps !== undefined);
      expect(overFeatures.map((p) => p.name)).toEqual(architecture === 'mmoe' ? ['experts.weight', 'gates.weight'] : ['bottom.0.weight']);
      for (const p of overFeatures) expect({ eps: p.eps, learningRateScale: p.learningRateScale }).toEqual(sparseLayerOptimizer(256));
      expect(denseHeads.parameters.some((p) => p.eps !== undefined || p.learningRateScale !== undefined)).toBe(false);
      for (const [name, values] of Object.entries(onDense)) expect(parityDifference(onSparse[name], values), name).toBeLessThan(1e-5);
      expect(parityDifference(onSparse[sparseHeads.parameters[0].name], sparseHeads.parameters[0].init)).toBeGreaterThan(1e-3);
      await Promise.all(sessions.map((session) => session.release()));
    },
  );

  it('evaluates rows cut into pieces as it evaluates them padded', async () => {
    const spec = specFor('mmoe');
    const heads = buildHeads({ architecture: 'mmoe', model: spec.model, tasks: spec.tasks, inputDim: dim, seed: 3, sparseInput: true });
    const parameters = Object.fromEntries(heads.parameters.map((p) => [p.name, new ort.Tensor('float32', p.init, [...p.shape])]));
    const batches = async function* () {
      for (let from = TRAIN; from < TRAIN + 192; from += 64) yield batchOf(from, from + 64, 'sparse', { shortRows: true });
    };

    const [pieces, padded] = await Promise.all(
      (['pieces', 'sparse'] as const).map(async (input) => {
        const session = await ort.InferenceSession.create(buildInferenceGraph(heads, { input }));
        const metrics = await evaluateSplit({ heads, session, parameters, batches: batches() });
        await session.release();
        return metrics;
      }),
    );

    for (const task of TASKS) expect(pieces[task].auc).toBeCloseTo(padded[task].auc!, 6);
    expect(piecedSparse(batchOf(TRAIN, TRAIN + 64, 'sparse', { shortRows: true }).sparse!).pieces).toBeGreaterThan(64);
  });

  it('exports a model that takes raw text and gives what the trained heads give on the sparse training features', async () => {
    const spec = specFor('mmoe');
    const trained = await train(spec, 'sparse');
    const heads = exportHeads({ spec, encoder: { id: 'text', dimension: dim }, weights: trained.weights });
    const merged = mergeEncoderAndHeads(encoderModel, heads, { featureInput: FEATURES_INPUT });
    const held = batchOf(TRAIN, rows.length, 'sparse');

    const expected = await trainingForward({ spec, weights: trained.weights, batch: held });
    const session = await ort.InferenceSession.create(merged);
    const actual = await session.run(encoderFeeds(encoderDescriptor(merged), rows.slice(TRAIN)));
    await session.release();

    expect(session.inputNames).toEqual(['text']);
    for (const task of TASKS) {
      const name = `${task}.probability`;
      expect(parityDifference(actual[name].data as Float32Array, expected[name])).toBeLessThan(1e-5);
    }
  });
});
