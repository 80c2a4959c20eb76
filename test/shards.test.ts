import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Bool, FixedSizeList, Field, Float32, Int64, RecordBatchReader, Table, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  batchesOf,
  METADATA_KEYS,
  openShard,
  readShard,
  ShardError,
  ShardWriter,
  shuffleBuffer,
  SPLITS,
  type ShardBatch,
  type ShardTask,
} from '#lib/domain/shards/index.ts';
import { generateMultiTask, type MultiTaskDataset } from '#lib/domain/synth/index.ts';
import { mulberry32 } from '#lib/domain/random/index.ts';

const DIM = 64;
const ROWS = 10_000;
const SOURCE_BATCH = 3_000;

async function* chunksOf(bytes: Uint8Array, chunkBytes = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes) yield bytes.subarray(offset, offset + chunkBytes);
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

function concatBatches(batches: ShardBatch[], tasks: readonly ShardTask[]): Omit<ShardBatch, 'dim'> {
  const rows = batches.reduce((n, b) => n + b.rows, 0);
  const cat = <A extends Float32Array | Uint8Array | Int32Array>(make: (n: number) => A, pick: (b: ShardBatch) => A, width = 1): A => {
    const out = make(rows * width);
    let offset = 0;
    for (const b of batches) {
      out.set(pick(b), offset);
      offset += b.rows * width;
    }
    return out;
  };
  return {
    rows,
    features: cat(
      (n) => new Float32Array(n),
      (b) => b.features,
      batches[0].dim,
    ),
    labels: Object.fromEntries(
      tasks.map((t) => [
        t.name,
        cat(
          (n) => new Float32Array(n),
          (b) => b.labels[t.name],
        ),
      ]),
    ),
    masks: Object.fromEntries(
      tasks.map((t) => [
        t.name,
        cat(
          (n) => new Uint8Array(n),
          (b) => b.masks[t.name],
        ),
      ]),
    ),
    rowIndex: cat(
      (n) => new Int32Array(n),
      (b) => b.rowIndex,
    ),
    split: batches[0].split
      ? cat(
          (n) => new Uint8Array(n),
          (b) => b.split!,
        )
      : undefined,
  };
}

type NumericArray = Float32Array | Uint8Array | Int32Array;

/** Element-wise equality that stays fast on 640k-element arrays and reports the first difference. */
function expectSameValues(actual: NumericArray | undefined, expected: NumericArray, what: string): void {
  expect(actual, what).toBeDefined();
  expect(actual!.length, `${what} length`).toBe(expected.length);
  const first = expected.findIndex((value: number, i: number) => !Object.is(actual![i], value));
  expect(first === -1 ? null : { what, index: first, actual: actual![first], expected: expected[first] }).toBeNull();
}

function splitOfRow(row: number): number {
  return row % 10 < 8 ? 0 : row % 10 === 8 ? 1 : 2;
}

/** Writes `data` as a shard in batches of `batchRows`, returning the bytes and the writer's summary. */
async function writeShard(data: MultiTaskDataset, options: { batchRows: number; includeSplit: boolean }) {
  const writer = new ShardWriter({ dim: data.dim, tasks: data.tasks, encoderDigest: 'sha256:encoder-1', includeSplit: options.includeSplit });
  const collected = collect(writer.output!);
  for (let start = 0; start < data.rows; start += options.batchRows) {
    const end = Math.min(data.rows, start + options.batchRows);
    await writer.writeRows({
      rows: end - start,
      features: data.features.subarray(start * data.dim, end * data.dim),
      labels: Object.fromEntries(data.tasks.map((t) => [t.name, data.labels[t.name].subarray(start, end)])),
      masks: Object.fromEntries(data.tasks.map((t) => [t.name, data.masks[t.name].subarray(start, end)])),
      ...(options.includeSplit ? { split: Uint8Array.from({ length: end - start }, (_, i) => splitOfRow(start + i)) } : {}),
    });
  }
  const summary = await writer.finish();
  const bytes = Buffer.concat(await collected);
  return { bytes, summary, writer };
}

