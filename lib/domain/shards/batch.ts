import { ShardError } from '#lib/domain/shards/errors.ts';

/** One sparse feature row: column indices (ascending, < dim) and their values; every other column is 0. */
export interface SparseRow {
  indices: Int32Array;
  values: Float32Array;
}

/**
 * Rows of a shard in the layout the trainer consumes: contiguous typed arrays, one per column.
 * A dense shard fills `features`; a sparse one (TF-IDF) fills `sparse` instead and leaves
 * `features` empty, so that nothing on the way to the training step builds the rows × dim matrix.
 */
export interface ShardBatch {
  rows: number;
  dim: number;
  /** rows × dim, row-major; empty when the batch is sparse. */
  features: Float32Array;
  /** Per row, views on the shard's index and value buffers (no copy); present when the shard is sparse. */
  sparse?: SparseRow[];
  /** Per task: 0/1, class index or value. */
  labels: Record<string, Float32Array>;
  /** Per task: 1 = labelled. */
  masks: Record<string, Uint8Array>;
  /** The dataset row each row came from. */
  rowIndex: Int32Array;
  /** Codes into `SPLITS` (0 train, 1 validation, 2 holdout), when the shard has a split column. */
  split?: Uint8Array;
}

/** Rows `start` … `end` − 1 as views on the same memory (no copy). */
export function sliceBatch(batch: ShardBatch, start: number, end: number): ShardBatch {
  const { dim } = batch;
  const labels: Record<string, Float32Array> = {};
  const masks: Record<string, Uint8Array> = {};
  for (const [task, values] of Object.entries(batch.labels)) labels[task] = values.subarray(start, end);
  for (const [task, values] of Object.entries(batch.masks)) masks[task] = values.subarray(start, end);
  return {
    rows: end - start,
    dim,
    features: batch.features.subarray(start * dim, end * dim),
    ...(batch.sparse ? { sparse: batch.sparse.slice(start, end) } : {}),
    labels,
    masks,
    rowIndex: batch.rowIndex.subarray(start, end),
    ...(batch.split ? { split: batch.split.subarray(start, end) } : {}),
  };
}

/** An empty batch of `rows` rows with the same tasks and columns as `template`. */
export function allocateLike(template: ShardBatch, rows: number): ShardBatch {
  const labels: Record<string, Float32Array> = {};
  const masks: Record<string, Uint8Array> = {};
  for (const task of Object.keys(template.labels)) labels[task] = new Float32Array(rows);
  for (const task of Object.keys(template.masks)) masks[task] = new Uint8Array(rows);
  return {
    rows,
    dim: template.dim,
    features: new Float32Array(template.sparse ? 0 : rows * template.dim),
    ...(template.sparse ? { sparse: new Array<SparseRow>(rows) } : {}),
    labels,
    masks,
    rowIndex: new Int32Array(rows),
    ...(template.split ? { split: new Uint8Array(rows) } : {}),
  };
}

/** Copies `count` rows from `source` (starting at `from`) into `target` (starting at `to`). */
export function copyRows(source: ShardBatch, from: number, target: ShardBatch, to: number, count: number): void {
  const { dim } = source;
  // Sparse rows move as references: a decoded record batch is never written to after it is read.
  if (source.sparse && target.sparse) for (let k = 0; k < count; k++) target.sparse[to + k] = source.sparse[from + k];
  else target.features.set(source.features.subarray(from * dim, (from + count) * dim), to * dim);
  for (const [task, values] of Object.entries(source.labels)) target.labels[task].set(values.subarray(from, from + count), to);
  for (const [task, values] of Object.entries(source.masks)) target.masks[task].set(values.subarray(from, from + count), to);
  target.rowIndex.set(source.rowIndex.subarray(from, from + count), to);
  if (source.split && target.split) target.split.set(source.split.subarray(from, from + count), to);
}

/**
 * The batch's rows as a dense rows × dim matrix: the dense features as they are, sparse rows
 * scattered into zeros. For the few consumers that need vectors (a parity check on some rows, a
 * drift reference), never for the training pipeline.
 */
