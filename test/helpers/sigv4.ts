/**
 * SigV4 checking for the local stand-ins of AWS endpoints: a request is accepted only if the
 * signature it carries is the one SignatureV4 computes again, from the known test credentials,
 * over the headers it says it signed, its method, path, query and body. A tampered or unsigned
 * request gets the 403 AWS answers, so a test through these endpoints fails on a wrong signature.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity } from '@smithy/types';

/** The credentials the tests sign with (and the stand-ins check against). */
export const TEST_CREDENTIALS: AwsCredentialIdentity = {
  accessKeyId: 'AKIDAGENTFLOWTEST',
  secretAccessKey: 'agentflow-test-secret-key',
  sessionToken: 'agentflow-test-session',
};

export interface ReceivedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: Record<string, string>;
  body: string;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** Recomputes the request's SigV4 signature for `service` in `region` and compares it with the one sent. */
export async function checkSignature(
  request: ReceivedRequest,
  expected: { credentials: AwsCredentialIdentity; region: string; service: string },
): Promise<SignatureCheck> {
  const match = AUTHORIZATION.exec(request.headers.authorization ?? '');
  if (!match) return { ok: false, reason: 'no SigV4 Authorization header' };
  const [, accessKeyId, , region, service, signedHeaders] = match;
  if (accessKeyId !== expected.credentials.accessKeyId) return { ok: false, reason: `unknown access key ${accessKeyId}` };
  if (region !== expected.region || service !== expected.service)
    return { ok: false, reason: `signed for ${service} in ${region}, not ${expected.service} in ${expected.region}` };
  const amzDate = request.headers['x-amz-date'];
  if (!amzDate) return { ok: false, reason: 'no x-amz-date header' };
  const signingDate = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  // The signer takes a sent payload hash as given, so it is checked against the body here, as AWS does.
  const payloadHash = request.headers['x-amz-content-sha256'];
  if (payloadHash !== undefined && payloadHash !== createHash('sha256').update(request.body).digest('hex'))
    return { ok: false, reason: 'payload hash does not match the body' };
  const headers = Object.fromEntries(signedHeaders.split(';').map((name) => [name, request.headers[name] ?? '']));
  const url = new URL(request.url, `http://${request.headers.host}`);
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of url.searchParams) {
    const previous = query[key];
    query[key] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
  }
  const signer = new SignatureV4({ service, region, credentials: expected.credentials, sha256: Hash.bind(null, 'sha256') });
  const again = await signer.sign(
    { method: request.method, protocol: 'http:', hostname: url.hostname, path: url.pathname, query, headers, body: request.body },
    { signingDate },
  );
  return again.headers.authorization === request.headers.authorization ? { ok: true } : { ok: false, reason: 'signature does not match' };
}

async function receive(request: IncomingMessage): Promise<ReceivedRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(',') : (value ?? '')]));
  return { method: request.method ?? 'GET', url: request.url ?? '/', headers, body: Buffer.concat(chunks).toString('utf8') };
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export interface SignedEndpoint {
  /** `http://127.0.0.1:<port>/`, with the trailing slash a Function URL has. */
  url: string;
  /** Requests that passed the signature check, in order. */
  accepted: ReceivedRequest[];
  /** Requests refused with 403, with why. */
  refused: { request: ReceivedRequest; reason: string }[];
  close(): Promise<void>;
}

/**
 * An HTTP endpoint on loopback that checks each request's SigV4 signature, answers 403 with
 * `refusal` when it is wrong, and otherwise hands the request to `handle`.
 */
export async function startSignedEndpoint(options: {
  service: string;
  region: string;
  credentials?: AwsCredentialIdentity;
  handle: (request: ReceivedRequest) => Promise<Answer>;
  /** What AWS answers an unsigned or badly signed request; default Lambda's `{"Message":"Forbidden"}`. */
  refusal?: (reason: string) => Answer;
}): Promise<SignedEndpoint> {
  const accepted: ReceivedRequest[] = [];
  const refused: SignedEndpoint['refused'] = [];
  const refusal =
    options.refusal ??
    (() => ({
      status: 403,
      headers: { 'content-type': 'application/json', 'x-amzn-errortype': 'AccessDeniedException' },
      body: JSON.stringify({ Message: 'Forbidden' }),
    }));
  const reply = (response: ServerResponse, answer: Answer) => {
    response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    response.end(answer.body);
  };
  const server = createServer((incoming, response) => {
    void (async () => {
      const request = await receive(incoming);
      const check = await checkSignature(request, { credentials: options.credentials ?? TEST_CREDENTIALS, region: options.region, service: options.service });
      if (!check.ok) {
        refused.push({ request, reason: check.reason });
        reply(response, refusal(check.reason));
        return;
      }
      accepted.push(request);
      try {
        reply(response, await options.handle(request));
      } catch (error) {
        reply(response, { status: 500, body: JSON.stringify({ Message: (error as Error).message }) });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    accepted,
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
