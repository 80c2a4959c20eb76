import { AgentflowError } from '#lib/domain/errors/index.ts';

export type ShardErrorCode =
  /** No agentflow metadata, or not an Arrow IPC stream at all. */
  | 'SHARD_NOT_AGENTFLOW'
  | 'SHARD_VERSION_UNSUPPORTED'
  /** Our metadata keys are present but hold something unusable. */
  | 'SHARD_METADATA_INVALID'
  | 'SHARD_COLUMN_MISSING'
  | 'SHARD_COLUMN_TYPE'
  /** The features column (or the caller) disagrees with the dimension in the metadata. */
  | 'SHARD_DIM_MISMATCH'
  /** A batch handed to the writer does not match the shard's dimension, tasks or label rules. */
  | 'SHARD_ROWS_INVALID'
  | 'SHARD_WRITER_CLOSED'
  /** The destination stream failed or closed before the shard was complete. */
  | 'SHARD_SINK_FAILED'
  /** The bytes could not be decoded as Arrow IPC. */
  | 'SHARD_READ_FAILED'
  | 'SHARD_OPTIONS_INVALID';

export class ShardError extends AgentflowError {
  constructor(message: string, options: { code: ShardErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'ShardError';
  }
}
