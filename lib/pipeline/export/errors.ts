import { AgentflowError } from '#lib/domain/errors/index.ts';

export type DeployErrorCode =
  | 'MODEL_TASKS_MISMATCH'
  | 'SPLIT_EMPTY'
  | 'TRIAL_NOT_SUCCEEDED'
  | 'VERSION_MISSING'
  | 'PARITY'
  | 'NO_PRODUCTION'
  | 'ALIAS_CONFLICT'
  | 'QUANTIZE'
  | 'LIVE_MODEL_INVALID';

export class DeployError extends AgentflowError {
  constructor(message: string, options: { code: DeployErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'DeployError';
  }
}
