import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ServeError } from './errors.ts';

/** The signing key's item in the reward table: one per deployment, created by the first server that needs it. */
const KEY_ITEM = { pk: 'AGENTFLOW#SERVE', sk: 'PREDICTION_SIGNING_KEY' } as const;
const ID = /^([1-9][0-9]{0,8})\.([0-9a-z]{1,10})\.([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{16})$/;

/**
 * Prediction ids that carry their own proof: `<version>.<issued, base36 seconds>.<nonce>.<mac>`,
 * the MAC an HMAC-SHA256 over project, version, time and nonce. Feedback learns the version from
 * the id and knows Infer issued it, so Infer writes nothing before it answers (the exactly-once
 * write happens once, at feedback). The key lives in the reward table, which only the serving
 * functions and the pipeline can read; whoever can read it could also write feedback directly.
 */
export class PredictionIds {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #clock: () => number;
  readonly #retentionSeconds: number;
  #key: Promise<Buffer> | undefined;

  constructor(options: { dynamodb: DynamoDBDocumentClient; tableName: string; clock?: () => number; retentionDays?: number }) {
    this.#db = options.dynamodb;
    this.#table = options.tableName;
    this.#clock = options.clock ?? Date.now;
    this.#retentionSeconds = Math.round((options.retentionDays ?? 30) * 86_400);
  }

  /** How long feedback is accepted after the prediction. */
  get retentionSeconds(): number {
    return this.#retentionSeconds;
  }

  async issue(project: string, version: number): Promise<string> {
    const key = await this.#signingKey();
    const issued = Math.floor(this.#clock() / 1000).toString(36);
    const nonce = this.#nonce();
    return `${version}.${issued}.${nonce}.${mac(key, project, version, issued, nonce)}`;
  }

  /** The version and time a prediction id stands for; an id Infer did not issue for this project is "not found". */
  async verify(project: string, predictionId: string): Promise<{ version: number; issuedAt: Date }> {
    const match = ID.exec(predictionId);
    const unknown = () =>
      new ServeError(`${project} has no prediction "${predictionId}": it is not an id Infer returned for this project; send feedback for an id from an infer response`, {
        code: 'PREDICTION_NOT_FOUND',
        context: { project, predictionId },
      });
    if (!match) throw unknown();
    const [, versionText, issued, nonce, given] = match;
    const version = Number(versionText);
    const expected = Buffer.from(mac(await this.#signingKey(), project, version, issued, nonce), 'base64url');
    const actual = Buffer.from(given, 'base64url');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw unknown();
    const issuedAt = new Date(Number.parseInt(issued, 36) * 1000);
    const ageSeconds = (this.#clock() - issuedAt.getTime()) / 1000;
    if (ageSeconds > this.#retentionSeconds) {
      throw new ServeError(`prediction "${predictionId}" of ${project} was made ${Math.floor(ageSeconds / 86_400)} days ago; feedback is accepted for ${Math.round(this.#retentionSeconds / 86_400)} days`, {
        code: 'PREDICTION_NOT_FOUND',
        context: { project, predictionId, issuedAt: issuedAt.toISOString() },
      });
    }
    return { version, issuedAt };
  }

  #pool = Buffer.alloc(0);
  #poolOffset = 0;

  /** 9 random bytes from a pool refilled 4 KiB at a time: a getrandom call per id showed up in the infer profile. */
  #nonce(): string {
    if (this.#poolOffset + 9 > this.#pool.length) {
      this.#pool = randomBytes(4096);
      this.#poolOffset = 0;
    }
    this.#poolOffset += 9;
    return this.#pool.subarray(this.#poolOffset - 9, this.#poolOffset).toString('base64url');
  }

  #signingKey(): Promise<Buffer> {
    this.#key ??= this.#loadKey().catch((error: unknown) => {
      this.#key = undefined;
      throw error;
    });
    return this.#key;
  }

  async #loadKey(): Promise<Buffer> {
    const read = async () => (await this.#db.send(new GetCommand({ TableName: this.#table, Key: KEY_ITEM, ConsistentRead: true }))).Item?.key as string | undefined;
    const existing = await read();
    if (existing) return Buffer.from(existing, 'base64');
    try {
      const key = randomBytes(32).toString('base64');
      await this.#db.send(new PutCommand({ TableName: this.#table, Item: { ...KEY_ITEM, key, createdAt: new Date(this.#clock()).toISOString() }, ConditionExpression: 'attribute_not_exists(pk)' }));
      return Buffer.from(key, 'base64');
    } catch (error) {
      // Another server created it first: use theirs.
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      return Buffer.from((await read())!, 'base64');
    }
  }
}

function mac(key: Buffer, project: string, version: number, issued: string, nonce: string): string {
  return createHmac('sha256', key).update(`${project}\u0000${version}\u0000${issued}\u0000${nonce}`).digest().subarray(0, 12).toString('base64url');
}
