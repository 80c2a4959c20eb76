import * as z from 'zod';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalSession, runPipelineLocally, type LocalSession } from '#lib/adapters/local/index.ts';
import { encoderDescriptor, encoderFeeds } from '#lib/domain/encoders/index.ts';
import { mulberry32 } from '#lib/domain/random/index.ts';
import { ModelCard, RunManifest } from '#lib/domain/run/index.ts';
import type { SpecInput } from '#lib/domain/spec/index.ts';
import { embeddingParameter, parityDifference, trainingForward } from '#lib/domain/train/index.ts';
import { TrialJobResult } from '#lib/pipeline/contracts.ts';
import { loadTrialWeights, weightsIndexUri, WeightsIndex } from '#lib/pipeline/trials/weights.ts';
import {
  DriftReferenceSchema,
  SampleBatch,
  createServeContext,
  driftProjection,
  hourKey,
  infer,
  projectRows,
  runMonitor,
  samplePrefix,
} from '#lib/serve/index.ts';
import { driftSeed } from '#lib/serve/drift.ts';
import { readLiveModel } from '#lib/pipeline/export/liveModel.ts';

/*
 * A whole local run on a table whose `merchant` column has 200 levels, four times the one-hot cap:
 * Prepare embeds it, the trials learn its table, Export merges the heads behind the encoder, and
 * the served model answers raw records, an unseen merchant included.
 */
const PROJECT = 'merchants';
const MERCHANTS = 200;
const quiet = { info() {}, warn() {}, error() {} };

let folder: string;
let session: LocalSession;
let runId: string;
let card: ModelCard;

function dataset(rows: number): string {
  const random = mulberry32(21);
  const risks = Array.from({ length: MERCHANTS }, () => (random() - 0.5) * 6);
  const lines: string[] = [];
  for (let r = 0; r < rows; r += 1) {
    const merchant = Math.floor(random() * MERCHANTS);
    const amount = Math.round((random() * 2 - 1) * 1e4) / 1e4;
    const logit = risks[merchant] + amount;
    lines.push(JSON.stringify({ merchant: `m${merchant}`, amount, churn: random() < 1 / (1 + Math.exp(-logit)) ? 1 : 0 }));
  }
  return `${lines.join('\n')}\n`;
}

const spec: SpecInput = {
  project: PROJECT,
  baseModel: { kind: 'tabular', numeric: ['amount'], categorical: ['merchant'] },
  datasets: { train: 'train.jsonl' },
  tasks: [{ name: 'churn', type: 'binary' }],
  model: { hidden: [16], towerHidden: [8] },
  training: { epochs: 6, batchSize: 128, learningRate: 1e-2 },
  tuning: { strategy: 'pgpe', generations: 1, population: 2, maxConcurrency: 2 },
};

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-merchants-'));
  await writeFile(join(folder, 'train.jsonl'), dataset(4000));
  await writeFile(join(folder, 'spec.json'), JSON.stringify(spec));
  session = await openLocalSession({ dir: join(folder, 'aws') });
  const run = await runPipelineLocally(session, { specPath: join(folder, 'spec.json'), onJobOutput: () => {} });
  if (run.result.status !== 'SUCCEEDED') throw new Error(`the run failed: ${run.result.error}: ${run.result.cause}`);
  runId = run.runId;
  const version = await session.deps.registry.findVersionByRun(PROJECT, runId);
  card = await session.deps.store.getJson(version!.lineage.cardUri!, ModelCard);
}, 300_000);

