/**
 * The SDK call recorder the IAM conformance test stands on: it records what IAM needs (principal,
 * operation, resource fields, a missing key's NotFound), travels to child jobs through the config's
 * environment, and is absent unless asked for.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, configToEnv, CONFIG_ENV, makeClients, type AgentflowConfig, type RecordedSdkCall } from '#lib/adapters/config/index.ts';
import { RUNS_BY_TIME_INDEX } from '#lib/adapters/registry/tables.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';
import { useLocalAws } from './helpers/localAws.ts';
import { readSdkCallLog } from './helpers/sdkCallLog.ts';

const aws = useLocalAws();
let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-recorder-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

const readLog = async (log: string): Promise<RecordedSdkCall[]> => readSdkCallLog(log);

const hasRecorder = (client: { middlewareStack: { identify(): string[] } }) =>
  client.middlewareStack.identify().some((m) => m.startsWith('agentflowRecordSdkCalls'));

describe('SDK call recording', () => {
  it('records S3 and DynamoDB document calls with the principal, the resource fields and a missing key as NotFound', async () => {
    const log = join(folder, 'calls.jsonl');
    const config: AgentflowConfig = { ...aws.config, sdkCallLog: log };
    const clients = makeClients(config, { principal: 'plan' });
    const store = new ArtifactStore({ s3: clients.s3, bucket: config.bucket });

    await store.putJson('runs/r1/plan.json', { ok: true });
    expect(await store.exists('runs/r1/absent.json')).toBe(false);
    await clients.dynamodb.send(new PutCommand({ TableName: config.registryTable, Item: { pk: 'P#x', sk: 'RUN#1' } }));
    await clients.dynamodb.send(new GetCommand({ TableName: config.registryTable, Key: { pk: 'P#x', sk: 'RUN#1' } }));
    await clients.dynamodb.send(
      new QueryCommand({
        TableName: config.registryTable,
        IndexName: RUNS_BY_TIME_INDEX,
        KeyConditionExpression: 'gsi1pk = :p',
        ExpressionAttributeValues: { ':p': 'none' },
      }),
    );
    clients.s3.destroy();
    clients.dynamodb.destroy();

    const calls = await readLog(log);
    expect(calls.map((c) => [c.principal, c.client, c.operation])).toEqual([
      ['plan', 'S3Client', 'PutObject'],
      ['plan', 'S3Client', 'HeadObject'],
      ['plan', 'DynamoDBClient', 'PutItem'],
      ['plan', 'DynamoDBClient', 'GetItem'],
      ['plan', 'DynamoDBClient', 'Query'],
    ]);
    expect(calls[0].input).toEqual({ Bucket: config.bucket, Key: 'runs/r1/plan.json' });
    expect(calls[1]).toMatchObject({ input: { Key: 'runs/r1/absent.json' }, error: 'NotFound' });
    expect(calls[0].error).toBeUndefined();
    expect(calls[2].input).toEqual({ TableName: config.registryTable });
    expect(calls[4].input).toEqual({ TableName: config.registryTable, IndexName: RUNS_BY_TIME_INDEX });
  });

  it('adds nothing to the clients when no log is configured', () => {
    const clients = makeClients(aws.config, { principal: 'plan' });
    expect(hasRecorder(clients.s3)).toBe(false);
    expect(hasRecorder(clients.dynamodb)).toBe(false);
    clients.s3.destroy();
    clients.dynamodb.destroy();
  });

  it('passes the log to child jobs through the config environment', () => {
    const config: AgentflowConfig = { ...aws.config, sdkCallLog: join(folder, 'jobs.jsonl') };
    const env = configToEnv(config);
    expect(env[CONFIG_ENV.sdkCallLog]).toBe(config.sdkCallLog);
    expect(configFromEnv(env)).toEqual(config);
    expect(configFromEnv(configToEnv(aws.config)).sdkCallLog).toBeUndefined();
  });

  it('refuses to record calls nobody is named for', () => {
    const config: AgentflowConfig = { ...aws.config, sdkCallLog: join(folder, 'anonymous.jsonl') };
    expect(() => makeClients(config)).toThrow(ConfigError);
    expect(() => makeClients(config)).toThrow(/AGENTFLOW_SDK_CALL_LOG is set .* pass makeClients\(config, \{ principal/);
  });
});
