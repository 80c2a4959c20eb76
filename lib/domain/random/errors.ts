import { AgentflowError } from '#lib/domain/errors/index.ts';

/** Codes of the generators' failures: a seed, a stored state or an argument they cannot use. */
export type RandomErrorCode = 'RANDOM_SEED_INVALID' | 'RANDOM_STATE_INVALID' | 'RANDOM_ARGUMENT_INVALID';

/** Every failure of `lib/domain/random`. */
export class RandomError extends AgentflowError {
  declare readonly code: RandomErrorCode;

  constructor(message: string, options: { code: RandomErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'RandomError';
  }
}
