import { AgentflowError } from '#lib/domain/errors/index.ts';

/** A command's own refusal: bad arguments, an unreachable server, a version that must not be promoted. */
export class CliError extends AgentflowError {
  constructor(
    message: string,
    options: {
      code: 'RECORDS_INVALID' | 'REWARD_INVALID' | 'SERVER_UNREACHABLE' | 'VERSION_INVALID' | 'VERSION_NOT_FOUND' | 'VERSION_REJECTED' | 'MODEL_INTEGRITY';
      context?: Record<string, unknown>;
      cause?: unknown;
    },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}
