/**
 * Warm job workers: real host processes (the real `serveJobs` with the jobs of
 * test/fixtures/jobs/host.ts) run jobs one at a time and are reused across jobs, and every way a
 * job or its worker can end is reported as a fresh job process reports it. The session's pool,
 * with the real host, is closed with the session and leaves no process behind.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import { JobWorkerPool, type JobWorkerPoolOptions, type WarmJobOptions } from '#lib/adapters/local/jobWorkers.ts';
import { openLocalSession, runStoredSpecLocally } from '#lib/adapters/local/index.ts';
import { TaskError } from '#lib/pipeline/index.ts';

const HOST = [process.execPath, '--import', 'tsx', fileURLToPath(new URL('./fixtures/jobs/host.ts', import.meta.url))];

const pools: JobWorkerPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

function poolOf(options: Partial<JobWorkerPoolOptions> = {}): JobWorkerPool {
  const pool = new JobWorkerPool({ command: HOST, killGraceMs: 1_000, ...options });
  pools.push(pool);
  return pool;
}

/** Runs a fixture job, collecting its output lines. */
async function runJob(pool: JobWorkerPool, options: Partial<WarmJobOptions> & { job: string }) {
  const lines: JobOutputLine[] = [];
  const result = await pool.run({ jobName: options.job, onOutput: (line) => lines.push(line), ...options });
  return { result, lines };
}

const rejection = (run: Promise<unknown>) =>
  run.then(
    () => {
      throw new Error('the job was expected to fail');
    },
    (error: unknown) => error as Error,
  );

const causeOf = (error: Error) => {
  expect(error).toBeInstanceOf(TaskError);
  return JSON.parse(error.message) as { Status: string; StatusReason: string; Container: { ExitCode: number | null }; LogTail: string[] };
};

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** This process's children whose command line runs `script`: what a closed pool must not leave behind. */
function childrenRunning(script: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((entry) => {
      try {
        const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
        const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        return ppid === process.pid && command.includes(script) ? [Number(entry)] : [];
      } catch {
        return [];
      }
    });
}

