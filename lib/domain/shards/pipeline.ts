import { allocateLike, copyRows, sliceBatch, type ShardBatch } from '#lib/domain/shards/batch.ts';
import { ShardError } from '#lib/domain/shards/errors.ts';

function positiveInteger(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new ShardError(`${what} ${value} is not a positive integer`, { code: 'SHARD_OPTIONS_INVALID', context: { [what]: value } });
  }
}

/**
 * Re-chunks streamed batches into training batches of exactly `batchSize` rows; the last one
 * keeps whatever is left. A training batch that lies inside one source batch is a view on it (no
 * copy); one that spans source batches is assembled in fresh arrays.
 */
export async function* batchesOf(source: AsyncIterable<ShardBatch>, batchSize: number): AsyncGenerator<ShardBatch> {
  positiveInteger('batchSize', batchSize);
  let pending: ShardBatch | undefined;
  let filled = 0;
  for await (const batch of source) {
    let offset = 0;
    while (offset < batch.rows) {
      if (!pending && batch.rows - offset >= batchSize) {
        yield sliceBatch(batch, offset, offset + batchSize);
        offset += batchSize;
        continue;
      }
      pending ??= allocateLike(batch, batchSize);
      const count = Math.min(batchSize - filled, batch.rows - offset);
      copyRows(batch, offset, pending, filled, count);
      filled += count;
      offset += count;
      if (filled === batchSize) {
        yield pending;
        pending = undefined;
        filled = 0;
      }
    }
  }
  if (pending && filled > 0) yield sliceBatch(pending, 0, filled);
}

export interface ShuffleOptions {
  /** Rows held in memory; a row leaves the buffer at most this many positions before it arrived. */
  bufferRows: number;
  /** Uniform [0, 1) source; a seeded one (e.g. `mulberry32(seed + epoch)`) makes epochs reproducible. */
  rng: () => number;
}

/**
 * Approximate shuffle of a stream with a bounded buffer, the way streamed epochs are shuffled when
 * the dataset does not fit in memory: the buffer fills with the first `bufferRows` rows; then each
 * arriving row takes the place of a uniformly chosen buffered row, which is emitted. At the end
 * the buffer is emitted in a uniformly random order. With `bufferRows` ≥ the row count this is a
 * uniform permutation. Output batches are as large as the rows emitted per input batch.
 */
export async function* shuffleBuffer(batches: AsyncIterable<ShardBatch>, options: ShuffleOptions): AsyncGenerator<ShardBatch> {
  const { bufferRows, rng } = options;
  positiveInteger('bufferRows', bufferRows);
  let buffer: ShardBatch | undefined;
  let held = 0;
  let largestInput = 1;
  for await (const batch of batches) {
    buffer ??= allocateLike(batch, bufferRows);
    largestInput = Math.max(largestInput, batch.rows);
    const fill = Math.min(bufferRows - held, batch.rows);
    copyRows(batch, 0, buffer, held, fill);
    held += fill;
    const evicted = batch.rows - fill;
    if (evicted === 0) continue;
    const out = allocateLike(batch, evicted);
    for (let k = 0; k < evicted; k++) {
      const slot = Math.floor(rng() * bufferRows);
      copyRows(buffer, slot, out, k, 1);
      copyRows(batch, fill + k, buffer, slot, 1);
    }
    yield out;
  }
  if (!buffer || held === 0) return;
  // Fisher–Yates over what is left, emitted in batches the size of the largest input batch.
  const order = Int32Array.from({ length: held }, (_, i) => i);
  for (let i = held - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (let start = 0; start < held; start += largestInput) {
    const count = Math.min(largestInput, held - start);
    const out = allocateLike(buffer, count);
    for (let k = 0; k < count; k++) copyRows(buffer, order[start + k], out, k, 1);
    yield out;
  }
}
