/**
 * Feature shards: the columnar files Embed writes and Trials read, Apache Arrow IPC streams that
 * pyarrow or polars open as they are (`pyarrow.ipc.open_stream`, `polars.read_ipc_stream`).
 *
 * Columns: `row` (Int32), `features` (FixedSizeList<Float32>[dim]) or, in a sparse shard
 * (`agentflow.layout` = `sparse`, version 2), `indices` (List<Int32>) and `values`
 * (List<Float32>) per row, then per task `label.<task>`
 * (Float32) and `mask.<task>` (Uint8, 1 = labelled), optionally `split` (dictionary of
 * train / validation / holdout). Schema metadata: `agentflow.format`, `agentflow.version`,
 * `agentflow.dim` (for a sparse shard, the vocabulary size), `agentflow.tasks` (JSON),
 * `agentflow.encoder_digest`, `agentflow.layout` (sparse shards only).
 */
export { ShardError, type ShardErrorCode } from '#lib/domain/shards/errors.ts';
export {
  buildSchema,
  COLUMNS,
  METADATA_KEYS,
  parseShardMetadata,
  SHARD_FORMAT_VERSION,
  SPARSE_SHARD_FORMAT_VERSION,
  SPLITS,
  type FeatureLayout,
  type ShardExpectations,
  type ShardMetadata,
  type ShardTask,
  type ShardTaskType,
  type SplitName,
} from '#lib/domain/shards/schema.ts';
export { denseFeatures, paddedSparse, piecedSparse, sliceBatch, sparsePieceLength, type ShardBatch, type SparseRow } from '#lib/domain/shards/batch.ts';
export { ShardWriter, type ShardRows, type ShardSummary, type ShardWriterOptions } from '#lib/domain/shards/writer.ts';
export { openShard, readShard, type OpenShard, type ShardSource } from '#lib/domain/shards/reader.ts';
export { batchesOf, shuffleBuffer, type ShuffleOptions } from '#lib/domain/shards/pipeline.ts';
