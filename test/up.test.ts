import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '#lib/adapters/cli/index.ts';
import type { CardTask } from '#lib/domain/run/index.ts';
import { HOLDER_FILE, localStageHandlers, openLocalSession, startUp, type LocalSession, type RunningUp } from '#lib/adapters/local/index.ts';
import type { InferResponse, MonitorReport } from '#lib/serve/index.ts';
import { buildFeaturesModel, publishModel } from './helpers/servingModels.ts';
import { runCli } from './helpers/cli.ts';

const PROJECT = 'upcli';
const TASKS: CardTask[] = [{ name: 'churn', type: 'binary', metric: 'auc' }];
let folder: string;
let session: LocalSession;
let up: RunningUp;
const reports: MonitorReport[] = [];
const dir = () => join(folder, 'data');
const agentflow = (args: string[]) => runCli(['--dir', dir(), ...args]);

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-up-'));
  session = await openLocalSession({ dir: dir() });
  const { registry, store } = session.deps;
  for (const [index, bias] of [0, 3].entries()) {
    const { model, encoder } = buildFeaturesModel({ dimension: 2, tasks: TASKS, seed: 40 + index, bias });
    await publishModel({ registry, store, project: PROJECT, runId: `up-run-${index}`, model, encoder, tasks: TASKS });
  }
  await registry.setServingSet(PROJECT, { production: 1, challengers: [] }, { expectedRevision: undefined });
  // Serving set re-read every 200 ms, so a promotion shows within a test's patience.
  up = await startUp(session, { port: 0, monitorEveryMs: 200, serve: { statsTtlMs: 200 }, onMonitor: (report) => reports.push(report) });
});

