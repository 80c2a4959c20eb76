/**
 * The two DynamoDB tables, as plain data: the local runtime creates them in dynalite from this,
 * and the CDK stack creates the same tables in AWS, so key schemas cannot drift apart.
 *
 * Both tables use generic string keys `pk` / `sk` (single-table style); every item kind and its
 * key is listed in `layout.ts`.
 */

import { CreateTableCommand, ResourceInUseException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

export const DEFAULT_BUCKET = 'agentflow-artifacts';
export const DEFAULT_REGISTRY_TABLE = 'agentflow-registry';
export const DEFAULT_REWARD_TABLE = 'agentflow-rewards';

/** The registry's one secondary index: runs of a project by start time (`listRuns`, newest first). */
export const RUNS_BY_TIME_INDEX = 'gsi1';

export interface TableDefinition {
  TableName: string;
  KeySchema: Array<{ AttributeName: string; KeyType: 'HASH' | 'RANGE' }>;
  AttributeDefinitions: Array<{ AttributeName: string; AttributeType: 'S' | 'N' }>;
  GlobalSecondaryIndexes?: Array<{
    IndexName: string;
    KeySchema: Array<{ AttributeName: string; KeyType: 'HASH' | 'RANGE' }>;
    Projection: { ProjectionType: 'ALL' };
  }>;
  BillingMode: 'PAY_PER_REQUEST';
  /**
   * The attribute that holds an expiry time in epoch seconds. Not part of CreateTable (AWS sets
   * TTL with a separate UpdateTimeToLive call, CDK with `timeToLiveAttribute`); dynalite has no
   * TTL, so locally such items simply stay.
   */
  timeToLiveAttribute?: string;
}

export interface TableNames {
  registryTable: string;
  rewardTable: string;
}

const keySchema: TableDefinition['KeySchema'] = [
  { AttributeName: 'pk', KeyType: 'HASH' },
  { AttributeName: 'sk', KeyType: 'RANGE' },
];
const keyAttributes: TableDefinition['AttributeDefinitions'] = [
  { AttributeName: 'pk', AttributeType: 'S' },
  { AttributeName: 'sk', AttributeType: 'S' },
];

/** CreateTable inputs (plus the TTL attribute) for the registry and reward tables. Pure. */
export function tableDefinitions(names: TableNames = { registryTable: DEFAULT_REGISTRY_TABLE, rewardTable: DEFAULT_REWARD_TABLE }): {
  registry: TableDefinition;
  rewards: TableDefinition;
} {
  return {
    registry: {
      TableName: names.registryTable,
      KeySchema: keySchema,
      AttributeDefinitions: [...keyAttributes, { AttributeName: 'gsi1pk', AttributeType: 'S' }, { AttributeName: 'gsi1sk', AttributeType: 'S' }],
      GlobalSecondaryIndexes: [
        {
          IndexName: RUNS_BY_TIME_INDEX,
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    },
    rewards: {
      TableName: names.rewardTable,
      KeySchema: keySchema,
      AttributeDefinitions: keyAttributes,
      BillingMode: 'PAY_PER_REQUEST',
      timeToLiveAttribute: 'expiresAt',
    },
  };
}

/** Creates both tables where they are missing (the local stand-in; on AWS the CDK stack creates them). */
export async function createTablesIfMissing(client: DynamoDBClient, names: TableNames): Promise<void> {
  const { registry, rewards } = tableDefinitions(names);
  for (const { timeToLiveAttribute: _ttl, ...definition } of [registry, rewards]) {
    try {
      await client.send(new CreateTableCommand(definition));
    } catch (error) {
      if (!(error instanceof ResourceInUseException)) throw error;
    }
  }
}
