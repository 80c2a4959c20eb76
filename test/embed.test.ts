import * as z from 'zod';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { splitOf, type SplitName, type ValidatedRow } from '#lib/domain/datasets/index.ts';
import { EmbedError, SUCCESS_MARKER, runEmbed, shardKey, splitRouter, EmbedMarker } from '#lib/pipeline/embed/index.ts';
import { encodeRows, loadEncoder } from '#lib/domain/encoders/index.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { SPLITS, denseFeatures, openShard, type ShardBatch } from '#lib/domain/shards/index.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { configToEnv } from '#lib/adapters/config/index.ts';
import { buildManifest, uploadDatasets } from './fixtures/encoders/embedFixture.ts';
import { expectClose } from './helpers/expectClose.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
const storeOf = () => new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket });

const WORDS = ['cheap', 'pills', 'meeting', 'tomorrow', 'invoice', 'attached', 'win', 'prize', 'lunch', 'report'];
const CITIES = ['paris', 'rome', 'oslo'];
const TOPICS = ['work', 'ads', 'home'];

interface Record_ {
  text: string;
  x: number | null;
  city: string;
  spam?: number;
  topic?: string;
  score?: number;
}

/** Row i of a dataset: deterministic, with some labels missing. */
function record(i: number, salt: number): Record_ {
  const words = Array.from({ length: 3 + (i % 4) }, (_, k) => WORDS[(i * 7 + k * 3 + salt) % WORDS.length]);
  return {
    text: words.join(' '),
    x: i % 9 === 0 ? null : ((i * 37 + salt) % 100) / 10,
    city: CITIES[(i + salt) % CITIES.length],
    ...(i % 5 === 4 ? {} : { spam: (i + salt) % 2 }),
    ...(i % 3 === 2 ? {} : { topic: TOPICS[(i + salt) % 3] }),
    score: i % 7 === 3 && i % 5 !== 4 ? undefined : i / 10,
  };
}

const SPEC = {
  project: 'embed-test',
  baseModel: [
    { kind: 'text', field: 'text', minDocumentFrequency: 1 },
    { kind: 'tabular', numeric: ['x'], categorical: ['city'] },
  ],
  split: { validationFraction: 0.2, holdoutFraction: 0.25, seed: 3 },
  tasks: [
    { name: 'spam', type: 'binary' },
    { name: 'topic', type: 'multiclass', classes: TOPICS },
    { name: 'score', type: 'regression' },
  ],
} as const;

const TRAIN_ROWS = 300;
const VALIDATION_ROWS = 40;

async function readAll(store: ArtifactStore, key: string, manifestEncoder: { sha256: string; dimension: number }) {
  const shard = await openShard(await store.getStream(key), { dim: manifestEncoder.dimension, encoderDigest: manifestEncoder.sha256 });
  const batches: ShardBatch[] = [];
  for await (const batch of shard.batches) batches.push(batch);
  return { metadata: shard.metadata, batches };
}

async function prepare(runId: string, project: string): Promise<RunManifest> {
  const store = storeOf();
  const datasets = await uploadDatasets(store, project, [
    { role: 'train', name: 'train.jsonl', lines: () => Array.from({ length: TRAIN_ROWS }, (_, i) => JSON.stringify(record(i, 0))) },
    { role: 'validation', name: 'validation.jsonl', lines: () => Array.from({ length: VALIDATION_ROWS }, (_, i) => JSON.stringify(record(i, 1))) },
  ]);
  return buildManifest(store, { runId, spec: { ...SPEC, project } as never, datasets });
}

describe('splitRouter', () => {
  const base = { split: { validationFraction: 0.2, holdoutFraction: 0.3, seed: 5 } };
  it.each([
    { given: ['train'], expected: { validationFraction: 0.2, holdoutFraction: 0.3 } },
    { given: ['train', 'validation'], expected: { validationFraction: 0, holdoutFraction: 0.3 } },
    { given: ['train', 'holdout'], expected: { validationFraction: 0.2, holdoutFraction: 0 } },
    { given: ['train', 'validation', 'holdout'], expected: { validationFraction: 0, holdoutFraction: 0 } },
  ] as const)('splits train rows only into the roles not given as datasets ($given)', ({ given, expected }) => {
    const route = splitRouter({ ...base, datasets: given.map((role) => ({ role })) as RunManifest['datasets'] });
    for (let i = 0; i < 500; i += 1) expect(route('train', i)).toBe(splitOf(i, { ...expected, seed: 5 }));
    if ((given as readonly string[]).includes('validation')) expect(route('validation', 3)).toBe('validation');
    if ((given as readonly string[]).includes('holdout')) expect(route('holdout', 3)).toBe('holdout');
  });
});

