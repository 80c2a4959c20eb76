import { AgentflowError } from '#lib/domain/errors/index.ts';

/**
 * Codes, with the HTTP status the Function URL handlers answer:
 * - REQUEST_INVALID (400): the body, a record, a field or the reward is wrong; the message names it and the fix.
 * - REQUEST_TOO_LARGE (400): the body is over the byte limit, or it has more records than allowed.
 * - PROJECT_NOT_SERVED (404): no serving set for the project.
 * - VERSION_NOT_SERVED (404): a pinned version that is not in the serving set.
 * - PREDICTION_NOT_FOUND (404), FEEDBACK_DUPLICATE (409): feedback for an unknown id, or a second one.
 * - ROUTE_NOT_FOUND (404), METHOD_NOT_ALLOWED (405): the HTTP path or method.
 * - NO_SERVABLE_VERSION (503): every version of the serving set was refused (integrity, load).
 * - MODEL_INTEGRITY, MODEL_INVALID: why one version was refused (sha256 mismatch; card and file disagree).
 * - MONITOR_FAILED: a monitor pass could not read what it needs.
 */
export type ServeErrorCode =
  | 'REQUEST_INVALID'
  | 'REQUEST_TOO_LARGE'
  | 'PROJECT_NOT_SERVED'
  | 'VERSION_NOT_SERVED'
  | 'PREDICTION_NOT_FOUND'
  | 'FEEDBACK_DUPLICATE'
  | 'ROUTE_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'NO_SERVABLE_VERSION'
  | 'MODEL_INTEGRITY'
  | 'MODEL_INVALID'
  | 'MONITOR_FAILED';

export class ServeError extends AgentflowError {
  declare readonly code: ServeErrorCode;

  constructor(message: string, options: { code: ServeErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'ServeError';
  }
}

/** The HTTP status a ServeError answers with; anything else is a 500. */
export const STATUS_BY_CODE: Readonly<Record<ServeErrorCode, number>> = {
  REQUEST_INVALID: 400,
  REQUEST_TOO_LARGE: 400,
  PROJECT_NOT_SERVED: 404,
  VERSION_NOT_SERVED: 404,
  PREDICTION_NOT_FOUND: 404,
  FEEDBACK_DUPLICATE: 409,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NO_SERVABLE_VERSION: 503,
  MODEL_INTEGRITY: 503,
  MODEL_INVALID: 503,
  MONITOR_FAILED: 500,
};

export function badRequest(message: string, context: Record<string, unknown> = {}): ServeError {
  return new ServeError(message, { code: 'REQUEST_INVALID', context });
}