describe('feature shards', () => {
  let data: MultiTaskDataset;
  let shard: Awaited<ReturnType<typeof writeShard>>;

  beforeAll(async () => {
    data = generateMultiTask({
      rows: ROWS,
      dim: DIM,
      seed: 17,
      missingLabelRate: { click: 0.3, topic: 0.5 },
      tasks: [
        { name: 'click', type: 'binary' },
        { name: 'topic', type: 'multiclass', classes: ['news', 'sport', 'tech'] },
        { name: 'dwell', type: 'regression' },
      ],
    });
    shard = await writeShard(data, { batchRows: SOURCE_BATCH, includeSplit: true });
  });

  it('round-trips 10k rows × 64 dims across several record batches exactly', async () => {
    const batches = await collect(readShard(chunksOf(shard.bytes)));
    expect(batches.map((b) => b.rows)).toEqual([3000, 3000, 3000, 1000]);
    const all = concatBatches(batches, data.tasks);
    expectSameValues(all.features, data.features, 'features');
    for (const task of data.tasks) {
      expectSameValues(all.labels[task.name], data.labels[task.name], `labels.${task.name}`);
      expectSameValues(all.masks[task.name], data.masks[task.name], `masks.${task.name}`);
    }
    expectSameValues(
      all.rowIndex,
      Int32Array.from({ length: ROWS }, (_, i) => i),
      'rowIndex',
    );
    expectSameValues(
      all.split,
      Uint8Array.from({ length: ROWS }, (_, i) => splitOfRow(i)),
      'split',
    );
  });

  it('keeps the masks: missing labels come back as mask 0 at the requested rate', async () => {
    const batches = await collect(readShard(chunksOf(shard.bytes)));
    const { masks } = concatBatches(batches, data.tasks);
    const missing = (task: string) => masks[task].filter((m) => m === 0).length / ROWS;
    expect(missing('click')).toBeCloseTo(0.3, 1);
    expect(missing('topic')).toBeCloseTo(0.5, 1);
    expect(missing('dwell')).toBe(0);
  });

  it('reports rows, size and the SHA-256 of exactly the bytes it emitted', () => {
    expect(shard.summary).toEqual({
      rows: ROWS,
      sizeBytes: shard.bytes.byteLength,
      sha256: createHash('sha256').update(shard.bytes).digest('hex'),
    });
    // Features dominate: 10k × 64 × 4 bytes, plus labels, masks, rows and framing.
    expect(shard.summary.sizeBytes).toBeGreaterThan(ROWS * DIM * 4);
    expect(shard.summary.sizeBytes).toBeLessThan(ROWS * DIM * 4 * 1.1);
  });

  it('stores dimension, tasks and encoder digest as schema metadata', async () => {
    const opened = await openShard(chunksOf(shard.bytes));
    expect(opened.metadata).toEqual({
      formatVersion: 1,
      dim: DIM,
      layout: 'dense',
      tasks: [
        { name: 'click', type: 'binary' },
        { name: 'topic', type: 'multiclass', classes: ['news', 'sport', 'tech'] },
        { name: 'dwell', type: 'regression' },
      ],
      encoderDigest: 'sha256:encoder-1',
      hasSplit: true,
    });
    expect(opened.metadata).toEqual(shard.writer.metadata);
  });

  it('hands the trainer features as contiguous rows × dim Float32Array views', async () => {
    const [first] = await collect(readShard(chunksOf(shard.bytes, 1 << 20)));
    expect(first.features).toBeInstanceOf(Float32Array);
    expect(first.features).toHaveLength(SOURCE_BATCH * DIM);
    expect(first.features.byteOffset % 4).toBe(0);
    expect(first.features[5 * DIM + 7]).toBe(data.features[5 * DIM + 7]);
  });

  it('is ordinary Arrow: a plain RecordBatchReader reads columns, types and metadata', async () => {
    const reader = await RecordBatchReader.from(chunksOf(shard.bytes));
    // autoDestroy off so the reader still knows how many dictionaries it saw after the last batch.
    await reader.open({ autoDestroy: false });
    expect(reader.schema.fields.map((f) => `${f.name}: ${String(f.type)}`)).toEqual([
      'row: Int32',
      'features: FixedSizeList[64]<Float32>',
      'label.click: Float32',
      'mask.click: Uint8',
      'label.topic: Float32',
      'mask.topic: Uint8',
      'label.dwell: Float32',
      'mask.dwell: Uint8',
      'split: Dictionary<Int8, Utf8>',
    ]);
    expect(reader.schema.metadata.get(METADATA_KEYS.dim)).toBe('64');
    expect(JSON.parse(reader.schema.metadata.get(METADATA_KEYS.tasks)!)).toHaveLength(3);
    const batches = await collect(reader);
    const table = new Table(batches);
    expect(table.numRows).toBe(ROWS);
    expect(Array.from(table.getChild('features')!.get(9_999) as Float32Array)).toEqual(Array.from(data.features.subarray(9_999 * DIM)));
    expect(table.getChild('label.topic')!.get(4_321)).toBe(data.labels.topic[4_321]);
    expect(table.getChild('split')!.get(8)).toBe('validation');
    expect(table.getChild('split')!.get(19)).toBe('holdout');
    // The split dictionary travels once, not once per batch.
    expect(reader.numDictionaries).toBe(1);
  });

  it('streams to a Node Writable sink and back from a Node Readable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'agentflow-shards-'));
    try {
      const path = join(dir, 'part-0000.arrow');
      const writer = new ShardWriter({ dim: data.dim, tasks: data.tasks, encoderDigest: 'sha256:encoder-1', sink: createWriteStream(path) });
      for (const start of [0, 4_000]) {
        const end = start + 4_000;
        await writer.writeRows({
          rows: 4_000,
          features: data.features.slice(start * DIM, end * DIM),
          labels: Object.fromEntries(data.tasks.map((t) => [t.name, data.labels[t.name].slice(start, end)])),
          masks: Object.fromEntries(data.tasks.map((t) => [t.name, data.masks[t.name].slice(start, end)])),
        });
      }
      const summary = await writer.finish();
      const onDisk = await readFile(path);
      expect(summary).toEqual({ rows: 8_000, sizeBytes: onDisk.byteLength, sha256: createHash('sha256').update(onDisk).digest('hex') });

      const batches = await collect(readShard(createReadStream(path, { highWaterMark: 100_000 }), { dim: DIM }));
      const all = concatBatches(batches, data.tasks);
      expectSameValues(all.features, data.features.subarray(0, 8_000 * DIM), 'features');
      expectSameValues(all.labels.topic, data.labels.topic.subarray(0, 8_000), 'labels.topic');
      expect(all.split).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes a valid shard with no rows', async () => {
    const writer = new ShardWriter({ dim: 4, tasks: [{ name: 'y', type: 'regression' }], encoderDigest: 'd' });
    const bytes = collect(writer.output!);
    expect(await writer.finish()).toMatchObject({ rows: 0 });
    const opened = await openShard(chunksOf(Buffer.concat(await bytes)));
    expect(opened.metadata.dim).toBe(4);
    expect(await collect(opened.batches)).toEqual([]);
  });

  it('reads a shard another Arrow writer produced with Bool masks, Int64 rows and a Utf8 split', async () => {
    const rows = 5;
    const table = new Table({
      row: vectorFromArray([10n, 11n, 12n, 13n, 14n], new Int64()),
      features: vectorFromArray(
        Array.from({ length: rows }, (_, r) => [r, r + 0.5]),
        new FixedSizeList(2, new Field('item', new Float32(), false)),
      ),
      'label.y': vectorFromArray([0, 1, 1, 0, 1], new Float32()),
      'mask.y': vectorFromArray([true, false, true, true, false], new Bool()),
      split: vectorFromArray(['holdout', 'train', 'validation', 'train', 'train'], new Utf8()),
    });
    table.schema.metadata.set(METADATA_KEYS.format, 'agentflow-feature-shard');
    table.schema.metadata.set(METADATA_KEYS.version, '1');
    table.schema.metadata.set(METADATA_KEYS.dim, '2');
    table.schema.metadata.set(METADATA_KEYS.tasks, JSON.stringify([{ name: 'y', type: 'binary' }]));
    table.schema.metadata.set(METADATA_KEYS.encoderDigest, 'foreign');
    const [batch] = await collect(readShard(chunksOf(tableToIPC(table, 'stream'))));
    expect(Array.from(batch.features)).toEqual([0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]);
    expect(Array.from(batch.masks.y)).toEqual([1, 0, 1, 1, 0]);
    expect(Array.from(batch.rowIndex)).toEqual([10, 11, 12, 13, 14]);
    expect(Array.from(batch.split!, (code) => SPLITS[code])).toEqual(['holdout', 'train', 'validation', 'train', 'train']);
  });
});

