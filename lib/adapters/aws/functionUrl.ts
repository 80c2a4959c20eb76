/**
 * Calling the stack's IAM-authenticated Function URLs (Infer, Feedback): each request is signed
 * with SigV4 for service `lambda` by the SDK's own signer, never by hand, and the answer is read
 * the way the local server's is (the same handlers produce both).
 */
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { AgentflowError } from '#lib/domain/errors/index.ts';

/**
 * An answer a Function URL (or the local server) refused. `code` is the handler's own code
 * (`PREDICTION_NOT_FOUND`, `FEEDBACK_DUPLICATE`, …) when it sent one, so exit codes match the
 * local commands; `FUNCTION_URL_FORBIDDEN` when IAM refused the caller; `FUNCTION_URL_FAILED` else.
 */
export class FunctionUrlError extends AgentflowError {
  readonly status: number;
  constructor(message: string, options: { code: string; status: number; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, {
      code: options.code,
      context: { status: options.status, ...options.context },
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.name = 'FunctionUrlError';
    this.status = options.status;
  }
}

/** The permissions a caller of an AWS_IAM Function URL needs (both, for URLs created since October 2025). */
export const FUNCTION_URL_PERMISSIONS = ['lambda:InvokeFunctionUrl', 'lambda:InvokeFunction'] as const;

/** What `onRequest` sees of each call (for recording: the IAM test maps it to the two lambda actions). */
export interface FunctionUrlRequest {
  url: string;
  region: string;
  service: 'lambda';
  /** The function behind the URL, when the caller knows it (the stack's InferFunctionArn / FeedbackFunctionArn). */
  functionArn?: string;
}

export interface FunctionUrlClientOptions {
  region: string;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  fetch?: typeof fetch;
  onRequest?: (request: FunctionUrlRequest) => void;
}

/**
 * The JSON answer of a Function URL-shaped endpoint, or a `FunctionUrlError` carrying the
 * handler's `{ error: { code, message } }`. `where` names the endpoint in messages.
 */
export async function readServedAnswer(response: Response, where: string): Promise<unknown> {
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (response.ok) {
    if (body === undefined) {
      throw new FunctionUrlError(
        `${where} answered ${response.status} without a JSON body (${JSON.stringify(text.slice(0, 200))}); is the URL the stack's InferUrl/FeedbackUrl?`,
        {
          code: 'FUNCTION_URL_FAILED',
          status: response.status,
          context: { where },
        },
      );
    }
    return body;
  }
  const served = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (served && typeof served.code === 'string' && typeof served.message === 'string') {
    throw new FunctionUrlError(served.message, { code: served.code, status: response.status, context: { where } });
  }
  // Not the handler's answer: Lambda's own (IAM, throttling) says { "Message": "…" }.
  const detail =
    (body as { Message?: unknown; message?: unknown } | undefined)?.Message ?? (body as { message?: unknown } | undefined)?.message ?? text.slice(0, 200);
  if (response.status === 403) {
    throw new FunctionUrlError(
      `${where} refused the signed request (403 ${String(detail)}): the caller needs ${FUNCTION_URL_PERMISSIONS.join(' and ')} on that function ` +
        '(docs/caller-policy.json grants both), with credentials of the account the stack is deployed in',
      { code: 'FUNCTION_URL_FORBIDDEN', status: 403, context: { where } },
    );
  }
  throw new FunctionUrlError(`${where} answered ${response.status}: ${String(detail)}`, {
    code: 'FUNCTION_URL_FAILED',
    status: response.status,
    context: { where },
  });
}

export class FunctionUrlClient {
  readonly #signer: SignatureV4;
  readonly #options: FunctionUrlClientOptions;

  constructor(options: FunctionUrlClientOptions) {
    this.#options = options;
    this.#signer = new SignatureV4({ service: 'lambda', region: options.region, credentials: options.credentials, sha256: Hash.bind(null, 'sha256') });
  }

  /** POSTs `body` as JSON to `url`, signed; resolves with the JSON answer. `functionArn` only labels the request for `onRequest`. */
  async post(url: string, body: unknown, options: { functionArn?: string } = {}): Promise<unknown> {
    let target: URL;
    try {
      target = new URL(url);
    } catch (cause) {
      throw new FunctionUrlError(`${JSON.stringify(url)} is not a URL; check the stack's InferUrl/FeedbackUrl output`, {
        code: 'FUNCTION_URL_FAILED',
        status: 0,
        cause,
      });
    }
    const text = JSON.stringify(body);
    const signed = await this.#signer.sign({
      method: 'POST',
      protocol: target.protocol,
      hostname: target.hostname,
      ...(target.port ? { port: Number(target.port) } : {}),
      path: target.pathname,
      query: Object.fromEntries(target.searchParams),
      // The signature covers the host; fetch sends the same one itself (it may not be set by hand).
      headers: { host: target.host, 'content-type': 'application/json' },
      body: text,
    });
    const { host: _host, ...headers } = signed.headers;
    this.#options.onRequest?.({ url, region: this.#options.region, service: 'lambda', ...(options.functionArn ? { functionArn: options.functionArn } : {}) });
    const response = await (this.#options.fetch ?? fetch)(url, { method: 'POST', headers, body: text }).catch((cause: unknown) => {
      throw new FunctionUrlError(`cannot reach ${url} (${(cause as Error).message}); check the network and the stack's outputs`, {
        code: 'FUNCTION_URL_FAILED',
        status: 0,
        cause,
      });
    });
    return readServedAnswer(response, url);
  }
}
