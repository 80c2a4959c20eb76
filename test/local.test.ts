import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { GetObjectCommand, ListObjectsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeClients, type AgentflowConfig } from '#lib/adapters/config/index.ts';
import { localTrialThreads } from '#lib/adapters/local/index.ts';
import { DEFAULT_BUCKET, DEFAULT_REGISTRY_TABLE, DEFAULT_REWARD_TABLE, startLocalAws, tableDefinitions, type LocalAws } from '#lib/adapters/local/standIns.ts';

let dir: string;
const started: LocalAws[] = [];
const start = async () => {
  const local = await startLocalAws({ dir });
  started.push(local);
  return local;
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agentflow-local-'));
});

afterEach(async () => {
  for (const local of started.splice(0)) await local.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('startLocalAws', () => {
  it('serves the default bucket and both tables on loopback with ephemeral ports', async () => {
    const local = await start();

    expect(local.config).toMatchObject({
      region: 'us-east-1',
      bucket: DEFAULT_BUCKET,
      registryTable: DEFAULT_REGISTRY_TABLE,
      rewardTable: DEFAULT_REWARD_TABLE,
    });
    expect(local.config.endpoints?.s3).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(local.config.endpoints?.dynamodb).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const raw = new DynamoDBClient({
      region: 'us-east-1',
      endpoint: local.config.endpoints?.dynamodb,
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const { Table } = await raw.send(new DescribeTableCommand({ TableName: DEFAULT_REGISTRY_TABLE }));
    raw.destroy();
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.GlobalSecondaryIndexes?.map((index) => index.IndexName)).toEqual(['gsi1']);
  });

  it('keeps objects and items when started again on the same folder', async () => {
    const first = await start();
    await writeBoth(first.config);
    await first.stop();

    const second = await start();

    expect(await readBoth(second.config)).toEqual({ object: 'kept', item: 'kept' });
  });

  it('stops without leaving the ports open', async () => {
    const local = await start();
    await writeBoth(local.config);

    await local.stop();

    const { s3 } = makeClients(local.config);
    await expect(s3.send(new GetObjectCommand({ Bucket: local.config.bucket, Key: 'probe.txt' }))).rejects.toThrow();
    s3.destroy();
    await expect(local.stop()).resolves.toBeUndefined();
  });

  it('refuses a folder another instance holds, naming the folder', async () => {
    await start();

    await expect(startLocalAws({ dir })).rejects.toMatchObject({ name: 'LocalAwsError', code: 'LOCAL_DIR_BUSY', context: { dir, pid: process.pid } });
  });

  it('takes over a lock left by a process that is gone', async () => {
    await writeFile(join(dir, 'agentflow.lock'), '999999999');

    const local = await start();

    expect(await readFile(join(dir, 'agentflow.lock'), 'utf8')).toBe(String(process.pid));
    await local.stop();
    await expect(readFile(join(dir, 'agentflow.lock'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('objects written by a process that is killed', () => {
  it('are whole or absent, and the folder still lists', async () => {
    // Four writers PUT 200 KB objects until the process is killed, mid-write with near certainty. The kill
    // waits for a count of finished PUTs rather than a time, so a loaded machine still writes enough.
    const writer = `
      import { PutObjectCommand } from '@aws-sdk/client-s3';
      import { makeClients } from '#lib/adapters/config/index.ts';
      import { startLocalAws } from '#lib/adapters/local/standIns.ts';
      const local = await startLocalAws({ dir: ${JSON.stringify(dir)} });
      const { s3 } = makeClients(local.config);
      console.log('started');
      const writeForever = async (lane) => {
        for (let i = 0; ; i++) {
          const body = Buffer.alloc(${OBJECT_BYTES}, 65 + (i % 26));
          await s3.send(new PutObjectCommand({ Bucket: local.config.bucket, Key: 'lane' + lane + '/' + i, Body: body, ContentLength: body.length }));
          console.log('put');
        }
      };
      await Promise.all([0, 1, 2, 3].map(writeForever));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
    const closed = new Promise((settled) => child.once('close', settled));
    await new Promise<void>((written, fail) => {
      let puts = 0;
      child.stdout.on('data', (chunk: Buffer) => {
        puts += chunk.toString().split('put').length - 1;
        if (puts >= PUTS_BEFORE_KILL) written();
      });
      child.once('exit', (code) => fail(new Error(`the writer exited (code ${code}) after ${puts} PUTs, before it was killed`)));
    });
    child.kill('SIGKILL');
    await closed;

    const local = await start();

    const { s3 } = makeClients(local.config);
    const listed = await s3.send(new ListObjectsCommand({ Bucket: local.config.bucket }));
    const sizes = await Promise.all(
      (listed.Contents ?? []).map(async ({ Key }) => {
        const object = await s3.send(new GetObjectCommand({ Bucket: local.config.bucket, Key }));
        return (await object.Body!.transformToByteArray()).byteLength;
      }),
    );
    s3.destroy();
    expect(sizes.length).toBeGreaterThanOrEqual(PUTS_BEFORE_KILL);
    expect(sizes.filter((size) => size !== OBJECT_BYTES)).toEqual([]);
    expect(await readdir(join(dir, 's3-spool'))).toEqual([]);
  }, 60_000);
});

const OBJECT_BYTES = 200_000;
const PUTS_BEFORE_KILL = 24;

describe('tableDefinitions', () => {
  it('describes both tables as on-demand with pk/sk string keys', () => {
    const { registry, rewards } = tableDefinitions({ registryTable: 'reg', rewardTable: 'rew' });

    for (const table of [registry, rewards]) {
      expect(table.BillingMode).toBe('PAY_PER_REQUEST');
      expect(table.KeySchema).toEqual([
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ]);
    }
    expect([registry.TableName, rewards.TableName]).toEqual(['reg', 'rew']);
    expect(rewards.timeToLiveAttribute).toBe('expiresAt');
    const declared = registry.AttributeDefinitions.map((attribute) => attribute.AttributeName);
    const used = [...registry.KeySchema, ...(registry.GlobalSecondaryIndexes ?? []).flatMap((index) => index.KeySchema)].map((key) => key.AttributeName);
    expect(new Set(declared)).toEqual(new Set(used));
  });
});

async function writeBoth(config: AgentflowConfig): Promise<void> {
  const { s3, dynamodb } = makeClients(config);
  await s3.send(new PutObjectCommand({ Bucket: config.bucket, Key: 'probe.txt', Body: 'kept' }));
  await dynamodb.send(new PutCommand({ TableName: config.registryTable, Item: { pk: 'probe', sk: 'probe', value: 'kept' } }));
  s3.destroy();
  dynamodb.destroy();
}

async function readBoth(config: AgentflowConfig): Promise<{ object?: string; item?: unknown }> {
  const { s3, dynamodb } = makeClients(config);
  const object = await s3.send(new GetObjectCommand({ Bucket: config.bucket, Key: 'probe.txt' }));
  const item = await dynamodb.send(new GetCommand({ TableName: config.registryTable, Key: { pk: 'probe', sk: 'probe' } }));
  const result = { object: await object.Body?.transformToString(), item: item.Item?.value };
  s3.destroy();
  dynamodb.destroy();
  return result;
}

describe('localTrialThreads', () => {
  it('gives each of the trials that train at once its share of the cores, at least one, and nothing when that number is unknown', () => {
    expect(localTrialThreads(2, 2)).toEqual({ AGENTFLOW_INTRA_OP_THREADS: '1' });
    expect(localTrialThreads(1, 2)).toEqual({ AGENTFLOW_INTRA_OP_THREADS: '2' });
    expect(localTrialThreads(3, 8)).toEqual({ AGENTFLOW_INTRA_OP_THREADS: '2' });
    expect(localTrialThreads(4, 2)).toEqual({ AGENTFLOW_INTRA_OP_THREADS: '1' });
    expect(localTrialThreads(undefined, 8)).toEqual({});
  });
});