describe('re-chunking and shuffling streamed batches', () => {
  const dim = 3;
  function sourceBatches(sizes: number[]): ShardBatch[] {
    let row = 0;
    return sizes.map((rows) => {
      const rowIndex = Int32Array.from({ length: rows }, () => row++);
      return {
        rows,
        dim,
        features: Float32Array.from({ length: rows * dim }, (_, k) => rowIndex[Math.floor(k / dim)] * 10 + (k % dim)),
        labels: { y: Float32Array.from(rowIndex, (r) => r % 2) },
        masks: { y: Uint8Array.from(rowIndex, (r) => (r % 3 === 0 ? 0 : 1)) },
        rowIndex,
        split: Uint8Array.from(rowIndex, (r) => r % 3),
      };
    });
  }
  async function* stream(batches: ShardBatch[]): AsyncGenerator<ShardBatch> {
    yield* batches;
  }
  /** Every row must still carry its own features, label, mask and split. */
  function expectRowsIntact(batch: ShardBatch): void {
    for (let i = 0; i < batch.rows; i++) {
      const r = batch.rowIndex[i];
      expect(Array.from(batch.features.subarray(i * dim, (i + 1) * dim))).toEqual([r * 10, r * 10 + 1, r * 10 + 2]);
      expect(batch.labels.y[i]).toBe(r % 2);
      expect(batch.masks.y[i]).toBe(r % 3 === 0 ? 0 : 1);
      expect(batch.split![i]).toBe(r % 3);
    }
  }

  it('cuts batches of exactly batchSize rows across source boundaries and keeps the last partial one', async () => {
    const source = sourceBatches([700, 50, 1000, 3]);
    const out = await collect(batchesOf(stream(source), 256));
    expect(out.map((b) => b.rows)).toEqual([256, 256, 256, 256, 256, 256, 217]);
    expect(Array.from(out.flatMap((b) => Array.from(b.rowIndex)))).toEqual(Array.from({ length: 1753 }, (_, i) => i));
    out.forEach(expectRowsIntact);
    // A batch inside one source batch is a view on it, not a copy.
    expect(out[0].features.buffer).toBe(source[0].features.buffer);
  });

  it('shuffles deterministically for a seed, and differently for another seed', async () => {
    const order = async (seed: number) =>
      (await collect(shuffleBuffer(stream(sourceBatches([500, 500, 500])), { bufferRows: 200, rng: mulberry32(seed) }))).flatMap((b) => Array.from(b.rowIndex));
    const a = await order(1);
    expect(await order(1)).toEqual(a);
    expect(await order(2)).not.toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1500 }, (_, i) => i));
  });

  it('never emits a row more than bufferRows positions before it arrived, and keeps rows intact', async () => {
    const bufferRows = 100;
    const out = await collect(shuffleBuffer(stream(sourceBatches([300, 300, 300])), { bufferRows, rng: mulberry32(9) }));
    out.forEach(expectRowsIntact);
    const emitted = out.flatMap((b) => Array.from(b.rowIndex));
    emitted.forEach((row, position) => expect(position).toBeGreaterThanOrEqual(row - bufferRows));
    // And it does move rows: far from the identity order.
    const displaced = emitted.filter((row, position) => row !== position).length;
    expect(displaced).toBeGreaterThan(800);
  });

  it('is a full permutation when the buffer holds every row', async () => {
    const out = await collect(shuffleBuffer(stream(sourceBatches([40, 40])), { bufferRows: 1000, rng: mulberry32(4) }));
    const emitted = out.flatMap((b) => Array.from(b.rowIndex));
    expect([...emitted].sort((x, y) => x - y)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(emitted.slice(0, 10)).not.toEqual(Array.from({ length: 10 }, (_, i) => i));
  });
});

