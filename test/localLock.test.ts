import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROUNDS = 4;
const folders: string[] = [];
afterAll(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

/** A pid that belonged to a process which has exited: what a lock left by a killed agentflow holds. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

interface Outcome {
  round: number;
  outcome: 'won' | 'busy' | 'failed' | 'crashed';
  code?: string;
  message?: string;
}

/** Runs a contender to its end (or kills it after `timeoutMs`) and returns its lines and exit code. */
function contender(root: string, startAt: number, timeoutMs: number): Promise<{ outcomes: Outcome[]; exitCode: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/lock/race.ts', root, String(ROUNDS), String(startAt)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      const outcomes = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Outcome);
      resolve({ outcomes, exitCode, stderr });
    });
  });
}

describe('the data folder lock', () => {
  it("lets exactly one of two processes take over a dead pid's lock; the other is told the folder is busy and leaves the spool alone", async () => {
    const root = await mkdtemp(join(tmpdir(), 'agentflow-lock-'));
    folders.push(root);
    const stale = String(deadPid());
    for (let round = 0; round < ROUNDS; round += 1) {
      await mkdir(join(root, `round-${round}`), { recursive: true });
      await writeFile(join(root, `round-${round}`, 'agentflow.lock'), stale);
    }
    // Both contenders load first (a few seconds on a busy machine), then meet at the same instant.
    const startAt = Date.now() + 8000;
    const timeoutMs = 8000 + ROUNDS * 1500 + 20_000;
    const [a, b] = await Promise.all([contender(root, startAt, timeoutMs), contender(root, startAt, timeoutMs)]);

    expect(a.exitCode, `${JSON.stringify(a.outcomes)} ${a.stderr}`).toBe(0);
    expect(b.exitCode, `${JSON.stringify(b.outcomes)} ${b.stderr}`).toBe(0);
    for (let round = 0; round < ROUNDS; round += 1) {
      const outcomes = [...a.outcomes, ...b.outcomes].filter((o) => o.round === round);
      expect(outcomes.map((o) => o.outcome).sort(), `round ${round}: ${JSON.stringify(outcomes)}`).toEqual(['busy', 'won']);
      const busy = outcomes.find((o) => o.outcome === 'busy')!;
      expect(busy.message).toMatch(/is in use by process \d+: stop that agentflow process first, or pass a different dir/);
      const spool = await readdir(join(root, `round-${round}`, 's3-spool'));
      expect(spool.filter((name) => name.startsWith('held-by-'))).toHaveLength(1);
    }
  }, 90_000);
});
