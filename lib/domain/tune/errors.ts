import { AgentflowError } from '#lib/domain/errors/index.ts';

/** Codes of the tuner's failures; callers branch on these rather than on messages. */
export type TuneErrorCode = 'TUNE_CONFIG_INVALID' | 'TUNE_OBJECTIVE_INVALID' | 'TUNE_METRIC_MISSING' | 'TUNE_RESULTS_INVALID' | 'TUNE_STATE_INVALID';

/** Every failure of `lib/domain/tune`: bad tuner options, objectives, metrics, results or stored state. */
export class TuneError extends AgentflowError {
  declare readonly code: TuneErrorCode;

  constructor(message: string, options: { code: TuneErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'TuneError';
  }
}