describe('shard errors', () => {
  const tasks: ShardTask[] = [{ name: 'y', type: 'binary' }];
  const rowsOf = (n: number, label: number) => ({
    rows: n,
    features: new Float32Array(n * 2),
    labels: { y: new Float32Array(n).fill(label) },
    masks: { y: new Uint8Array(n).fill(1) },
  });

  async function errorOf(promise: Promise<unknown>): Promise<ShardError> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ShardError);
    return error as ShardError;
  }

  async function shardBytes(options: { dim: number; tasks: ShardTask[] }): Promise<Buffer> {
    const writer = new ShardWriter({ ...options, encoderDigest: 'd' });
    const bytes = collect(writer.output!);
    await writer.writeRows({
      rows: 2,
      features: new Float32Array(2 * options.dim),
      labels: Object.fromEntries(options.tasks.map((t) => [t.name, new Float32Array(2)])),
      masks: Object.fromEntries(options.tasks.map((t) => [t.name, new Uint8Array(2)])),
    });
    await writer.finish();
    return Buffer.concat(await bytes);
  }

  it('refuses an Arrow stream that is not ours, listing its columns', async () => {
    const foreign = tableToIPC(new Table({ a: vectorFromArray([1, 2, 3]) }), 'stream');
    const error = await errorOf(openShard(chunksOf(foreign)));
    expect(error.code).toBe('SHARD_NOT_AGENTFLOW');
    expect(error.message).toMatch(/not an agentflow feature shard.*columns: a/);
  });

  it('refuses bytes that are not Arrow at all, keeping the decoder error as the cause', async () => {
    const error = await errorOf(openShard(chunksOf(new TextEncoder().encode('{"rows": [1, 2, 3]} this is JSON, not Arrow'))));
    expect(error.code).toBe('SHARD_READ_FAILED');
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('refuses an empty object', async () => {
    const error = await errorOf(openShard(chunksOf(new Uint8Array(0))));
    expect(error.code).toBe('SHARD_NOT_AGENTFLOW');
  });

  it('fails a truncated shard while streaming instead of returning short data', async () => {
    const bytes = await shardBytes({ dim: 2, tasks });
    const batches = collect(readShard(chunksOf(bytes.subarray(0, bytes.byteLength - 20))));
    const error = await errorOf(batches);
    expect(error.code).toBe('SHARD_READ_FAILED');
    expect(error.message).toMatch(/not truncated/);
  });

  it('refuses a shard of another dimension than the caller expects', async () => {
    const error = await errorOf(openShard(chunksOf(await shardBytes({ dim: 2, tasks })), { dim: 384 }));
    expect(error.code).toBe('SHARD_DIM_MISMATCH');
    expect(error.message).toMatch(/feature dimension 2 but 384 was expected/);
  });

  it('names a column the metadata promises but the file lacks', async () => {
    const table = new Table({
      row: vectorFromArray(Int32Array.of(0)),
      features: vectorFromArray([[1, 2]], new FixedSizeList(2, new Field('item', new Float32(), false))),
    });
    table.schema.metadata.set(METADATA_KEYS.format, 'agentflow-feature-shard');
    table.schema.metadata.set(METADATA_KEYS.version, '1');
    table.schema.metadata.set(METADATA_KEYS.dim, '2');
    table.schema.metadata.set(METADATA_KEYS.tasks, JSON.stringify(tasks));
    const error = await errorOf(openShard(chunksOf(tableToIPC(table, 'stream'))));
    expect(error.code).toBe('SHARD_COLUMN_MISSING');
    expect(error.message).toMatch(/missing column "label.y"/);
  });

  it('catches features whose width disagrees with the metadata', async () => {
    const table = new Table({
      row: vectorFromArray(Int32Array.of(0)),
      features: vectorFromArray([[1, 2, 3]], new FixedSizeList(3, new Field('item', new Float32(), false))),
    });
    table.schema.metadata.set(METADATA_KEYS.format, 'agentflow-feature-shard');
    table.schema.metadata.set(METADATA_KEYS.version, '1');
    table.schema.metadata.set(METADATA_KEYS.dim, '2');
    table.schema.metadata.set(METADATA_KEYS.tasks, JSON.stringify(tasks));
    const error = await errorOf(openShard(chunksOf(tableToIPC(table, 'stream'))));
    expect(error.code).toBe('SHARD_DIM_MISMATCH');
  });

  it.each([
    ['a binary label of 2 on a labelled row', { ...rowsOf(3, 2) }, /task "y": label 2 at row 0 is not 0 or 1/],
    ['features of the wrong length', { ...rowsOf(3, 1), features: new Float32Array(5) }, /rows × dim = 3 × 2 = 6 values, got 5/],
    [
      'a task the shard does not have',
      { ...rowsOf(1, 0), labels: { y: new Float32Array(1), z: new Float32Array(1) } },
      /task "z" is not one of this shard's tasks/,
    ],
    ['a missing mask', { ...rowsOf(1, 0), masks: {} }, /masks\["y"\] must be a Uint8Array of 1 values, got none/],
    ['a split without includeSplit', { ...rowsOf(1, 0), split: ['train' as const] }, /without includeSplit/],
  ])('rejects %s and stays usable', async (_, rows, message) => {
    const writer = new ShardWriter({ dim: 2, tasks, encoderDigest: 'd' });
    const bytes = collect(writer.output!);
    const error = await errorOf(writer.writeRows(rows));
    expect(error.code).toBe('SHARD_ROWS_INVALID');
    expect(error.message).toMatch(message);
    await writer.writeRows(rowsOf(2, 1));
    expect(await writer.finish()).toMatchObject({ rows: 2 });
    const [batch] = await collect(readShard(chunksOf(Buffer.concat(await bytes))));
    // The rejected batch consumed no row numbers.
    expect(Array.from(batch.rowIndex)).toEqual([0, 1]);
  });

  it('accepts any label where the mask is 0', async () => {
    const writer = new ShardWriter({ dim: 2, tasks, encoderDigest: 'd', sink: new Writable({ write: (_c, _e, done) => done() }) });
    await writer.writeRows({ ...rowsOf(2, 0), labels: { y: Float32Array.of(Number.NaN, 1) }, masks: { y: Uint8Array.of(0, 1) } });
    expect(await writer.finish()).toMatchObject({ rows: 2 });
  });

  it('reports a failing sink as SHARD_SINK_FAILED with the cause kept', async () => {
    const sink = new Writable({
      highWaterMark: 16,
      write: (_chunk, _encoding, done) => done(new Error('disk full')),
    });
    sink.on('error', () => {});
    const writer = new ShardWriter({ dim: 2, tasks, encoderDigest: 'd', sink });
    let error = await writer.writeRows(rowsOf(64, 1)).then(
      () => undefined,
      (e: unknown) => e as ShardError,
    );
    error ??= await errorOf(writer.finish());
    expect(error).toBeInstanceOf(ShardError);
    expect(error.code).toBe('SHARD_SINK_FAILED');
    expect((error.cause as Error).message).toBe('disk full');
  });

  it('abort makes a streaming consumer fail instead of seeing a short, valid-looking shard', async () => {
    const writer = new ShardWriter({ dim: 2, tasks, encoderDigest: 'd' });
    const reading = collect(readShard(writer.output!));
    await writer.writeRows(rowsOf(4, 1));
    writer.abort(new Error('embedding failed at row 4'));
    const error = await errorOf(reading);
    expect(error.code).toBe('SHARD_READ_FAILED');
    expect(error.message).toMatch(/embedding failed at row 4/);
  });

  it('refuses calls after finish', async () => {
    const writer = new ShardWriter({ dim: 2, tasks, encoderDigest: 'd', sink: new Writable({ write: (_c, _e, done) => done() }) });
    await writer.finish();
    const error = await errorOf(writer.writeRows(rowsOf(1, 0)));
    expect(error.code).toBe('SHARD_WRITER_CLOSED');
  });
});

