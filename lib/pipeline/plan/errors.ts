import { AgentflowError } from '#lib/domain/errors/index.ts';

export type AgentErrorCode = 'GENERATION_FAILED' | 'AGENT_STATE_MISSING' | 'TRIAL_RESULT_INVALID' | 'SCREENING_INVALID' | 'BUDGET_EXCEEDS_HISTORY';

export class AgentError extends AgentflowError {
  constructor(message: string, options: { code: AgentErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
  }
}
