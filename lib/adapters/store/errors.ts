import { AgentflowError } from '#lib/domain/errors/index.ts';

/** Codes: NOT_FOUND, INVALID_KEY, INVALID_URI, CHECKSUM_MISMATCH, INVALID_JSON, DOCUMENT_INVALID, S3_FAILED. */
export class StoreError extends AgentflowError {
  constructor(message: string, options: { code: string; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}
