/**
 * Embedded local stand-ins for the AWS services agentflow uses: dynalite (DynamoDB API on
 * LevelDB) and s3rver (S3 API on the file system), both persisting under one folder so the
 * registry, the RL policy and the artifacts survive between runs.
 *
 * What the stand-ins lack, and how the rest of agentflow copes:
 * - dynalite has no transactions and no TTL: every write is a single-item conditional write,
 *   and expiring items (predictions) just stay locally.
 * - s3rver writes an object's file in place and answers before the write is done, so a process
 *   killed mid-PUT would leave an empty object behind; its store is replaced by one that writes whole
 *   files and renames them into place (`atomicStore.ts`), as S3 never shows a partial object.
 * - s3rver ignores conditional requests (If-None-Match): S3 keys are immutable and
 *   content-addressed, so a repeated write rewrites identical bytes.
 * - s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node >= 17)
 *   only offers through its legacy provider: any *truncated* ListObjectsV2 page fails with
 *   ERR_OSSL_EVP_UNSUPPORTED unless node runs with `--openssl-legacy-provider`. The artifact store
 *   pages with ListObjects (v1) and `Marker` instead, which real S3 supports equally and which
 *   never touches that code path, so no node flags are needed.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve, join } from 'node:path';
import dynalite from 'dynalite';
import S3rver from 's3rver';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AgentflowConfig } from '#lib/adapters/config/index.ts';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import { AtomicFilesystemStore } from './atomicStore.ts';
import {
  DEFAULT_BUCKET,
  DEFAULT_REGISTRY_TABLE,
  DEFAULT_REWARD_TABLE,
  createTablesIfMissing,
  tableDefinitions,
  type TableDefinition,
} from '#lib/adapters/registry/tables.ts';

export { DEFAULT_BUCKET, DEFAULT_REGISTRY_TABLE, DEFAULT_REWARD_TABLE, tableDefinitions, type TableDefinition };

/** The region the local config reports; s3rver only accepts continuation tokens for us-east-1. */
export const LOCAL_REGION = 'us-east-1';
export const DEFAULT_LOCAL_DIR = '.agentflow';

export class LocalAwsError extends AgentflowError {
  constructor(message: string, options: { code: string; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'LocalAwsError';
  }
}

export interface LocalAwsOptions {
  /** Folder that holds `dynamodb/` (LevelDB) and `s3/` (objects); created if missing. Default `.agentflow`. */
  dir?: string;
  /** Resource names; default to `DEFAULT_BUCKET`, `DEFAULT_REGISTRY_TABLE`, `DEFAULT_REWARD_TABLE`. */
  names?: Partial<Pick<AgentflowConfig, 'bucket' | 'registryTable' | 'rewardTable'>>;
}

export interface LocalAws {
  /** Endpoints on 127.0.0.1 with ephemeral ports; pass to `makeClients` or `configToEnv`. */
  config: AgentflowConfig;
  /** Absolute path of the data folder. */
  dir: string;
  /** Closes both servers and the LevelDB store; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts dynalite and s3rver on loopback, creates the bucket and both tables if missing, and
 * returns a config pointing at them. A second start on the same `dir` sees the same data; two
 * processes cannot share a `dir` at once (LevelDB holds a lock).
 */
export async function startLocalAws(options: LocalAwsOptions = {}): Promise<LocalAws> {
  const dir = resolve(options.dir ?? DEFAULT_LOCAL_DIR);
  const names = {
    bucket: options.names?.bucket ?? DEFAULT_BUCKET,
    registryTable: options.names?.registryTable ?? DEFAULT_REGISTRY_TABLE,
    rewardTable: options.names?.rewardTable ?? DEFAULT_REWARD_TABLE,
  };
  const dynamoDir = join(dir, 'dynamodb');
  const s3Dir = join(dir, 's3');
  await mkdir(dynamoDir, { recursive: true });
  await mkdir(s3Dir, { recursive: true });
  const releaseLock = await lockDir(dir);
  // Beside s3/, not in it: a folder in s3/ reads as a bucket.
  const objectStore = new AtomicFilesystemStore(s3Dir, join(dir, 's3-spool'));

  const dynamoServer: Server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: dynamoDir });
  const s3Server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: s3Dir,
    silent: true,
    configureBuckets: [{ name: names.bucket }],
  });
  const served = s3Server as unknown as { store: unknown; context: { store: unknown } };
  served.store = served.context.store = objectStore;

  const stoppers: Array<() => Promise<void>> = [releaseLock];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Servers first, the folder lock last: another process may start on the folder once it is gone.
    const [unlock, ...servers] = stoppers;
    const results = await Promise.allSettled(servers.map((close) => close()));
    results.push(...(await Promise.allSettled([unlock()])));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure) {
      throw new LocalAwsError(`could not stop the local AWS services in ${dir}: ${String(failure.reason)}`, {
        code: 'LOCAL_STOP_FAILED',
        context: { dir },
        cause: failure.reason,
      });
    }
  };

  try {
    await objectStore.clearSpool();
    const dynamoPort = await listen(dynamoServer);
    stoppers.push(() => closeServer(dynamoServer));
    const s3Address = (await s3Server.run()) as AddressInfo;
    stoppers.push(() => {
      const server = (s3Server as unknown as { httpServer: Server }).httpServer;
      // SDK clients keep sockets alive; without this, close() waits for them to time out.
      server.closeIdleConnections();
      const closing = s3Server.close();
      setImmediate(() => server.closeAllConnections());
      return closing;
    });

    const config: AgentflowConfig = {
      region: LOCAL_REGION,
      ...names,
      endpoints: { s3: `http://127.0.0.1:${s3Address.port}`, dynamodb: `http://127.0.0.1:${dynamoPort}` },
    };
    await createTables(config);
    return { config, dir, stop };
  } catch (error) {
    await stop().catch(() => undefined);
    if (error instanceof LocalAwsError) throw error;
    throw new LocalAwsError(
      `could not start the local AWS services in ${dir}: ${error instanceof Error ? error.message : String(error)} ` +
        '(is another agentflow process using this folder? stop it, or pass a different dir)',
      { code: 'LOCAL_START_FAILED', context: { dir }, cause: error },
    );
  }
}