afterAll(async () => {
  await up?.stop();
  await session?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('agentflow up', () => {
  it('says where it serves and where its stand-ins listen, in the folder it holds', async () => {
    const holder = JSON.parse(await readFile(join(dir(), HOLDER_FILE), 'utf8')) as {
      url: string;
      pid: number;
      aws: { endpoints: { s3: string; dynamodb: string } };
    };
    expect(holder).toMatchObject({ url: up.url, pid: process.pid, aws: { endpoints: session.aws.config.endpoints } });
  });

  it('lets models, runs, predict and feedback work on the same folder through it', async () => {
    const models = await agentflow(['--json', 'models', 'ls', '-p', PROJECT]);
    expect(models.code, models.stderr).toBe(EXIT.ok);
    const listed = JSON.parse(models.stdout) as { serving: { production: number }; versions: { version: number }[] };
    expect(listed.serving.production).toBe(1);
    expect(listed.versions.map((m) => m.version).sort()).toEqual([1, 2]);
    const runs = await agentflow(['--json', 'runs', 'ls', '-p', PROJECT]);
    expect(runs.code, runs.stderr).toBe(EXIT.ok);

    const predicted = await agentflow(['--json', 'predict', '-p', PROJECT, '--record', '{"features":[0.5,1]}']);
    expect(predicted.code, predicted.stderr).toBe(EXIT.ok);
    const answer = JSON.parse(predicted.stdout) as InferResponse;
    expect(answer.version).toBe(1);
    const fed = await agentflow(['feedback', '-p', PROJECT, answer.predictions[0].predictionId, '1']);
    expect(fed.code, fed.stderr).toBe(EXIT.ok);
    const stats = await session.deps.rewards.getArmStats(PROJECT, [1]);
    expect(stats[0].count).toBe(1);
  });

  it('routes to a version promoted through it within a second, without a restart', async () => {
    const promoted = await agentflow(['models', 'promote', '2', '-p', PROJECT, '--force']);
    expect(promoted.code, promoted.stderr).toBe(EXIT.ok);
    const deadline = Date.now() + 5000;
    let version = 0;
    while (version !== 2 && Date.now() < deadline) {
      const response = await fetch(`${up.url}/infer`, { method: 'POST', body: JSON.stringify({ project: PROJECT, records: [{ features: [0.5, 1] }] }) });
      version = ((await response.json()) as InferResponse).version;
    }
    expect(version).toBe(2);
  });

  it('runs the monitor on its interval over every served project', async () => {
    const deadline = Date.now() + 5000;
    while (reports.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(reports.length).toBeGreaterThanOrEqual(2);
    expect(reports.at(-1)!.projects.map((p) => p.project)).toContain(PROJECT);
  });

  it('stops a run between stages once asked: the next stage refuses to start, naming the resume command', async () => {
    const stopping = new AbortController();
    stopping.abort();
    const handlers = localStageHandlers(session, { signal: stopping.signal });
    await expect((handlers.Plan as (event: unknown) => Promise<unknown>)({ runId: 'run-x', project: PROJECT })).rejects.toMatchObject({
      name: 'RunInterrupted',
      message: expect.stringMatching(/stopped before Plan, as asked; `agentflow resume run-x -p <project>` continues from here/),
    });
  });

  it('refuses a monitor interval that is not a number, naming it', async () => {
    const result = await runCli(['--dir', join(folder, 'interval'), 'up', '--port', '0', '--monitor-every', 'often']);
    expect(result.code).toBe(EXIT.invalidInput);
    expect(result.stderr).toMatch(/the monitor interval NaN ms is not a duration; .*--monitor-every <minutes>/);
  });

  it('is not attached to by serve, which must own the folder', async () => {
    const served = await agentflow(['serve', '--port', '0']);
    expect(served.code).toBe(EXIT.busy);
    expect(served.stderr).toMatch(/is in use by process/);
  });

  it('refuses a holder file left by another process instead of using its ports', async () => {
    const other = join(folder, 'other');
    const own = await openLocalSession({ dir: other });
    try {
      await writeFile(join(other, HOLDER_FILE), JSON.stringify({ url: 'http://127.0.0.1:9', pid: process.pid + 1, aws: { ...own.aws.config } }));
      const result = await runCli(['--dir', other, 'models', 'ls', '-p', PROJECT]);
      expect(result.code).toBe(EXIT.busy);
      await writeFile(join(other, HOLDER_FILE), '{"url": 3}');
      const invalid = await runCli(['--dir', other, 'models', 'ls', '-p', PROJECT]);
      expect(invalid.stderr).toMatch(/server\.json is not a running agentflow process's address \(url: .*\); remove it/);
    } finally {
      await own.close();
    }
  });

  it('releases the folder on stop: the holder file goes, and commands no longer reach its stand-ins', async () => {
    await up.stop();
    await expect(readFile(join(dir(), HOLDER_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
    const result = await agentflow(['models', 'ls', '-p', PROJECT]);
    expect(result.code).toBe(EXIT.busy);
  });
});

describe('agentflow up as a user runs it', () => {
  it('serves until Ctrl-C, lets commands work through it meanwhile, then stops cleanly and releases the folder', async () => {
    const own = join(folder, 'cli');
    const child = spawn(process.execPath, ['--import', 'tsx', 'functions/cli.ts', '--dir', own, 'up', '--port', '0', '--monitor-every', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 45_000;
      while (!stdout.includes('up on http://') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(stdout, stderr).toMatch(/up on http:\/\/127\.0\.0\.1:\d+/);

      const runs = await runCli(['--dir', own, '--json', 'runs', 'ls', '-p', PROJECT]);
      expect(runs.code, runs.stderr).toBe(EXIT.ok);
      expect(JSON.parse(runs.stdout)).toEqual([]);

      child.kill('SIGINT');
      expect(await exited).toBe(EXIT.ok);
      expect(stderr).toMatch(/stopping: no new monitor pass or run starts/);
      await expect(readFile(join(own, HOLDER_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
      // The folder is free again: a command opens it itself.
      const after = await runCli(['--dir', own, '--json', 'runs', 'ls', '-p', PROJECT]);
      expect(after.code, after.stderr).toBe(EXIT.ok);
    } finally {
      child.kill('SIGKILL');
    }
  }, 90_000);
});
