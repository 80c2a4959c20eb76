import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { RewardLog } from '#lib/adapters/registry/index.ts';
import { ServeError } from './errors.ts';

/**
 * The index is canonical base 36 (`0`, never `00`): the reward row is keyed on the id's text and
 * the MAC covers the request, not the index, so a second spelling of one index would be a second
 * prediction. Every other field is either canonical by its pattern (version) or inside the MAC.
 */
const ID = /^([1-9][0-9]{0,8})\.([0-9a-z]{1,10})\.([A-Za-z0-9_-]{12})\.(0|[1-9a-z][0-9a-z]{0,3})\.([0-9a-z]{1,4})\.([A-Za-z0-9_-]{16})$/;
/** Records one request may carry, at most (the id's count field is bounded to 4 base-36 digits). */
const MAX_BATCH = 36 ** 4 - 1;

/**
 * Prediction ids that carry their own proof:
 * `<version>.<issued, base36 seconds>.<nonce>.<index>.<count>.<mac>`, one per record of a request,
 * the MAC an HMAC-SHA256 over project, version, time, nonce and the request's record count (one
 * MAC per request, not per record: 64 records cost one HMAC); an index at or past the count is
 * an id nobody issued. Feedback learns the version from
 * the id and knows Infer issued it, so Infer writes nothing before it answers (the exactly-once
 * write happens once, at feedback). The key lives in the reward table, which only the serving
 * functions and the pipeline can read; whoever can read it could also write feedback directly.
 */
export class PredictionIds {
  /** Keeps the signing key: one per deployment in the reward table, created by the first server that needs it. */
  readonly #rewards: RewardLog;
  readonly #clock: () => number;
  readonly #retentionSeconds: number;
  #key: Promise<KeyObject> | undefined;
  /** The key, once loaded. */
  #signer: KeyObject | undefined;

  constructor(options: { rewards: RewardLog; clock?: () => number; retentionDays?: number }) {
    this.#rewards = options.rewards;
    this.#clock = options.clock ?? Date.now;
    this.#retentionSeconds = Math.round((options.retentionDays ?? 30) * 86_400);
  }

  /** How long feedback is accepted after the prediction. */
  get retentionSeconds(): number {
    return this.#retentionSeconds;
  }

  /** The ids of one request's `count` predictions, in record order. */
  async issue(project: string, version: number, count = 1): Promise<string[]> {
    return this.issueNow(project, version, count) ?? idsOf(await this.#signingKey(), project, version, this.#issued(), this.#nonce(), count);
  }

  /** `issue` without waiting, once the signing key is loaded; undefined until then. */
  issueNow(project: string, version: number, count = 1): string[] | undefined {
    if (!Number.isInteger(count) || count < 1 || count > MAX_BATCH) throw new RangeError(`count ${count} is not a request's record count (1 to ${MAX_BATCH})`);
    return this.#signer && idsOf(this.#signer, project, version, this.#issued(), this.#nonce(), count);
  }

  /** The version and time a prediction id stands for; an id Infer did not issue for this project is "not found". */
  async verify(project: string, predictionId: string): Promise<{ version: number; issuedAt: Date }> {
    const match = ID.exec(predictionId);
    const unknown = () =>
      new ServeError(
        `${project} has no prediction "${predictionId}": it is not an id Infer returned for this project; send feedback for an id from an infer response`,
        {
          code: 'PREDICTION_NOT_FOUND',
          context: { project, predictionId },
        },
      );
    if (!match) throw unknown();
    const [, versionText, issued, nonce, index, count, given] = match;
    const version = Number(versionText);
    if (Number.parseInt(index, 36) >= Number.parseInt(count, 36)) throw unknown();
    const expected = Buffer.from(mac(await this.#signingKey(), project, version, issued, nonce, count), 'base64url');
    const actual = Buffer.from(given, 'base64url');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw unknown();
    const issuedAt = new Date(Number.parseInt(issued, 36) * 1000);
    const ageSeconds = (this.#clock() - issuedAt.getTime()) / 1000;
    if (ageSeconds > this.#retentionSeconds) {
      throw new ServeError(
        `prediction "${predictionId}" of ${project} was made ${Math.floor(ageSeconds / 86_400)} days ago; feedback is accepted for ${Math.round(this.#retentionSeconds / 86_400)} days`,
        {
          code: 'PREDICTION_NOT_FOUND',
          context: { project, predictionId, issuedAt: issuedAt.toISOString() },
        },
      );
    }
    return { version, issuedAt };
  }

  /** 9 random bytes, 12 base64url characters. */
  #nonce(): string {
    return randomBytes(9).toString('base64url');
  }

  /** Now in base-36 seconds. */
  #issued(): string {
    return Math.floor(this.#clock() / 1000).toString(36);
  }

  #signingKey(): Promise<KeyObject> {
    // A KeyObject made once: each MAC then starts from it rather than from the raw bytes.
    this.#key ??= this.#loadKey()
      .then((key) => (this.#signer = createSecretKey(key)))
      .catch((error: unknown) => {
        this.#key = undefined;
        throw error;
      });
    return this.#key;
  }

  async #loadKey(): Promise<Buffer> {
    const key = await this.#rewards.predictionSigningKey(() => ({ key: randomBytes(32).toString('base64'), createdAt: new Date(this.#clock()).toISOString() }));
    return Buffer.from(key, 'base64');
  }
}

function idsOf(key: KeyObject, project: string, version: number, issued: string, nonce: string, count: number): string[] {
  const n = count.toString(36);
  const signature = mac(key, project, version, issued, nonce, n);
  const ids = new Array<string>(count);
  for (let i = 0; i < count; i += 1) ids[i] = `${version}.${issued}.${nonce}.${i.toString(36)}.${n}.${signature}`;
  return ids;
}

/** HMAC-SHA256 of the id's fields, its first 12 bytes in base64url. */
function mac(key: KeyObject, project: string, version: number, issued: string, nonce: string, count: string): string {
  return createHmac('sha256', key)
    .update(`${project}\u0000${version}\u0000${issued}\u0000${nonce}\u0000${count}`)
    .digest()
    .subarray(0, 12)
    .toString('base64url');
}
