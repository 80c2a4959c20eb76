import { AgentflowError } from '#lib/domain/errors/index.ts';

export type EncoderErrorCode =
  /** Fitting found nothing to fit on (no rows, no n-gram frequent enough, no usable column). */
  | 'ENCODER_FIT'
  /** A row handed to an encoder lacks the field it reads or holds the wrong kind of value. */
  | 'ENCODER_INPUT'
  /** The ONNX bytes are not an encoder agentflow can run (no metadata, bad inputs or outputs). */
  | 'ENCODER_MODEL'
  /** A bring-your-own encoder or its tokenizer.json cannot be loaded or used. */
  | 'ENCODER_BYO'
  /** Two models cannot be merged into one (names, opsets, missing inputs). */
  | 'ENCODER_MERGE'
  /** ONNX Runtime failed while running an encoder. */
  | 'ENCODER_RUN';

export class EncoderError extends AgentflowError {
  constructor(message: string, options: { code: EncoderErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'EncoderError';
  }
}
