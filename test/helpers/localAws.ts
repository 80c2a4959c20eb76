/**
 * Local AWS for integration tests: `const aws = useLocalAws();` at the top of a test file starts
 * dynalite and s3rver in a fresh temporary folder before the file's tests and stops them (and
 * deletes the folder) after. Read `aws.config` / `aws.clients` inside tests or hooks, not at
 * module load (they exist only once `beforeAll` has run).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { makeClients, type AgentflowConfig, type AwsClients } from '#lib/adapters/config/index.ts';
import { startLocalAws, type LocalAws } from '#lib/adapters/local/standIns.ts';

export interface LocalAwsFixture {
  readonly config: AgentflowConfig;
  readonly clients: AwsClients;
  /** The temporary data folder (holds `dynamodb/` and `s3/`). */
  readonly dir: string;
}

export function useLocalAws(): LocalAwsFixture {
  let local: LocalAws | undefined;
  let clients: AwsClients | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agentflow-test-'));
    local = await startLocalAws({ dir });
    clients = makeClients(local.config);
  });

  afterAll(async () => {
    clients?.s3.destroy();
    clients?.dynamodb.destroy();
    await local?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const ready = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`useLocalAws(): ${name} is read before beforeAll ran; read it inside a test or hook`);
    return value;
  };
  return {
    get config() {
      return ready(local, 'config').config;
    },
    get clients() {
      return ready(clients, 'clients');
    },
    get dir() {
      return ready(dir, 'dir');
    },
  };
}
