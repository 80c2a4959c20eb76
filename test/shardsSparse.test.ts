import { RecordBatchReader, Table } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import {
  batchesOf,
  denseFeatures,
  METADATA_KEYS,
  paddedSparse,
  piecedSparse,
  readShard,
  ShardWriter,
  shuffleBuffer,
  SPARSE_SHARD_FORMAT_VERSION,
  sparsePieceLength,
  type ShardBatch,
  type SparseRow,
} from '#lib/domain/shards/index.ts';
import { mulberry32 } from '#lib/domain/random/index.ts';

/**
 * Sparse feature shards (TF-IDF rows): `indices`/`values` List columns that round-trip without
 * ever building the rows × dim matrix, through the reader, the re-chunking and the shuffle.
 */

const DIM = 20_000;
const TASKS = [{ name: 'spam', type: 'binary' as const }];

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

async function* chunksOf(bytes: Uint8Array, chunkBytes = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) yield bytes.subarray(offset, offset + chunkBytes);
}

/** Row r holds (r mod 7) + 1 nonzeros at columns r, r + 997, r + 2·997, … (mod DIM, ascending), valued r + k/10; row 5 is empty. */
function rowOf(r: number): SparseRow {
  if (r === 5) return { indices: new Int32Array(0), values: new Float32Array(0) };
  const columns = Array.from({ length: (r % 7) + 1 }, (_, k) => (r + k * 997) % DIM).sort((a, b) => a - b);
  return { indices: Int32Array.from(columns), values: Float32Array.from(columns, (_, k) => r + k / 10) };
}

async function writeSparse(rows: number, batchRows: number): Promise<Uint8Array> {
  const writer = new ShardWriter({ dim: DIM, layout: 'sparse', tasks: TASKS, encoderDigest: 'sha256:text' });
  const bytes: Buffer[] = [];
  writer.output!.on('data', (chunk: Buffer) => bytes.push(chunk));
  for (let start = 0; start < rows; start += batchRows) {
    const count = Math.min(batchRows, rows - start);
    const rowIndex = Int32Array.from({ length: count }, (_, i) => start + i);
    await writer.writeRows({
      rows: count,
      features: new Float32Array(0),
      sparse: Array.from(rowIndex, rowOf),
      labels: { spam: Float32Array.from(rowIndex, (r) => r % 2) },
      masks: { spam: new Uint8Array(count).fill(1) },
      rowIndex,
    });
  }
  await writer.finish();
  return new Uint8Array(Buffer.concat(bytes));
}

function expectRowsIntact(batch: ShardBatch): void {
  expect(batch.sparse).toHaveLength(batch.rows);
  batch.sparse!.forEach((row, i) => {
    const want = rowOf(batch.rowIndex[i]);
    expect(Array.from(row.indices)).toEqual(Array.from(want.indices));
    expect(Array.from(row.values)).toEqual(Array.from(want.values));
    expect(batch.labels.spam[i]).toBe(batch.rowIndex[i] % 2);
  });
}

