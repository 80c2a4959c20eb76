import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { configToEnv } from '#lib/adapters/config/index.ts';
import { shardKey, EmbedMarker } from '#lib/pipeline/embed/index.ts';
import { openShard } from '#lib/domain/shards/index.ts';
import { ArtifactStore, keys } from '#lib/adapters/store/index.ts';
import { buildManifest, uploadDatasets } from './fixtures/encoders/embedFixture.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();

/** Runs the embed in a child process, the way the Batch job runs, so its memory is measured without the local S3 server's. */
function runProbe(env: Record<string, string>): Promise<{ result: unknown; baselineRssBytes: number; peakRssBytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/encoders/embedMemoryProbe.ts'], { env: { PATH: process.env.PATH, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('close', (status) => {
      if (status !== 0) reject(new Error(`memory probe exited ${status}: ${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!));
    });
  });
}

const ROWS = 200_000;
const DIM = 64;
const BUDGET_BYTES = 4 * 1024 * 1024;

/** A free-text field the encoder does not read: real rows carry such columns, and they are parsed all the same. */
const NOTE = 'lorem ipsum dolor sit amet '.repeat(60);

/** Row i: a vector of DIM values with 3 decimals, a binary label and a note; about 2 KB of JSON. */
function line(i: number): string {
  const values = Array.from({ length: DIM }, (_, j) => (((i * 31 + j * 17) % 2000) - 1000) / 1000);
  return `{"vec":[${values.join(',')}],"flag":${(i * 13) % 3 === 0 ? 1 : 0},"note":"${i} ${NOTE}"}`;
}

describe('runEmbed on a dataset larger than its memory budget', () => {
  it('streams 200k rows through in bounded memory and writes every row', { timeout: 300_000 }, async () => {
    const store = new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket, partSizeBytes: 5 * 1024 * 1024 });
    const datasets = await uploadDatasets(store, 'embed-large', [
      {
        role: 'train',
        name: 'train.jsonl',
        lines: function* () {
          for (let i = 0; i < ROWS; i += 1) yield line(i);
        },
      },
    ]);
    const manifest = await buildManifest(store, {
      runId: 'run-large',
      spec: { project: 'embed-large', baseModel: { kind: 'features', field: 'vec', dimension: DIM }, tasks: [{ name: 'flag', type: 'binary' }] } as never,
      datasets,
    });
    const dataBytes = datasets[0].sizeBytes;
    expect(dataBytes).toBeGreaterThan(300 * 1024 * 1024);

    const manifestUri = (await store.putJson(keys.runManifest(manifest.runId), manifest)).uri;
    const featuresUri = store.uri(keys.featuresPrefix(manifest.featuresDigest));
    const probe = await runProbe({
      ...configToEnv(aws.config),
      PROBE_MANIFEST_URI: manifestUri,
      PROBE_FEATURES_URI: featuresUri,
      PROBE_BATCH_SIZE: '4096',
      PROBE_BUDGET_BYTES: String(BUDGET_BYTES),
    });
    const growth = probe.peakRssBytes - probe.baselineRssBytes;
    console.log(
      `embed-large: ${ROWS} rows, ${(dataBytes / 2 ** 20).toFixed(1)} MiB of JSONL; job rss ${(probe.baselineRssBytes / 2 ** 20).toFixed(0)} MiB before, peak ${(probe.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
    );

    expect(probe.result).toMatchObject({ rows: ROWS, dims: DIM, cached: false });
    // Rows stream in and shards stream out: the job's growth (ORT session, parse garbage, upload
    // buffers) stays well under the data, where holding the rows would take more than the data.
    expect(growth).toBeLessThan(dataBytes / 2);

    const prefix = keys.featuresPrefix(manifest.featuresDigest);
    const marker = await store.getJson(`${prefix}_SUCCESS.json`, EmbedMarker);
    expect(Object.values(marker.splits).reduce((a, b) => a + b, 0)).toBe(ROWS);
    const shard = await openShard(await store.getStream(shardKey(prefix, 'e0', 'validation')), { dim: DIM });
    let rows = 0;
    let largestBatch = 0;
    for await (const batch of shard.batches) {
      rows += batch.rows;
      largestBatch = Math.max(largestBatch, batch.rows);
      const i = batch.rowIndex[0];
      expect(Array.from(batch.features.subarray(0, DIM))).toEqual(JSON.parse(line(i)).vec.map(Math.fround));
      expect(batch.labels.flag[0]).toBe((i * 13) % 3 === 0 ? 1 : 0);
    }
    expect(rows).toBe(marker.splits.validation);
    // The budget, not the requested 4096, set the batch size.
    expect(largestBatch).toBeLessThan(4096);
    expect(largestBatch).toBeGreaterThan(100);
  });
});
