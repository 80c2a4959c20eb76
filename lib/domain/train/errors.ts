import { AgentflowError } from '#lib/domain/errors/index.ts';

export type TrainErrorCode =
  /** A task loss turned non-finite or passed `training.maxDivergenceLoss`. */
  | 'DIVERGED'
  /** A task has no labelled rows in the train or validation split. */
  | 'NO_LABELS'
  /** The exported heads do not reproduce the training-time forward pass. */
  | 'PARITY'
  /** The requested execution provider (e.g. CUDA) could not be used. */
  | 'DEVICE'
  /** A caller passed something unusable (λ, data, options). */
  | 'INVALID_INPUT'
  /** Stored or passed weights do not match the heads they are meant for. */
  | 'WEIGHTS'
  /** Validation metrics could not be computed (e.g. a binary task with one class). */
  | 'VALIDATION';

export class TrainError extends AgentflowError {
  declare readonly code: TrainErrorCode;

  constructor(message: string, options: { code: TrainErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'TrainError';
  }
}
