import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '#lib/adapters/cli/index.ts';
import type { CardTask } from '#lib/domain/run/index.ts';
import { PRODUCTION } from '#lib/pipeline/promote/promote.ts';
import { openLocalSession } from '#lib/adapters/local/index.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { buildFeaturesModel, publishModel } from './helpers/servingModels.ts';
import { runCli } from './helpers/cli.ts';

const PROJECT = 'promo';
const TASKS: CardTask[] = [{ name: 'churn', type: 'binary', metric: 'auc' }];
let folder: string;
const dir = () => join(folder, 'data');
/** Versions 1 (production), 2 (good candidate), 3 (rejected by the gate), 4 (file changed after registration). */
const GOOD = 2;
const REJECTED = 3;
const CORRUPT = 4;

const agentflow = (args: string[]) => runCli(['--dir', dir(), ...args]);

async function production(): Promise<number | undefined> {
  const session = await openLocalSession({ dir: dir() });
  try {
    return (await session.deps.registry.getAlias(PROJECT, PRODUCTION))?.version;
  } finally {
    await session.close();
  }
}

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-promote-'));
  const session = await openLocalSession({ dir: dir() });
  try {
    const { registry, store } = session.deps;
    for (let i = 0; i < 4; i += 1) {
      const { model, encoder } = buildFeaturesModel({ dimension: 2, tasks: TASKS, seed: 20 + i, bias: i });
      await publishModel({ registry, store, project: PROJECT, runId: `promo-run-${i}`, model, encoder, tasks: TASKS });
    }
    await registry.moveAlias(PROJECT, PRODUCTION, { toVersion: 1, expectedRevision: undefined });
    await registry.setServingSet(PROJECT, { production: 1, challengers: [] }, { expectedRevision: undefined });
    await registry.updateVersionStatus(PROJECT, REJECTED, 'rejected', { reason: 'holdout objective 0.61 is not above the champion 0.70 by the margin 0.01' });
    await store.putBytes(keys.model(PROJECT, CORRUPT), new TextEncoder().encode('not the registered model'));
  } finally {
    await session.close();
  }
});

afterAll(async () => {
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('models promote', () => {
  it.each(['2.5', 'abc', '0', '-1', '1e1', '02'])('refuses %s: versions are whole numbers, and it says where to find them', async (text) => {
    const result = await agentflow(['models', 'promote', text, '-p', PROJECT]);
    expect(result.code).toBe(EXIT.invalidInput);
    expect(result.stderr).toContain(`"${text}"`);
    expect(result.stderr).toMatch(/whole number/);
    expect(result.stderr).toContain(`agentflow models ls -p ${PROJECT}`);
    expect(await production()).toBe(1);
  });

  it('says a version that does not exist does not, and to list the versions', async () => {
    const result = await agentflow(['models', 'promote', '99', '-p', PROJECT]);
    expect(result.code).toBe(EXIT.notFound);
    expect(result.stderr).toMatch(/promo has no version 99/);
    expect(result.stderr).toContain(`agentflow models ls -p ${PROJECT}`);
  });

  it('refuses a version whose file fails its sha256 check, before the alias moves', async () => {
    const result = await agentflow(['models', 'promote', String(CORRUPT), '-p', PROJECT]);
    expect(result.code).toBe(EXIT.failed);
    expect(result.stderr).toMatch(/sha256/);
    expect(result.stderr).toMatch(/production stays at version 1/);
    expect(await production()).toBe(1);
  });

  it('refuses a rejected version unless --force, which promotes it with a warning', async () => {
    const refused = await agentflow(['models', 'promote', String(REJECTED), '-p', PROJECT]);
    expect(refused.code).toBe(EXIT.failed);
    expect(refused.stderr).toMatch(/version 3 of promo was rejected \(holdout objective 0\.61/);
    expect(refused.stderr).toMatch(/--force/);
    expect(await production()).toBe(1);

    const forced = await agentflow(['models', 'promote', String(REJECTED), '-p', PROJECT, '--force']);
    expect(forced.code, forced.stderr).toBe(EXIT.ok);
    expect(forced.stderr).toMatch(/warning: version 3 of promo was rejected/);
    expect(await production()).toBe(REJECTED);
  });

  it('promotes a good version', async () => {
    const result = await agentflow(['models', 'promote', String(GOOD), '-p', PROJECT]);
    expect(result.code, result.stderr).toBe(EXIT.ok);
    expect(result.stdout).toMatch(/production of promo is now version 2 \(was 3\)/);
    expect(await production()).toBe(GOOD);
  });
});