export function denseFeatures(batch: Pick<ShardBatch, 'rows' | 'dim' | 'features'> & { sparse?: readonly SparseRow[] }): Float32Array {
  if (!batch.sparse) return batch.features;
  const { dim } = batch;
  const out = new Float32Array(batch.rows * dim);
  batch.sparse.forEach((row, i) => {
    for (let k = 0; k < row.indices.length; k++) out[i * dim + row.indices[k]] = row.values[k];
  });
  return out;
}

/** Padded `[rows, nnz]` indices and values of sparse rows, nnz the longest row's (at least 1); padding is index 0, value 0. */
export function paddedSparse(rows: readonly SparseRow[]): { indices: Int32Array; values: Float32Array; nnz: number } {
  let nnz = 1;
  for (const row of rows) nnz = Math.max(nnz, row.indices.length);
  const indices = new Int32Array(rows.length * nnz);
  const values = new Float32Array(rows.length * nnz);
  rows.forEach((row, i) => {
    indices.set(row.indices, i * nnz);
    values.set(row.values, i * nnz);
  });
  return { indices, values, nnz };
}

/**
 * Sparse rows cut into pieces of one length, for a training step: `[pieces, length]` indices and
 * values (a row's pieces consecutive, in row order, the last one padded with index 0, value 0) and
 * `assignment`, `[rows, pieces]` with 1 where the piece belongs to the row. The embedding bag over
 * the pieces times `assignment` is the bag over the rows, with far less padding than `paddedSparse`
 * when a batch mixes lengths (every row padded to the batch's longest). `pieceLength` defaults to
 * `sparsePieceLength`'s choice.
 */
export function piecedSparse(
  rows: readonly SparseRow[],
  options: { pieceLength?: number } = {},
): { indices: Int32Array; values: Float32Array; assignment: Float32Array; pieces: number; pieceLength: number } {
  const pieceLength = options.pieceLength ?? sparsePieceLength(rows.map((row) => row.indices.length));
  if (!Number.isInteger(pieceLength) || pieceLength < 1) {
    throw new ShardError(`pieceLength ${pieceLength} is not a positive integer`, { code: 'SHARD_OPTIONS_INVALID', context: { pieceLength } });
  }
  const piecesOf = (row: SparseRow) => Math.max(1, Math.ceil(row.indices.length / pieceLength));
  let pieces = 0;
  for (const row of rows) pieces += piecesOf(row);
  const indices = new Int32Array(pieces * pieceLength);
  const values = new Float32Array(pieces * pieceLength);
  const assignment = new Float32Array(rows.length * pieces);
  let piece = 0;
  rows.forEach((row, i) => {
    const count = piecesOf(row);
    // Consecutive pieces of one row are one contiguous run of pieceLength-wide slots.
    indices.set(row.indices, piece * pieceLength);
    values.set(row.values, piece * pieceLength);
    assignment.fill(1, i * pieces + piece, i * pieces + piece + count);
    piece += count;
  });
  return { indices, values, assignment, pieces, pieceLength };
}

/**
 * The piece length that makes a batch's embedding bag cheapest: the padded slots
 * (pieces × length) plus a cost per piece for summing pieces into rows (a `[rows, pieces]` by
 * `[pieces, width]` product, forward and backward, worth about rows / 16 slots of the bag's
 * gather and scatter). Tried over lengths growing by a tenth, and the longest row's (one piece a row).
 */
export function sparsePieceLength(lengths: readonly number[]): number {
  let longest = 1;
  for (const n of lengths) longest = Math.max(longest, n);
  const perPiece = Math.max(1, lengths.length / 16);
  const cost = (length: number) => {
    let pieces = 0;
    for (const n of lengths) pieces += Math.max(1, Math.ceil(n / length));
    return pieces * (length + perPiece);
  };
  let best = longest;
  let bestCost = cost(longest);
  for (let length = Math.min(16, longest); length < longest; length = Math.max(length + 1, Math.ceil(length * 1.1))) {
    const c = cost(length);
    if (c < bestCost) {
      best = length;
      bestCost = c;
    }
  }
  return best;
}