describe('streaming stays memory-bounded', () => {
  it('pipes ~270 MB of generated rows from writer to reader while RSS grows far less', async () => {
    const dim = 64;
    const batchRows = 8_192;
    const batchCount = 128; // 128 × 8192 × 64 × 4 bytes = 256 MiB of features
    const writer = new ShardWriter({ dim, tasks: [{ name: 'y', type: 'regression' }], encoderDigest: 'd' });
    let streamedBytes = 0;
    const hash = createHash('sha256');
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const chunk of writer.output as Readable) {
        streamedBytes += chunk.byteLength;
        hash.update(chunk);
        yield chunk;
      }
    }
    const baseline = process.memoryUsage().rss;
    let peakGrowth = 0;
    const sample = () => {
      peakGrowth = Math.max(peakGrowth, process.memoryUsage().rss - baseline);
    };

    const produce = async () => {
      for (let k = 0; k < batchCount; k++) {
        const features = new Float32Array(batchRows * dim);
        for (let i = 0; i < features.length; i++) features[i] = (k * batchRows * dim + i) % 1021;
        const labels = { y: Float32Array.from({ length: batchRows }, (_, i) => k * batchRows + i) };
        await writer.writeRows({ rows: batchRows, features, labels, masks: { y: new Uint8Array(batchRows).fill(1) } });
        sample();
      }
      return writer.finish();
    };
    let rowsRead = 0;
    let mismatches = 0;
    const consume = async () => {
      for await (const batch of readShard(counted())) {
        // Spot-check the last value of every batch and the labels' continuity.
        const last = rowsRead * dim + batch.features.length - 1;
        if (batch.features[batch.features.length - 1] !== last % 1021) mismatches++;
        if (batch.labels.y[0] !== rowsRead) mismatches++;
        rowsRead += batch.rows;
        sample();
      }
    };
    const [summary] = await Promise.all([produce(), consume()]);

    const dataBytes = batchCount * batchRows * dim * 4;
    expect(rowsRead).toBe(batchCount * batchRows);
    expect(mismatches).toBe(0);
    expect(summary.sizeBytes).toBe(streamedBytes);
    expect(summary.sha256).toBe(hash.digest('hex'));
    expect(streamedBytes).toBeGreaterThan(dataBytes);
    // The whole stream is 256+ MiB; holding it would grow RSS by at least that much.
    expect(peakGrowth).toBeLessThan(96 * 2 ** 20);
    expect(peakGrowth).toBeLessThan(dataBytes / 2.5);
  });
});
