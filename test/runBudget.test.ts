/**
 * `agentflow run` refuses a spec whose tuning budget would outgrow Step Functions' 25,000-event
 * execution history before anything is uploaded or trained (exit 2), naming the largest budget
 * that fits: in AWS the same run would fail hours in, with GPU time paid for.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram, EXIT } from '#lib/adapters/cli/index.ts';
import { openLocalSession } from '#lib/adapters/local/index.ts';

const EXAMPLE = resolve('examples/penguins');
let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-budget-'));
  await copyFile(join(EXAMPLE, 'penguins.jsonl'), join(folder, 'penguins.jsonl'));
});

afterAll(async () => {
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe('agentflow run with a budget beyond the execution history', () => {
  it('exits 2 with the largest budget that fits, and stores nothing', async () => {
    const spec = JSON.parse(await readFile(join(EXAMPLE, 'spec.json'), 'utf8'));
    spec.tuning = { ...spec.tuning, strategy: 'pgpe', generations: 60, population: 100 };
    const specPath = join(folder, 'spec.json');
    await writeFile(specPath, JSON.stringify(spec));
    const dir = join(folder, 'data');
    const err: string[] = [];
    let code: number = EXIT.ok;
    const program = buildProgram({
      tty: false,
      setExitCode: (value) => (code = value),
      output: (json) => ({ json, out: () => {}, err: (text) => err.push(text) }),
    });

    await program.parseAsync(['node', 'agentflow', '--dir', dir, 'run', specPath]);

    expect(code).toBe(EXIT.invalidInput);
    expect(err.join('\n')).toMatch(
      /tuning: generations × population = 60 × 100 needs ~60,690 Step Functions history events; at most 22 generations of 100, or 60 generations of at most 36, fit/,
    );
    const session = await openLocalSession({ dir });
    try {
      expect(await session.deps.store.list('')).toEqual([]);
    } finally {
      await session.close();
    }
  });
});