describe('sparse feature shards', () => {
  it('round-trip every row across record batches, as views with no dense matrix', async () => {
    const bytes = await writeSparse(1000, 300);

    const batches = await collect(readShard(chunksOf(bytes), { dim: DIM }));

    expect(batches.map((b) => b.rows)).toEqual([300, 300, 300, 100]);
    batches.forEach(expectRowsIntact);
    expect(batches.every((b) => b.features.length === 0)).toBe(true);
  });

  it('take a small fraction of the dense shard of the same rows', async () => {
    const sparse = await writeSparse(1000, 500);
    const dense = new ShardWriter({ dim: DIM, tasks: TASKS, encoderDigest: 'sha256:text' });
    const sizes: number[] = [];
    dense.output!.on('data', (chunk: Buffer) => sizes.push(chunk.byteLength));
    for (let start = 0; start < 1000; start += 500) {
      const rowIndex = Int32Array.from({ length: 500 }, (_, i) => start + i);
      const batch = { rows: 500, dim: DIM, features: new Float32Array(0), sparse: Array.from(rowIndex, rowOf), labels: {}, masks: {}, rowIndex };
      await dense.writeRows({
        rows: 500,
        features: denseFeatures(batch),
        labels: { spam: Float32Array.from(rowIndex, (r) => r % 2) },
        masks: { spam: new Uint8Array(500).fill(1) },
        rowIndex,
      });
    }
    const summary = await dense.finish();

    expect(summary.sizeBytes).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(sparse.byteLength * 100).toBeLessThan(summary.sizeBytes);
  });

  it('are ordinary Arrow: List<Int32> indices, List<Float32> values, the vocabulary size and layout in the metadata', async () => {
    const bytes = await writeSparse(20, 20);

    const reader = await RecordBatchReader.from(chunksOf(bytes));
    await reader.open({ autoDestroy: false });
    const table = new Table(await collect(reader));

    expect(reader.schema.fields.map((f) => `${f.name}: ${String(f.type)}`)).toEqual([
      'row: Int32',
      'indices: List<Int32>',
      'values: List<Float32>',
      'label.spam: Float32',
      'mask.spam: Uint8',
    ]);
    expect(reader.schema.metadata.get(METADATA_KEYS.dim)).toBe(String(DIM));
    expect(reader.schema.metadata.get(METADATA_KEYS.layout)).toBe('sparse');
    expect(reader.schema.metadata.get(METADATA_KEYS.version)).toBe(String(SPARSE_SHARD_FORMAT_VERSION));
    expect(Array.from(table.getChild('indices')!.get(13) as Int32Array)).toEqual(Array.from(rowOf(13).indices));
    expect(Array.from(table.getChild('values')!.get(13) as Float32Array)).toEqual(Array.from(rowOf(13).values));
  });

  it('re-chunk and shuffle with every row keeping its own indices, values and label', async () => {
    const bytes = await writeSparse(1000, 300);

    const shuffled = await collect(batchesOf(shuffleBuffer(readShard(chunksOf(bytes)), { bufferRows: 128, rng: mulberry32(3) }), 64));

    expect(shuffled.slice(0, -1).every((b) => b.rows === 64)).toBe(true);
    expect(
      shuffled
        .flatMap((b) => Array.from(b.rowIndex))
        .sort((a, b) => a - b)
        .join(),
    ).toBe(Array.from({ length: 1000 }, (_, i) => i).join());
    expect(shuffled[0].rowIndex[0]).not.toBe(0);
    shuffled.forEach(expectRowsIntact);
  });

  it('pad a batch to its longest row with index 0 and value 0', () => {
    const padded = paddedSparse([rowOf(5), rowOf(2), rowOf(1)]);

    expect(padded.nnz).toBe(3);
    expect(Array.from(padded.indices)).toEqual([0, 0, 0, 2, 999, 1996, 1, 998, 0]);
    expect(Array.from(padded.values)).toEqual([0, 0, 0, 2, Math.fround(2.1), Math.fround(2.2), 1, Math.fround(1.1), 0]);
  });

  it("cut rows into pieces of one length, a row's pieces consecutive, with the assignment of pieces to rows", () => {
    // rowOf(6) holds 7 terms, rowOf(5) none, rowOf(1) 2: at length 3 they take 3, 1 and 1 pieces.
    const rows = [rowOf(6), rowOf(5), rowOf(1)];
    const pieced = piecedSparse(rows, { pieceLength: 3 });

    expect({ pieces: pieced.pieces, pieceLength: pieced.pieceLength }).toEqual({ pieces: 5, pieceLength: 3 });
    expect(Array.from(pieced.indices)).toEqual([...rows[0].indices, 0, 0, 0, 0, 0, 1, 998, 0]);
    expect(Array.from(pieced.values)).toEqual([...rows[0].values, 0, 0, 0, 0, 0, 1, Math.fround(1.1), 0]);
    expect(Array.from(pieced.assignment)).toEqual([1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    // Each row's terms are its pieces' terms, in order.
    rows.forEach((row, i) => {
      const terms = Array.from({ length: pieced.pieces }, (_, p) => p).filter((p) => pieced.assignment[i * pieced.pieces + p] === 1);
      const indices = terms.flatMap((p) => Array.from(pieced.indices.subarray(p * 3, p * 3 + 3)));
      expect(indices.slice(0, row.indices.length)).toEqual(Array.from(row.indices));
    });
  });

  it('choose one piece a row when the rows are as long as each other, and shorter pieces when a few rows are far longer', () => {
    expect(sparsePieceLength(Array.from({ length: 256 }, () => 480))).toBe(480);
    const mixed = Array.from({ length: 256 }, (_, i) => (i < 16 ? 3000 : 600));
    const length = sparsePieceLength(mixed);
    const slots = (n: number) => mixed.reduce((sum, terms) => sum + Math.ceil(terms / n), 0) * n;

    expect(length).toBeLessThan(3000);
    expect(slots(length)).toBeLessThan(0.5 * slots(3000));
    expect(() => piecedSparse([rowOf(1)], { pieceLength: 0 })).toThrow(/pieceLength 0 is not a positive integer/);
  });

  it.each([
    [
      'an index outside the vocabulary',
      { indices: Int32Array.from([3, DIM]), values: Float32Array.from([1, 2]) },
      /index 20000 at position 1 is not ascending within 0 … 19999/,
    ],
    ['indices out of order', { indices: Int32Array.from([9, 3]), values: Float32Array.from([1, 2]) }, /sort the indices and drop repeats/],
    ['fewer values than indices', { indices: Int32Array.from([1, 2]), values: Float32Array.from([1]) }, /as many values/],
  ])('refuse a row with %s', async (_name, row, message) => {
    const writer = new ShardWriter({ dim: DIM, layout: 'sparse', tasks: TASKS, encoderDigest: 'sha256:text' });

    await expect(
      writer.writeRows({ rows: 1, features: new Float32Array(0), sparse: [row], labels: { spam: Float32Array.of(1) }, masks: { spam: Uint8Array.of(1) } }),
    ).rejects.toThrow(message);
  });
});
