import { AgentflowError } from '#lib/domain/errors/index.ts';

export type ReportErrorCode = 'RUN_NOT_FOUND' | 'CHART_LIBRARY_MISSING' | 'WRITE_FAILED' | 'LOOP_TIMELINE_INVALID';

export class ReportError extends AgentflowError {
  constructor(message: string, options: { code: ReportErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'ReportError';
  }
}