afterAll(async () => {
  await session?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('a run on a table with a high-cardinality categorical', () => {
  it('embeds the column from Prepare to the served prediction, with the layout in the manifest and the trial weights', { timeout: 120_000 }, async () => {
    const { store } = session.deps;
    const manifest = await store.getJson(`runs/${runId}/manifest.json`, RunManifest);
    const [encoder] = manifest.encoders;
    const result = TrialJobResult.parse(await store.getJson(`runs/${runId}/trials/${card.lineage.bestTrialId}/result.json`, z.unknown()));
    if (result.status !== 'succeeded') throw new Error('the best trial did not succeed');
    const index = await store.getJson(weightsIndexUri(result.weightsUri), WeightsIndex);

    // amount (standard), then merchant's index feature; every level seen twice or more in train is kept.
    expect(encoder.dimension).toBe(2);
    expect(encoder.categoryEmbeddings).toHaveLength(1);
    expect(encoder.categoryEmbeddings![0]).toMatchObject({ column: 'merchant', feature: 1, dimension: 16 });
    expect(encoder.categoryEmbeddings![0].levels).toBeGreaterThan(150);
    expect(index.categoryEmbeddings).toEqual(encoder.categoryEmbeddings);
    expect(index.parameters.find((p) => p.name === embeddingParameter('merchant'))?.shape).toEqual([encoder.categoryEmbeddings![0].levels, 16]);
    expect(card.metrics.holdout.churn.auc).toBeGreaterThan(0.7);
    expect(card.hyperparameters?.categoryEmbeddings).toEqual({ merchant: { levels: encoder.categoryEmbeddings![0].levels, dimension: 16 } });

    const records = [
      { merchant: 'm7', amount: 0.2 },
      { merchant: 'm150', amount: -0.4 },
      { merchant: 'a merchant never seen', amount: 0.1 },
      { merchant: null, amount: 0.1 },
    ];
    const context = createServeContext(session.deps, { drift: false, metricsSink: () => {}, logger: quiet });
    const served = await infer({ project: PROJECT, records }, context).finally(() => context.close());

    // What the trained heads give on the run's encoder features for the same records.
    const rows = records.map((input) => ({ input, labels: {} }));
    const descriptor = encoderDescriptor(await store.getBytes(card.model.uri));
    const encoderSession = await ort.InferenceSession.create(await store.getBytes(encoder.uri));
    const features = (await encoderSession.run(encoderFeeds(descriptor, rows)))[descriptor.output].data as Float32Array;
    await encoderSession.release();
    const weights = await loadTrialWeights(store, result.weightsUri);
    const trained = await trainingForward({ spec: manifest.spec, weights, batch: { features, rows: records.length } });

    expect(served.predictions).toHaveLength(records.length);
    const probabilities = served.predictions.map((p) => (p.outputs.churn as { probability: number }).probability);
    expect(parityDifference(probabilities, trained['churn.probability'])).toBeLessThan(1e-5);
    // The unseen and the missing merchant share row 0 and differ only through the amount, here equal.
    expect(probabilities[2]).toBe(probabilities[3]);
  });

  it(
    "is monitored for drift on its other features: the reference and the served samples leave the merchant's level index out alike",
    { timeout: 120_000 },
    async () => {
      const { store } = session.deps;
      const manifest = await store.getJson(`runs/${runId}/manifest.json`, RunManifest);
      const [encoder] = manifest.encoders;
      expect(card.encoder.categoryEmbeddings).toEqual(encoder.categoryEmbeddings);

      // Export's reference: amount only, projected as a one-feature encoder's output would be.
      const live = (await readLiveModel(store, PROJECT, card.version))!;
      const reference = await store.getJson(live.reference!.uri, DriftReferenceSchema);
      expect(reference).toMatchObject({ dimension: 2, excludedFeatures: [1], seed: driftSeed(1) });

      // Served traffic that all goes to one merchant, its amounts drawn as in training.
      const atMs = Date.now();
      const random = mulberry32(33);
      const records = Array.from({ length: 300 }, () => ({ merchant: 'm7', amount: Math.round((random() * 2 - 1) * 1e4) / 1e4 }));
      const context = createServeContext(session.deps, {
        drift: { sampleRate: 1, batchRecords: 300 },
        clock: () => atMs,
        metricsSink: () => {},
        logger: quiet,
      });
      for (let sent = 0; sent < records.length; sent += 100) await infer({ project: PROJECT, records: records.slice(sent, sent + 100) }, context);
      await context.close();

      const [sample] = await store.list(samplePrefix(PROJECT, hourKey(atMs), card.version));
      const batch = await store.getJson(sample.key, SampleBatch);
      expect(batch).toMatchObject({ dimension: reference.dimension, excludedFeatures: reference.excludedFeatures, seed: reference.seed });
      // The sampler's projections are the reference's projection of the encoder's features for the same records.
      const descriptor = encoderDescriptor(await store.getBytes(card.model.uri));
      const encoderSession = await ort.InferenceSession.create(await store.getBytes(encoder.uri));
      const features = (
        await encoderSession.run(
          encoderFeeds(
            descriptor,
            records.map((input) => ({ input, labels: {} })),
          ),
        )
      )[descriptor.output].data as Float32Array;
      await encoderSession.release();
      const expected = projectRows(features, driftProjection({ dimension: 2, excludedFeatures: [1] }));
      expect(batch.projections).toHaveLength(records.length);
      batch.projections.forEach((row, i) => row.forEach((value, k) => expect(value).toBeCloseTo(expected[i][k], 5)));

      // One merchant instead of two hundred is no input drift: the level mix is not a magnitude.
      const report = await runMonitor(session.deps, {
        now: new Date(atMs),
        projects: [PROJECT],
        startRun: async () => ({}),
        logger: quiet,
        metricsSink: () => {},
      });
      const drift = report.projects[0].versions[0].drift;
      expect(drift).toMatchObject({ samples: 300, excludedFeatures: [1] });
      expect('maxPsi' in drift && drift.maxPsi).toBeLessThan(0.2);
    },
  );
});
