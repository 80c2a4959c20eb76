import * as z from 'zod';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelCard, RunManifest } from '#lib/domain/run/index.ts';
import { encoderDescriptor, encoderFeeds } from '#lib/domain/encoders/index.ts';
import { openLocalSession, runPipelineLocally, type LocalSession } from '#lib/adapters/local/index.ts';
import { parityDifference, trainingForward } from '#lib/domain/train/index.ts';
import { loadTrialWeights } from '#lib/pipeline/trials/weights.ts';
import { TrialJobResult } from '#lib/pipeline/contracts.ts';

let folder: string;
let session: LocalSession;
let card: ModelCard;
let runId: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-text-'));
  const spec = JSON.parse(await readFile(resolve('examples/support-triage/spec.json'), 'utf8'));
  spec.model = { ...spec.model, architecture: 'mmoe' };
  spec.training = { ...spec.training, epochs: 4 };
  spec.tuning = { ...spec.tuning, generations: 1, population: 2 };
  spec.tasks = spec.tasks.map((task: Record<string, unknown>) => ({ ...task, floor: undefined }));
  await copyFile(resolve('examples/support-triage/train.jsonl'), join(folder, 'train.jsonl'));
  await writeFile(join(folder, 'spec.json'), JSON.stringify(spec));
  session = await openLocalSession({ dir: join(folder, 'data') });
  const run = await runPipelineLocally(session, { specPath: join(folder, 'spec.json'), onJobOutput: () => {} });
  if (run.result.status !== 'SUCCEEDED') throw new Error(`the run failed: ${run.result.error}: ${run.result.cause}`);
  runId = run.runId;
  const version = await session.deps.registry.findVersionByRun('support-triage', runId);
  card = await session.deps.store.getJson(version!.lineage.cardUri!, ModelCard);
}, 180_000);

afterAll(async () => {
  await session?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('a model trained from raw text', () => {
  it('exports one file that a fresh ONNX Runtime session runs on raw strings, reproducing encoder-then-trainer predictions', async () => {
    const { store } = session.deps;
    const model = await store.getBytes(card.model.uri);
    const descriptor = encoderDescriptor(model);
    const texts = ['the card payment failed twice, urgent please', 'how do I change the delivery address', 'two factor codes never arrive', ''];
    const rows = texts.map((text) => ({ input: { text }, labels: {} }));
    const fresh = await ort.InferenceSession.create(model);
    const served = await fresh.run(encoderFeeds(descriptor, rows));
    await fresh.release();

    // The trainer's own forward pass on the embeddings the run's encoder produces for the same strings.
    const manifest = await store.getJson(`runs/${runId}/manifest.json`, RunManifest);
    const encoder = await ort.InferenceSession.create(await store.getBytes(manifest.encoders[0].uri));
    const embedding = (await encoder.run(encoderFeeds(descriptor, rows)))[descriptor.output];
    await encoder.release();
    const result = TrialJobResult.parse(await store.getJson(`runs/${runId}/trials/${card.lineage.bestTrialId}/result.json`, z.unknown()));
    if (result.status !== 'succeeded') throw new Error('the best trial did not succeed');
    const weights = await loadTrialWeights(store, result.weightsUri);
    const trainer = await trainingForward({ spec: manifest.spec, weights, batch: { features: embedding.data as Float32Array, rows: texts.length } });

    expect(descriptor.inputs.map((input) => input.role)).toEqual(['text']);
    expect(card.architecture).toBe('mmoe');
    for (const output of ['urgent.probability', 'category.probabilities', 'hours.value']) {
      expect(parityDifference(served[output].data as Float32Array, trainer[output]), output).toBeLessThanOrEqual(1e-5);
    }
    expect((served['category.probabilities'].data as Float32Array).length).toBe(texts.length * 4);
  });
});
