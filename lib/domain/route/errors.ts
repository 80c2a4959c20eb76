import { AgentflowError } from '#lib/domain/errors/index.ts';

export type RouteErrorCode = 'ROUTE_ARMS_INVALID' | 'ROUTE_REWARD_INVALID';

/** Every failure of `lib/domain/route`: a serving set or a feedback reward the router cannot use. */
export class RouteError extends AgentflowError {
  declare readonly code: RouteErrorCode;

  constructor(message: string, options: { code: RouteErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'RouteError';
  }
}