describe('runEmbed', () => {
  it('writes one readable shard per encoder and split with the right rows, features, labels and masks', async () => {
    const store = storeOf();
    const manifest = await prepare('run-embed-1', 'embed-one');
    const featuresUri = store.uri(keys.featuresPrefix(manifest.featuresDigest));
    const result = await runEmbed({ store, manifest, featuresUri, batchSize: 32 });

    expect(result).toEqual({ featuresUri, rows: TRAIN_ROWS + VALIDATION_ROWS, dims: manifest.encoders[0].dimension, shards: 6, cached: false });
    const prefix = keys.featuresPrefix(manifest.featuresDigest);
    const marker = await store.getJson(`${prefix}${SUCCESS_MARKER}`, EmbedMarker);
    const expectedSplit = (i: number): SplitName => splitOf(i, { validationFraction: 0, holdoutFraction: 0.25, seed: 3 });
    const trainSplits = Array.from({ length: TRAIN_ROWS }, (_, i) => expectedSplit(i));
    expect(marker.splits).toEqual({
      train: trainSplits.filter((s) => s === 'train').length,
      validation: VALIDATION_ROWS,
      holdout: trainSplits.filter((s) => s === 'holdout').length,
    });
    expect(marker.splits.holdout).toBeGreaterThan(40);

    for (const entry of manifest.encoders) {
      const encoder = await loadEncoder(await store.getBytes(entry.uri));
      for (const split of SPLITS) {
        const { metadata, batches } = await readAll(store, shardKey(prefix, entry.id, split), entry);
        expect(metadata.tasks).toEqual([
          { name: 'spam', type: 'binary' },
          { name: 'topic', type: 'multiclass', classes: TOPICS },
          { name: 'score', type: 'regression' },
        ]);
        expect(batches.every((b) => b.rows <= 32)).toBe(true);
        const rowIndex = batches.flatMap((b) => [...b.rowIndex]);
        const sourceRows = rowIndex.map((i) => record(i, split === 'validation' ? 1 : 0));
        const wanted = split === 'validation' ? Array.from({ length: VALIDATION_ROWS }, (_, i) => i) : trainSplits.flatMap((s, i) => (s === split ? [i] : []));
        expect(rowIndex).toEqual(wanted);

        const labels = (task: string) => batches.flatMap((b) => [...b.labels[task]]);
        const masks = (task: string) => batches.flatMap((b) => [...b.masks[task]]);
        expect(masks('spam')).toEqual(sourceRows.map((r) => (r.spam === undefined ? 0 : 1)));
        expect(labels('spam')).toEqual(sourceRows.map((r) => r.spam ?? 0));
        expect(masks('topic')).toEqual(sourceRows.map((r) => (r.topic === undefined ? 0 : 1)));
        expect(labels('topic')).toEqual(sourceRows.map((r) => (r.topic === undefined ? 0 : TOPICS.indexOf(r.topic))));
        expect(masks('score')).toEqual(sourceRows.map((r) => (r.score === undefined ? 0 : 1)));
        expect(labels('score')).toEqual(sourceRows.map((r) => Math.fround(r.score ?? 0)));

        const rows: ValidatedRow[] = sourceRows.map((r) => ({ input: { text: r.text, x: r.x, city: r.city }, labels: {} }));
        // Text features stay sparse in the shard; tabular ones are dense, as before.
        expect(metadata.layout).toBe(entry.kind === 'text' ? 'sparse' : 'dense');
        expect(batches.every((b) => (b.sparse !== undefined) === (entry.kind === 'text') && (entry.kind !== 'text' || b.features.length === 0))).toBe(true);
        const features = new Float32Array(batches.reduce((n, b) => n + b.rows * b.dim, 0));
        let offset = 0;
        for (const b of batches) {
          features.set(denseFeatures(b), offset);
          offset += b.rows * b.dim;
        }
        if (entry.kind === 'text') expectClose(features, await encodeRows(encoder, rows), 1e-6);
        else expect(features).toEqual(await encodeRows(encoder, rows));
        expect(marker.encoders.find((e) => e.id === entry.id)!.shards[split].rows).toBe(rowIndex.length);
      }
      await encoder.release();
    }
  });

  it('skips the work when the features prefix already holds a complete set', async () => {
    const store = storeOf();
    const manifest = await prepare('run-embed-2', 'embed-two');
    const featuresUri = store.uri(keys.featuresPrefix(manifest.featuresDigest));
    const first = await runEmbed({ store, manifest, featuresUri });
    const before = await store.list(keys.featuresPrefix(manifest.featuresDigest));
    const second = await runEmbed({ store, manifest: { ...manifest, encoders: [] }, featuresUri });

    expect(second).toEqual({ ...first, cached: true });
    expect(await store.list(keys.featuresPrefix(manifest.featuresDigest))).toEqual(before);
  });

  it('fails without a success marker when a dataset changed after Prepare', async () => {
    const store = storeOf();
    const manifest = await prepare('run-embed-3', 'embed-three');
    const changed = { ...manifest, datasets: manifest.datasets.map((d) => (d.role === 'validation' ? { ...d, digest: '0'.repeat(64) } : d)) };
    const featuresUri = store.uri(keys.featuresPrefix('changed'));
    const error = await runEmbed({ store, manifest: changed, featuresUri }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(EmbedError);
    expect((error as EmbedError).code).toBe('EMBED_DATASET_CHANGED');
    expect((error as EmbedError).message).toMatch(/validation\.jsonl has sha256 [0-9a-f]{64}, but Prepare recorded 0{64}/);
    expect(await store.exists(`${keys.featuresPrefix('changed')}${SUCCESS_MARKER}`)).toBe(false);
  });

  it('refuses an encoder overwritten after Prepare and a budget too small for one row', async () => {
    const store = storeOf();
    const manifest = await prepare('run-embed-4', 'embed-four');
    const featuresUri = store.uri(keys.featuresPrefix('mismatch'));
    const tampered = { ...manifest, encoders: manifest.encoders.map((e, i) => (i === 1 ? { ...e, sha256: 'f'.repeat(64) } : e)) };
    await expect(runEmbed({ store, manifest: tampered, featuresUri })).rejects.toThrow(
      /encoder e1 at .* has sha256 [0-9a-f]{64}, but the manifest records f{64}/,
    );
    await expect(runEmbed({ store, manifest, featuresUri, memoryBudgetBytes: 1000 })).rejects.toThrow(/memoryBudgetBytes 1000 cannot hold one row per split/);
  });
});

describe('embed job command', () => {
  // Asynchronous: the local S3 runs in this process and must keep answering while the job runs.
  const runJob = (env: Record<string, string>) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'functions/jobs/embed.ts'], { env: { PATH: process.env.PATH, ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });

  it('embeds from its environment and writes the EmbedJobResult to the output URI', async () => {
    const store = storeOf();
    const manifest = await prepare('run-embed-job', 'embed-job');
    const manifestStored = await store.putJson(keys.runManifest(manifest.runId), manifest);
    // The same data and encoders as the first test: a fresh prefix, or the job would find that test's shards.
    const featuresUri = store.uri(keys.featuresPrefix(`job-${manifest.featuresDigest}`));
    const outputUri = store.uri(keys.runFile(manifest.runId, 'embed/result.json'));
    const env = {
      ...configToEnv(aws.config),
      AGENTFLOW_RUN_ID: manifest.runId,
      AGENTFLOW_PROJECT: manifest.project,
      AGENTFLOW_MANIFEST_URI: manifestStored.uri,
      AGENTFLOW_FEATURES_URI: featuresUri,
      AGENTFLOW_OUTPUT_URI: outputUri,
    };
    const run = await runJob(env);
    expect(run.stderr).not.toMatch(/failed/);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toMatchObject({ cached: false });
    expect(await store.getJson(outputUri, z.unknown())).toEqual({
      featuresUri,
      rows: TRAIN_ROWS + VALIDATION_ROWS,
      dims: manifest.encoders[0].dimension,
      shards: 6,
      cached: false,
    });

    const missing = await runJob({ ...env, AGENTFLOW_MANIFEST_URI: '' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/embed job failed: EnvironmentError: .*AGENTFLOW_MANIFEST_URI/s);
  });
});
