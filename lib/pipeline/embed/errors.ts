import { AgentflowError } from '#lib/domain/errors/index.ts';

export type EmbedErrorCode =
  /** A dataset's bytes differ from the digest Prepare recorded: it was replaced after Prepare ran. */
  | 'EMBED_DATASET_CHANGED'
  /** A row that Prepare accepted no longer validates (the same cause, seen earlier). */
  | 'EMBED_ROW_INVALID'
  /** A fitted encoder's bytes differ from the sha256 in the manifest. */
  | 'EMBED_ENCODER_MISMATCH'
  /** The manifest or the features URI cannot be used. */
  | 'EMBED_MANIFEST'
  /** The memory budget cannot hold even one row per split. */
  | 'EMBED_BUDGET';

export class EmbedError extends AgentflowError {
  constructor(message: string, options: { code: EmbedErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'EmbedError';
  }
}
