import { GetCommand, QueryCommand, type DynamoDBDocumentClient, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { AgentflowError } from '#lib/domain/errors/index.ts';

/**
 * Codes: VERSION_NOT_FOUND, VERSION_CONFLICT, ALIAS_NOT_FOUND, ALIAS_CONFLICT, NO_PREVIOUS_VERSION,
 * SERVING_SET_INVALID, SERVING_SET_CONFLICT, RUN_NOT_FOUND, RUN_CONFLICT, RUN_FINISHED,
 * POLICY_CONFLICT, PREDICTION_NOT_FOUND, FEEDBACK_DUPLICATE, INVALID_ARGUMENT, TABLE_NOT_FOUND,
 * DYNAMODB_FAILED.
 */
export class RegistryError extends AgentflowError {
  constructor(message: string, options: { code: string; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'RegistryError';
  }
}

export function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException';
}

/** Runs one DynamoDB call, turning infrastructure failures into RegistryErrors that name the table. */
export async function call<T>(tableName: string, action: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw dynamoError(tableName, action, error);
  }
}

/** A failed call as a RegistryError; condition failures and RegistryErrors pass through for the caller to judge. */
export function dynamoError(tableName: string, action: string, error: unknown): unknown {
  if (error instanceof RegistryError || isConditionFailure(error)) return error;
  if ((error as { name?: string }).name === 'ResourceNotFoundException') {
    return new RegistryError(`DynamoDB table "${tableName}" does not exist: create it (the CDK stack or startLocalAws does) or fix the table name`, {
      code: 'TABLE_NOT_FOUND',
      context: { tableName, action },
      cause: error,
    });
  }
  return new RegistryError(`DynamoDB ${action} on "${tableName}" failed: ${(error as Error).message}`, {
    code: 'DYNAMODB_FAILED',
    context: { tableName, action },
    cause: error,
  });
}

/** Every item a query matches, following pages. */
export async function queryAll(dynamodb: DynamoDBDocumentClient, input: QueryCommandInput, action: string): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await call(input.TableName ?? '', action, () => dynamodb.send(new QueryCommand({ ...input, ExclusiveStartKey: start })));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

/** An id used inside a key: non-empty and free of the `#` separator, so keys cannot collide. */
export function keyPart(label: string, value: string): string {
  if (typeof value !== 'string' || value === '' || value.includes('#')) {
    throw new RegistryError(`${label} ${JSON.stringify(value)} cannot be used as a key: use a non-empty string without "#"`, {
      code: 'INVALID_ARGUMENT',
      context: { [label]: value },
    });
  }
  return value;
}

export function versionPart(version: number): string {
  if (!Number.isInteger(version) || version < 1) {
    throw new RegistryError(`version ${JSON.stringify(version)} is not a model version: use a positive integer`, {
      code: 'INVALID_ARGUMENT',
      context: { version },
    });
  }
  return String(version).padStart(7, '0');
}

/** Revision 0 (or undefined) means "the item does not exist yet". */
export function revisionOf(expectedRevision: number | undefined): number {
  const revision = expectedRevision ?? 0;
  if (!Number.isInteger(revision) || revision < 0) {
    throw new RegistryError(`expectedRevision ${JSON.stringify(expectedRevision)} is not a revision: use the revision you read, or 0 when there was none`, {
      code: 'INVALID_ARGUMENT',
      context: { expectedRevision },
    });
  }
  return revision;
}

/** Strips the key attributes from an item read back from a table. */
export function withoutKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, gsi1pk: _gsi1pk, gsi1sk: _gsi1sk, ...rest } = item;
  return rest as T;
}

export interface TableOptions {
  dynamodb: DynamoDBDocumentClient;
  tableName: string;
  /** For tests; defaults to the wall clock. */
  clock?: () => Date;
}

/** What the owners of the registry table share: the client, the table, the clock and a consistent read of one item. */
export abstract class RegistryTable {
  protected readonly db: DynamoDBDocumentClient;
  protected readonly table: string;
  readonly #clock: () => Date;

  constructor(options: TableOptions) {
    this.db = options.dynamodb;
    this.table = options.tableName;
    this.#clock = options.clock ?? (() => new Date());
  }

  protected now(): string {
    return this.#clock().toISOString();
  }

  protected async get(key: { pk: string; sk: string }): Promise<Record<string, unknown> | undefined> {
    const result = await call(this.table, 'GetItem', () => this.db.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true })));
    return result.Item;
  }
}