describe('a warm job worker', () => {
  it('runs one job after another in the same process, each with its own variables over the worker environment', async () => {
    process.env.AGENTFLOW_TEST_PARENT_ONLY = 'kept';
    const pool = poolOf();
    try {
      const definitionEnv = { AGENTFLOW_TEST_LAYER: 'definition' };
      const first = await runJob(pool, { job: 'echo', jobName: 'first', definitionEnv, env: { AGENTFLOW_TEST_OVERRIDE: 'first' } });
      const second = await runJob(pool, { job: 'echo', jobName: 'second', definitionEnv, env: { AGENTFLOW_TEST_LAYER: 'job' } });

      expect(first.result).toEqual({ JobId: expect.stringMatching(/^local-/), JobName: 'first', Status: 'SUCCEEDED', workerPid: expect.any(Number) });
      expect(second.result.workerPid).toBe(first.result.workerPid);
      expect(second.result.JobId).not.toBe(first.result.JobId);
      expect(pool.stats()).toMatchObject({ started: 1, alive: 1, readyMs: [expect.any(Number)] });
      // The last line lacks its newline and still arrives whole; the first job's override is gone for the second.
      expect(first.lines).toEqual([
        { jobName: 'first', stream: 'stdout', line: 'layer=definition parent=kept' },
        { jobName: 'first', stream: 'stdout', line: 'override=first' },
      ]);
      expect(second.lines).toEqual([
        { jobName: 'second', stream: 'stdout', line: 'layer=job parent=kept' },
        { jobName: 'second', stream: 'stdout', line: 'override=unset' },
      ]);
    } finally {
      delete process.env.AGENTFLOW_TEST_PARENT_ONLY;
    }
  }, 30_000);

  it('starts another worker for a job with another job definition environment', async () => {
    const pool = poolOf();
    const a = await runJob(pool, { job: 'echo', definitionEnv: { AGENTFLOW_TEST_LAYER: 'a' } });
    const b = await runJob(pool, { job: 'echo', definitionEnv: { AGENTFLOW_TEST_LAYER: 'b' } });

    expect(b.result.workerPid).not.toBe(a.result.workerPid);
    expect(b.lines[0].line).toBe('layer=b parent=unset');
    expect(pool.stats().started).toBe(2);
  }, 30_000);

  it('attributes every line to the job that printed it when two jobs run at once, and grows only to what was asked at once', async () => {
    const pool = poolOf();
    const lines: JobOutputLine[] = [];
    const count = (tag: string) =>
      pool.run({ job: 'count', jobName: `job-${tag}`, env: { AGENTFLOW_TEST_TAG: tag, AGENTFLOW_TEST_LINES: '40' }, onOutput: (line) => lines.push(line) });

    const [a, b] = await Promise.all([count('a'), count('b')]);
    const c = await count('c');

    expect(a.workerPid).not.toBe(b.workerPid);
    expect([a.workerPid, b.workerPid]).toContain(c.workerPid);
    expect(pool.stats()).toMatchObject({ started: 2, alive: 2 });
    for (const tag of ['a', 'b', 'c']) {
      const own = lines.filter((line) => line.jobName === `job-${tag}`);
      expect(own).toHaveLength(80);
      expect(own.every((line) => line.line.startsWith(`${tag} `))).toBe(true);
      expect(own.filter((line) => line.stream === 'stderr').map((line) => line.line)).toEqual(Array.from({ length: 40 }, (_, i) => `${tag} err ${i}`));
    }
  }, 30_000);

  it('queues jobs past maxWorkers and runs them in turn on the one worker', async () => {
    const pool = poolOf({ maxWorkers: 1 });
    const results = await Promise.all(['x', 'y', 'z'].map((tag) => runJob(pool, { job: 'count', jobName: tag, env: { AGENTFLOW_TEST_TAG: tag } })));

    expect(new Set(results.map((r) => r.result.workerPid)).size).toBe(1);
    expect(pool.stats().started).toBe(1);
  }, 30_000);

  it('fails a job that returns non-zero as States.TaskFailed with its exit code and last stderr lines, and keeps the worker', async () => {
    const pool = poolOf();
    const error = await rejection(runJob(pool, { job: 'fail', jobName: 'crash' }));

    const cause = causeOf(error);
    expect(error.name).toBe('States.TaskFailed');
    expect(cause).toMatchObject({ Status: 'FAILED', StatusReason: 'Essential container in task exited with code 7', Container: { ExitCode: 7 } });
    expect(cause.LogTail).toHaveLength(20);
    expect(cause.LogTail.at(-1)).toBe('line 29');
    await runJob(pool, { job: 'echo' });
    expect(pool.stats()).toMatchObject({ started: 1, alive: 1 });
  }, 30_000);

  it('exits 1 with the error on stderr for a job that throws, as an uncaught error ends a fresh process', async () => {
    const error = await rejection(runJob(poolOf(), { job: 'throws' }));

    expect(causeOf(error)).toMatchObject({ Container: { ExitCode: 1 }, LogTail: ['job throws threw RangeError: no such shard'] });
  }, 30_000);

  it.each([
    { how: 'exit', exitCode: 137, reason: 'exited with code 137' },
    { how: 'kill', exitCode: null, reason: 'exited: killed by SIGKILL' },
  ])(
    'fails only the job whose worker dies ($how), says so, and gives the next job a new worker',
    async ({ how, exitCode, reason }) => {
      const pool = poolOf();
      const lines: JobOutputLine[] = [];
      // A neighbour in its own worker, running while the other worker dies.
      const neighbour = pool.run({
        job: 'count',
        jobName: 'neighbour',
        env: { AGENTFLOW_TEST_TAG: 'n', AGENTFLOW_TEST_LINES: '60' },
        onOutput: (l) => lines.push(l),
      });
      const error = await rejection(pool.run({ job: 'crash', jobName: 'doomed', env: { AGENTFLOW_TEST_CRASH: how }, onOutput: (l) => lines.push(l) }));

      const cause = causeOf(error);
      expect(error.name).toBe('States.TaskFailed');
      expect(cause.Container.ExitCode).toBe(exitCode);
      expect(cause.StatusReason).toMatch(new RegExp(`^Essential container in task ${reason}: its warm job worker \\(pid \\d+\\) ended while running this job`));
      expect(cause.LogTail).toEqual([expect.stringMatching(/^out of memory in \d+$/)]);
      const deadPid = Number(/in (\d+)$/.exec(cause.LogTail[0])![1]);
      expect(isAlive(deadPid)).toBe(false);

      const survivor = await neighbour;
      expect(lines.filter((l) => l.jobName === 'neighbour')).toHaveLength(120);
      const next = await runJob(pool, { job: 'echo' });
      expect(next.result.workerPid).not.toBe(deadPid);
      expect(next.result.workerPid).toBe(survivor.workerPid);
      expect(pool.stats()).toMatchObject({ started: 2, alive: 1 });
    },
    30_000,
  );

  it('kills the worker of a job that outlives its timeout, rejects with States.Timeout, and starts a new worker for the next job', async () => {
    const pool = poolOf();
    // Warm first, so the timeout runs against the job and not the worker's start-up.
    await runJob(pool, { job: 'echo' });
    const lines: JobOutputLine[] = [];
    const started = Date.now();

    const error = await rejection(pool.run({ job: 'hang', jobName: 'stuck', timeoutMs: 500, onOutput: (l) => lines.push(l) }));

    expect(error.name).toBe('States.Timeout');
    expect(causeOf(error).StatusReason).toMatch(/^Job attempt duration exceeded timeout \(500 ms\); killed with SIGTERM$/);
    expect(Date.now() - started).toBeLessThan(5_000);
    const pid = Number(/hanging in (\d+)/.exec(lines[0].line)![1]);
    expect(isAlive(pid)).toBe(false);
    const next = await runJob(pool, { job: 'echo' });
    expect(next.result.workerPid).not.toBe(pid);
    expect(pool.stats()).toMatchObject({ started: 2, alive: 1 });
  }, 30_000);

  it('kills the worker of a job whose run is abandoned, and does not start a job whose run already was', async () => {
    const pool = poolOf();
    const abandon = new AbortController();
    let hanging: (pid: number) => void;
    const pidOf = new Promise<number>((resolve) => (hanging = resolve));
    const run = pool.run({
      job: 'hang',
      jobName: 'abandoned',
      signal: abandon.signal,
      onOutput: ({ line }) => /hanging in (\d+)/.test(line) && hanging(Number(/(\d+)$/.exec(line)![1])),
    });
    const pid = await pidOf;
    abandon.abort();

    await expect(run).rejects.toMatchObject({ name: 'WorkflowError', code: 'JOB_ABORTED', message: 'job abandoned was stopped: the run was aborted' });
    expect(isAlive(pid)).toBe(false);
    await expect(pool.run({ job: 'echo', jobName: 'late', signal: abandon.signal })).rejects.toMatchObject({
      code: 'JOB_ABORTED',
      message: 'job late was not started: the run was aborted',
    });
    expect(pool.stats()).toMatchObject({ started: 1, alive: 0 });
  }, 30_000);

  it('fails the job with the worker start-up error when the host cannot start or dies before it is ready', async () => {
    const missing = await rejection(
      poolOf({ command: [join(tmpdir(), 'no-such-agentflow-host')] }).run({ job: 'echo', jobName: 'missing', onOutput: () => {} }),
    );
    expect(missing.name).toBe('States.TaskFailed');
    expect(causeOf(missing).StatusReason).toMatch(/^CannotStartContainerError: .*no-such-agentflow-host: spawn .* ENOENT/);

    const broken = poolOf({ command: [process.execPath, '-e', 'console.error("SyntaxError: in the host"); process.exit(3)'] });
    const error = await rejection(broken.run({ job: 'echo', jobName: 'broken', onOutput: () => {} }));
    expect(causeOf(error)).toMatchObject({
      StatusReason: expect.stringMatching(/^Essential container in task exited with code 3: its warm job worker \(pid \d+\) ended before it was ready/),
      Container: { ExitCode: 3 },
      LogTail: ['SyntaxError: in the host'],
    });
  }, 30_000);

  it('starts workers ahead of the jobs, so the jobs asked for at once find one each', async () => {
    const pool = poolOf();
    const definitionEnv = { AGENTFLOW_TEST_LAYER: 'definition' };
    pool.prestart({ definitionEnv, workers: 2 });
    pool.prestart({ definitionEnv, workers: 2 });
    expect(pool.stats()).toMatchObject({ started: 2, alive: 2 });
    while (pool.stats().readyMs.length < 2) await sleep(20);

    const [a, b] = await Promise.all([runJob(pool, { job: 'echo', definitionEnv }), runJob(pool, { job: 'echo', definitionEnv })]);

    expect(a.result.workerPid).not.toBe(b.result.workerPid);
    expect(pool.stats()).toMatchObject({ started: 2, alive: 2 });
  }, 30_000);

  it('stops a worker that sits idle for idleMs, and starts a new one for the next job', async () => {
    const pool = poolOf({ idleMs: 300 });
    const first = await runJob(pool, { job: 'echo' });
    while (pool.stats().alive > 0) await sleep(50);

    expect(isAlive(first.result.workerPid)).toBe(false);
    const second = await runJob(pool, { job: 'echo' });
    expect(second.result.workerPid).not.toBe(first.result.workerPid);
  }, 30_000);

  it('closes: a running job fails as aborted, every worker exits, and later jobs are refused', async () => {
    const pool = poolOf();
    const [idle] = await Promise.all([runJob(pool, { job: 'echo' }), runJob(pool, { job: 'echo' })]);
    const lines: JobOutputLine[] = [];
    // Caught at once: it fails while close() is awaited.
    const running = rejection(pool.run({ job: 'hang', jobName: 'running', onOutput: (l) => lines.push(l) }));
    while (lines.length === 0) await sleep(20);

    await pool.close();

    expect(await running).toMatchObject({ code: 'JOB_ABORTED', message: 'job running was stopped: the job workers were closed with their session' });
    expect(isAlive(idle.result.workerPid)).toBe(false);
    expect(isAlive(Number(/(\d+)$/.exec(lines[0].line)![1]))).toBe(false);
    expect(pool.stats().alive).toBe(0);
    await expect(pool.run({ job: 'echo', jobName: 'after' })).rejects.toMatchObject({ code: 'JOB_ABORTED' });
  }, 30_000);
});

