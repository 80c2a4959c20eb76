/** Rows of a shard in the layout the trainer consumes: contiguous typed arrays, one per column. */
export interface ShardBatch {
  rows: number;
  dim: number;
  /** rows × dim, row-major. */
  features: Float32Array;
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
    features: new Float32Array(rows * template.dim),
    labels,
    masks,
    rowIndex: new Int32Array(rows),
    ...(template.split ? { split: new Uint8Array(rows) } : {}),
  };
}

/** Copies `count` rows from `source` (starting at `from`) into `target` (starting at `to`). */
export function copyRows(source: ShardBatch, from: number, target: ShardBatch, to: number, count: number): void {
  const { dim } = source;
  target.features.set(source.features.subarray(from * dim, (from + count) * dim), to * dim);
  for (const [task, values] of Object.entries(source.labels)) target.labels[task].set(values.subarray(from, from + count), to);
  for (const [task, values] of Object.entries(source.masks)) target.masks[task].set(values.subarray(from, from + count), to);
  target.rowIndex.set(source.rowIndex.subarray(from, from + count), to);
  if (source.split && target.split) target.split.set(source.split.subarray(from, from + count), to);
}
