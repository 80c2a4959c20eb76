import * as z from 'zod';
import { describeError, errorLogFields } from '#lib/domain/errors/index.ts';
import type { ServeBase } from './base.ts';
import { STATUS_BY_CODE, ServeError, badRequest } from './errors.ts';

/** The parts of a Lambda Function URL event (API Gateway payload v2.0) the handlers read. */
export const functionUrlEventSchema = z.object({
  rawPath: z.string().default('/'),
  headers: z.record(z.string(), z.string()).default({}),
  body: z.string().optional(),
  isBase64Encoded: z.boolean().default(false),
  requestContext: z.object({ http: z.object({ method: z.string() }), requestId: z.string().optional() }),
});

export type FunctionUrlEvent = z.input<typeof functionUrlEventSchema>;

export interface FunctionUrlResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** Error bodies: `{ error: { code, message, details? } }`. */
export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** An operation on a parsed body, answering with its response's JSON text. */
export type Operation<C> = (body: unknown, context: C) => Promise<string>;

/** The fields the handlers read, straight from a well-formed event; anything else goes through the schema, which names the problem. */
function readEvent(event: unknown, name: string): { method: string; body: string | undefined; isBase64Encoded: boolean } {
  if (typeof event === 'object' && event !== null) {
    const { body, isBase64Encoded, requestContext } = event as { body?: unknown; isBase64Encoded?: unknown; requestContext?: { http?: { method?: unknown } } };
    const method = requestContext?.http?.method;
    if (
      typeof method === 'string' &&
      (typeof body === 'string' || body === undefined) &&
      (typeof isBase64Encoded === 'boolean' || isBase64Encoded === undefined)
    ) {
      return { method, body, isBase64Encoded: isBase64Encoded ?? false };
    }
  }
  const parsed = functionUrlEventSchema.safeParse(event);
  if (!parsed.success) {
    throw badRequest(
      `the ${name} handler got an event that is not a Function URL request (${parsed.error.issues[0]?.message}); invoke it through its Function URL`,
    );
  }
  return { method: parsed.data.requestContext.http.method, body: parsed.data.body, isBase64Encoded: parsed.data.isBase64Encoded };
}

/**
 * A POST Function URL request through `operation`, errors mapped to status codes. The operations
 * (infer.ts, feedback.ts) bring their own handlers, so this module imports neither: the feedback
 * function's bundle then holds no model code and no ONNX Runtime.
 */
export async function handleFunctionUrl<C extends Pick<ServeBase, 'limits' | 'logger'>>(
  event: unknown,
  context: C,
  operation: Operation<C>,
  name: string,
): Promise<FunctionUrlResult> {
  try {
    const { method, body, isBase64Encoded } = readEvent(event, name);
    if (method !== 'POST' && method.toUpperCase() !== 'POST') {
      throw new ServeError(`${method} is not allowed; ${name} takes POST with a JSON body`, { code: 'METHOD_NOT_ALLOWED', context: { method } });
    }
    return jsonText(200, await operation(readBody(body, isBase64Encoded, context.limits.maxBodyBytes), context));
  } catch (error) {
    return errorResult(error, context, name);
  }
}

function readBody(body: string | undefined, isBase64Encoded: boolean, maxBodyBytes: number): unknown {
  if (body === undefined || body === '') throw badRequest('the body is empty; send a JSON object');
  // A plain body is measured and parsed in place; only a base64 one is decoded first. UTF-8 takes
  // at most 3 bytes per UTF-16 unit, so a text that short is within the limit unmeasured.
  const text = isBase64Encoded ? Buffer.from(body, 'base64').toString('utf8') : body;
  if (text.length * 3 > maxBodyBytes) {
    const sizeBytes = Buffer.byteLength(text, 'utf8');
    if (sizeBytes > maxBodyBytes) {
      throw new ServeError(`the body is ${sizeBytes} bytes; send at most ${maxBodyBytes} bytes per request (split the batch)`, {
        code: 'REQUEST_TOO_LARGE',
        context: { sizeBytes, maxBodyBytes },
      });
    }
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ServeError(`the body is not JSON (${(cause as Error).message}); send a JSON object with Content-Type application/json`, {
      code: 'REQUEST_INVALID',
      cause,
    });
  }
}

export function errorResult(error: unknown, context: Pick<ServeBase, 'logger'>, operation: string): FunctionUrlResult {
  if (error instanceof ServeError) {
    const status = STATUS_BY_CODE[error.code];
    if (status >= 500) context.logger.error(`${operation} failed`, errorLogFields(error));
    const details = error.context && Object.keys(error.context).length > 0 ? { details: error.context } : {};
    return json(status, { error: { code: error.code, message: error.message, ...details } } satisfies ErrorBody);
  }
  context.logger.error(`${operation} failed`, errorLogFields(error));
  return json(500, {
    error: { code: 'INTERNAL', message: `${operation} failed unexpectedly (${describeError(error).message}); the error is logged` },
  } satisfies ErrorBody);
}

export function json(statusCode: number, value: unknown): FunctionUrlResult {
  return jsonText(statusCode, JSON.stringify(value));
}

function jsonText(statusCode: number, body: string): FunctionUrlResult {
  return { statusCode, headers: { 'content-type': 'application/json' }, body };
}
