import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT } from '#lib/adapters/cli/index.ts';
import { cronOf, nextFireTime, rateMs, ScheduleError } from '#lib/adapters/local/index.ts';
import { runCli as run } from './helpers/cli.ts';

describe('local schedules', () => {
  it.each([
    ['1 minute', 60_000],
    ['30 minutes', 1_800_000],
    ['2 hours', 7_200_000],
    ['7 days', 604_800_000],
  ])('reads the rate "%s" as %i ms', (rate, ms) => {
    expect(rateMs(rate)).toBe(ms);
  });

  it.each(['7 weeks', '0 days', 'daily', '1.5 hours'])('refuses the rate "%s" with the grammar', (rate) => {
    expect(() => rateMs(rate)).toThrow(/"<n> minutes\|hours\|days"/);
  });

  it('fires an EventBridge cron at its next UTC match, "?" included', () => {
    const after = new Date('2026-11-29T10:00:00Z');

    expect(nextFireTime({ cron: '0 3 ? * MON *' }, after).toISOString()).toBe('2026-11-30T03:00:00.000Z');
    expect(nextFireTime({ cron: '30 12 1 * ? *' }, after).toISOString()).toBe('2026-12-01T12:30:00.000Z');
  });

  it('spaces rate runs from the last fire time, not from when the run ended', () => {
    const lastFire = new Date('2026-11-29T10:00:00Z');

    expect(nextFireTime({ rate: '2 hours' }, new Date('2026-11-29T10:40:00Z'), lastFire).toISOString()).toBe('2026-11-29T12:00:00.000Z');
  });

  it.each([
    ['0 3 * *', /has 4 fields/],
    ['0 3 ? * MON 2027', /pins the year/],
    ['99 3 ? * MON *', /not a valid cron/],
  ])('refuses the cron "%s"', (expression, message) => {
    expect(() => cronOf(expression)).toThrow(ScheduleError);
    expect(() => cronOf(expression)).toThrow(message);
  });
});

describe('agentflow schedule', () => {
  let folder: string | undefined;
  afterAll(async () => {
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it('runs the pipeline at once with --now and stops after --max-runs, and refuses a bad expression before waiting', async () => {
    folder = await mkdtemp(join(tmpdir(), 'agentflow-schedule-'));
    const spec = JSON.parse(await readFile(resolve('examples/penguins/spec.json'), 'utf8'));
    spec.training = { ...spec.training, epochs: 4 };
    spec.tuning = { ...spec.tuning, generations: 1, population: 2 };
    await copyFile(resolve('examples/penguins/penguins.jsonl'), join(folder, 'penguins.jsonl'));
    await writeFile(join(folder, 'spec.json'), JSON.stringify(spec));
    const dir = join(folder, 'data');

    const bad = await run(['--dir', dir, 'schedule', join(folder, 'spec.json'), '--cron', '0 3 * *']);
    const once = await run([
      '--dir',
      dir,
      '--json',
      'schedule',
      join(folder, 'spec.json'),
      '--every',
      '7 days',
      '--now',
      '--max-runs',
      '1',
      '--monitor-every',
      '0',
    ]);

    expect(bad.code).toBe(EXIT.invalidInput);
    expect(bad.stderr).toMatch(/has 4 fields/);
    expect(once.code, once.stderr).toBe(EXIT.ok);
    expect(JSON.parse(once.stdout)).toMatchObject({ status: 'SUCCEEDED' });
    const runs = JSON.parse((await run(['--dir', dir, '--json', 'runs', 'ls', '-p', 'penguins'])).stdout) as { trigger: string; status: string }[];
    expect(runs).toEqual([expect.objectContaining({ trigger: 'schedule', status: 'succeeded' })]);
  });
});
