/**
 * The base of every agentflow error family. Each module defines its own subclass
 * (`SpecError`, `RegistryError`, …) so callers can branch on `instanceof` and on `code`.
 */
export class AgentflowError extends Error {
  /** A stable, machine-readable code such as `SPEC_INVALID` or `ALIAS_CONFLICT`. */
  readonly code: string;
  /** Values that explain the failure (field path, bad value, ids); safe to log. */
  readonly context: Record<string, unknown>;

  constructor(message: string, options: { code: string; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentflowError';
    this.code = options.code;
    this.context = options.context ?? {};
  }
}

/** A plain object for logs and Step Functions error payloads (`JSON.stringify(error)` prints `{}`). */
export function describeError(error: unknown): { name: string; message: string; code?: string; context?: Record<string, unknown> } {
  if (error instanceof AgentflowError) {
    return { name: error.name, message: error.message, code: error.code, context: error.context };
  }
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: 'Error', message: String(error) };
}

/**
 * The fields to log an error with: the Error itself under `error`, which Powertools' Logger
 * writes out with its name, message, stack and cause (spread as plain fields, the reserved key
 * `message` is dropped and only the name survives), plus an agentflow error's code and context.
 */
export function errorLogFields(error: unknown): { error: Error; code?: string; context?: Record<string, unknown> } {
  if (error instanceof AgentflowError) return { error, code: error.code, context: error.context };
  return { error: error instanceof Error ? error : new Error(String(error)) };
}