describe("a local session's job workers", () => {
  it('run the real job host and leave no process behind once the session is closed', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'agentflow-workers-'));
    try {
      const session = await openLocalSession({ dir: join(folder, 'aws') });
      const lines: JobOutputLine[] = [];
      // The real trial job in the real host, without its variables: it says which are missing and exits 2 ("could not run").
      const jobs = [1, 2].map((i) => rejection(session.workers.run({ job: 'trial', jobName: `trial-${i}`, env: {}, onOutput: (l) => lines.push(l) })));
      const errors = await Promise.all(jobs);

      expect(errors.map((e) => causeOf(e).Container.ExitCode)).toEqual([2, 2]);
      expect(lines.filter((l) => l.stream === 'stderr' && l.line.startsWith('trial job failed:') && l.line.includes('AGENTFLOW_TRIAL_ID'))).toHaveLength(2);
      expect(childrenRunning('functions/jobs/host.ts')).toHaveLength(2);

      await session.close();

      expect(childrenRunning('functions/jobs/host.ts')).toEqual([]);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 60_000);

  it('start as many as the spec trains at once for a run from a stored spec, as for one from a spec file', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'agentflow-workers-'));
    try {
      const session = await openLocalSession({ dir: join(folder, 'aws') });
      try {
        const { store } = session.deps;
        // Valid, but its dataset is not there: Prepare fails the run before any job, after the workers were started.
        const spec = {
          project: 'stored',
          baseModel: { kind: 'tabular', numeric: ['x'] },
          datasets: { train: store.uri('datasets/missing.jsonl') },
          tasks: [{ name: 'y', type: 'binary' }],
          tuning: { population: 4, maxConcurrency: 3 },
        };
        const { uri } = await store.putJson('specs/stored.json', spec);

        const { result } = await runStoredSpecLocally(session, { project: 'stored', specUri: uri, onJobOutput: () => {} });

        expect(result.status).toBe('FAILED');
        expect(session.workers.stats().started).toBe(3);
      } finally {
        await session.close();
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 60_000);
});