/**
 * LevelDB locks its folder, but a second dynalite on a locked folder hangs instead of failing, so
 * the folder gets an explicit lock file holding the owner's pid. A lock left by a dead process
 * is taken over, atomically, so that of two processes that find the same dead pid exactly one
 * gets the folder and the other is told it is busy (with a plain overwrite both would take it, and
 * the loser would empty the winner's spool and crash on its closed database):
 * - a lock file appears whole or not at all: the pid is written to a file of our own, which is
 *   then hard-linked as the lock (link fails if the lock exists; an exclusive create would let a
 *   reader see the file still empty, and take a live lock for a stale one);
 * - a stale lock is renamed aside before it is replaced: only one contender's rename finds it.
 *   What was renamed is read back; if it is not the stale lock that was judged (another process
 *   took over in between), it is linked back and this process is the one that is busy.
 */
export async function lockDir(dir: string): Promise<() => Promise<void>> {
  const lockPath = join(dir, 'agentflow.lock');
  const release = () => rm(lockPath, { force: true });
  const busy = (owner: number) =>
    new LocalAwsError(
      `the local AWS folder ${dir} is in use by process ${owner}${owner === process.pid ? ' (this one)' : ''}: stop that agentflow process first, or pass a different dir`,
      { code: 'LOCAL_DIR_BUSY', context: { dir, pid: owner } },
    );
  const mine = `${lockPath}.${process.pid}.${randomUUID()}`;
  await writeFile(mine, String(process.pid));
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        await link(mine, lockPath);
        return release;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const found = await readFile(lockPath, 'utf8').catch(() => undefined);
      // Gone since the link failed: its owner released it, or another process is taking it over.
      if (found === undefined) continue;
      const owner = Number(found.trim());
      if ((Number.isInteger(owner) && owner > 0 && isAlive(owner)) || attempt >= 5) throw busy(owner);
      const aside = `${lockPath}.stale.${process.pid}.${randomUUID()}`;
      try {
        await rename(lockPath, aside);
      } catch (error) {
        // Another process moved the stale lock first; go round and find the lock it made.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      const moved = await readFile(aside, 'utf8');
      if (moved !== found) {
        await link(aside, lockPath).catch(() => undefined);
        await rm(aside, { force: true });
        throw busy(Number(moved.trim()));
      }
      await rm(aside, { force: true });
    }
  } finally {
    await rm(mine, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function createTables(config: AgentflowConfig): Promise<void> {
  const client = new DynamoDBClient({
    region: config.region,
    endpoint: config.endpoints?.dynamodb,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    await createTablesIfMissing(client, config);
  } finally {
    client.destroy();
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolvePort, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolvePort((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolveClose, reject) => {
    server.closeIdleConnections();
    server.close((error) => (error ? reject(error) : resolveClose()));
    setImmediate(() => server.closeAllConnections());
  });
}
