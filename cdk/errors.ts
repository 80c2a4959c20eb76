import { AgentflowError } from '#lib/domain/errors/index.ts';

/** Errors of the CDK app: bad context values, missing entry points, incomplete wiring. */
export class DeployError extends AgentflowError {
  constructor(
    message: string,
    options: { code: 'CONTEXT_INVALID' | 'ENTRY_MISSING' | 'WIRING_INCOMPLETE'; context?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DeployError';
  }
}
