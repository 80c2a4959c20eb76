import { AgentflowError } from '#lib/domain/errors/index.ts';

export class SynthError extends AgentflowError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(message, { code: 'SYNTH_OPTIONS_INVALID', context });
    this.name = 'SynthError';
  }
}
