import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorLogFields } from '#lib/domain/errors/index.ts';
import type { ServeContext } from './context.ts';
import { ServeError } from './errors.ts';
import { handleFeedbackEvent } from './feedback.ts';
import { errorResult, json, type FunctionUrlEvent, type FunctionUrlResult } from './http.ts';
import { handleInferEvent } from './infer.ts';

export interface StartServerOptions {
  context: ServeContext;
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
}

export interface RunningServer {
  /** `http://host:port`, no trailing slash. */
  url: string;
  /** Stops accepting requests, closes idle connections, and closes the serving context. */
  close(): Promise<void>;
}

const ROUTES: Record<string, (event: unknown, context: ServeContext) => Promise<FunctionUrlResult>> = {
  '/infer': handleInferEvent,
  '/feedback': handleFeedbackEvent,
};

/**
 * `POST /infer` and `POST /feedback` on Node's http server, through the very handlers the Function
 * URLs run: each request becomes a Function URL event and the handler's result becomes the response.
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { context } = options;
  const server = createServer((request, response) => {
    void serve(request, response, context);
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    close() {
      closed ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await context.close();
      })();
      return closed;
    },
  };
}

async function serve(request: IncomingMessage, response: ServerResponse, context: ServeContext): Promise<void> {
  let result: FunctionUrlResult;
  try {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const route = ROUTES[path];
    if (!route) {
      result = json(404, { error: { code: 'ROUTE_NOT_FOUND', message: `no route ${request.method} ${path}; use POST /infer or POST /feedback` } });
      request.resume();
    } else {
      const { body, sizeBytes } = await readBody(request, context.limits.maxBodyBytes);
      if (sizeBytes > context.limits.maxBodyBytes) {
        // The same refusal the handler gives, without holding an unbounded body in memory.
        result = errorResult(
          new ServeError(`the body is ${sizeBytes} bytes; send at most ${context.limits.maxBodyBytes} bytes per request (split the batch)`, {
            code: 'REQUEST_TOO_LARGE',
            context: { sizeBytes, maxBodyBytes: context.limits.maxBodyBytes },
          }),
          context,
          path.slice(1),
        );
        response.writeHead(result.statusCode, result.headers);
        response.end(result.body);
        return;
      }
      const event: FunctionUrlEvent = {
        rawPath: path,
        headers: Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')])),
        body: body.toString('utf8'),
        isBase64Encoded: false,
        requestContext: { http: { method: request.method ?? 'GET' } },
      };
      result = await route(event, context);
    }
  } catch (error) {
    context.logger.error('local server failed', errorLogFields(error));
    result = json(500, { error: { code: 'INTERNAL', message: 'the local server failed; see its log' } });
  }
  response.writeHead(result.statusCode, result.headers);
  response.end(result.body);
}

/** The body and its size; past the limit the rest is counted, not kept. */
async function readBody(request: IncomingMessage, maxBodyBytes: number): Promise<{ body: Buffer; sizeBytes: number }> {
  const chunks: Buffer[] = [];
  let sizeBytes = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    sizeBytes += chunk.byteLength;
    if (sizeBytes <= maxBodyBytes) chunks.push(chunk);
  }
  return { body: Buffer.concat(chunks), sizeBytes };
}
