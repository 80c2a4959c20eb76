import { AgentflowError } from '#lib/domain/errors/index.ts';

export type PrepareErrorCode = 'SPEC_PROJECT_MISMATCH' | 'DATASET_NOT_IN_STORE' | 'DATASETS_INVALID' | 'FEEDBACK_UNAVAILABLE';

export class PrepareError extends AgentflowError {
  constructor(message: string, options: { code: PrepareErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'PrepareError';
  }
}
