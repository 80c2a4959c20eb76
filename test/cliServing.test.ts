import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '#lib/adapters/cli/index.ts';
import { serveContextOf } from '#lib/adapters/cli/serving.ts';
import type { CardTask } from '#lib/domain/run/index.ts';
import { openLocalSession, type LocalSession } from '#lib/adapters/local/index.ts';
import { startServer, type InferResponse, type RunningServer } from '#lib/serve/index.ts';
import { buildFeaturesModel, publishModel } from './helpers/servingModels.ts';
import { runCli } from './helpers/cli.ts';

const PROJECT = 'clisrv';
const TASKS: CardTask[] = [{ name: 'churn', type: 'binary', metric: 'auc' }];
let folder: string;
let session: LocalSession;
let server: RunningServer;
const dir = () => join(folder, 'data');

const agentflow = (args: string[]) => runCli(['--dir', dir(), ...args]);

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-clisrv-'));
  session = await openLocalSession({ dir: dir() });
  const { registry, store } = session.deps;
  const { model, encoder } = buildFeaturesModel({ dimension: 2, tasks: TASKS, seed: 31, bias: 0 });
  const { version } = await publishModel({ registry, store, project: PROJECT, runId: 'clisrv-run', model, encoder, tasks: TASKS });
  await registry.setServingSet(PROJECT, { production: version, challengers: [] }, { expectedRevision: undefined });
  // What `agentflow serve` does: hold the folder and say where it listens.
  server = await startServer({ context: serveContextOf(session) });
  await writeFile(join(dir(), 'server.json'), JSON.stringify({ url: server.url, pid: process.pid }));
});

afterAll(async () => {
  await server?.close();
  await session?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('feedback through a running server', () => {
  it.each(['abc', '', 'NaN', 'Infinity', '1x'])('names the bad reward %j instead of sending null', async (reward) => {
    const predicted = await agentflow(['--json', 'predict', '-p', PROJECT, '--record', '{"features":[0.5,1]}']);
    expect(predicted.code, predicted.stderr).toBe(EXIT.ok);
    const { predictionId } = (JSON.parse(predicted.stdout) as InferResponse).predictions[0];

    const result = await agentflow(['feedback', '-p', PROJECT, predictionId, reward]);
    expect(result.code).toBe(EXIT.invalidInput);
    expect(result.stderr).toContain(`reward "${reward}" is not a number`);
    expect(result.stderr).not.toMatch(/null/);

    const good = await agentflow(['feedback', '-p', PROJECT, predictionId, '1']);
    expect(good.code, good.stderr).toBe(EXIT.ok);
  });
});

describe('predict --version', () => {
  it.each(['2.5', 'abc'])('refuses %j naming it, instead of pinning version 2 or null', async (version) => {
    const result = await agentflow(['predict', '-p', PROJECT, '--version', version, '--record', '{"features":[0.5,1]}']);
    expect(result.code).toBe(EXIT.invalidInput);
    expect(result.stderr).toContain(`version "${version}" is not a version number`);
  });
});

describe('serve --host', () => {
  /** Starts `agentflow serve` as a user would, waits for it to listen, stops it, and returns what it printed. */
  async function serveOutput(host: string): Promise<{ stdout: string; stderr: string }> {
    const own = await mkdtemp(join(tmpdir(), 'agentflow-host-'));
    try {
      return await new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'functions/cli.ts', '--dir', join(own, 'data'), 'serve', '--host', host, '--port', '0'], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes('serving on')) child.kill('SIGTERM');
        });
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.on('error', reject);
        child.on('exit', () => {
          clearTimeout(timer);
          resolve({ stdout, stderr });
        });
      });
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  }

  it('warns that the endpoints are unauthenticated when it listens beyond loopback', async () => {
    const { stdout, stderr } = await serveOutput('0.0.0.0');
    expect(stdout).toMatch(/serving on http:\/\/0\.0\.0\.0:\d+/);
    expect(stderr).toMatch(/warning: .*0\.0\.0\.0.*not only this machine.*no authentication.*--host 127\.0\.0\.1/);
  }, 60_000);

  it('says nothing of the kind on loopback', async () => {
    const { stdout, stderr } = await serveOutput('127.0.0.1');
    expect(stdout).toMatch(/serving on http:\/\/127\.0\.0\.1:\d+/);
    expect(stderr).not.toMatch(/warning/);
  }, 60_000);
});
