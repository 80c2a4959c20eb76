import { describe, expect, it } from 'vitest';
import { judgeProject, retrainRunId, windowOf, type ObservedVersion } from '#lib/serve/monitor.ts';
import { executionName, RunId } from '#lib/pipeline/index.ts';

const MONITOR = { windowHours: 1, minRewardDrop: 0.05, psiThreshold: 0.2 };
const WINDOW = { start: '2031-05-06T10:00:00.000Z' };

function observed(version: number, options: { count: number; sum: number; before?: { count: number; sum: number }; maxPsi?: number }): ObservedVersion {
  return {
    version,
    stats: { version, count: options.count, sum: options.sum, sumSquares: 0, successes: 0, failures: 0 },
    ...(options.before ? { before: options.before } : {}),
    holdoutObjective: 0.9,
    drift:
      options.maxPsi === undefined ? { unavailable: 'too few samples' } : { psi: [options.maxPsi], maxPsi: options.maxPsi, samples: 500, referenceRows: 1000 },
  };
}

describe('judgeProject', () => {
  it('asks for no retraining when production holds its holdout reward and its inputs', () => {
    const judged = judgeProject({
      project: 'p',
      window: WINDOW,
      monitor: MONITOR,
      minFeedback: 30,
      versions: [observed(1, { count: 100, sum: 89, maxPsi: 0.01 })],
    });
    expect(judged.retrain).toBeUndefined();
    expect(judged.versions).toEqual([expect.objectContaining({ version: 1, production: true, breaches: [] })]);
  });

  it('judges the reward of this window only, from the counters since the previous snapshot', () => {
    const judged = judgeProject({
      project: 'p',
      window: WINDOW,
      monitor: MONITOR,
      minFeedback: 30,
      versions: [observed(1, { count: 200, sum: 140, before: { count: 100, sum: 90 } })],
    });
    expect(judged.versions[0].reward).toEqual({ count: 100, mean: 0.5, holdoutObjective: 0.9, drop: 0.9 - 0.5, since: 'window' });
    expect(judged.retrain).toEqual({
      reason: expect.stringMatching(/^production version 1: online reward 0.5 over 100 feedback events/),
      trigger: 'reward',
      runId: 'p-retrain-20310506T1000',
    });
  });

  it('does not judge a reward drop seen on fewer feedback events than minFeedback', () => {
    const judged = judgeProject({ project: 'p', window: WINDOW, monitor: MONITOR, minFeedback: 30, versions: [observed(1, { count: 10, sum: 0 })] });
    expect(judged.retrain).toBeUndefined();
  });

  it('retrains on production drift, but never because of a weak challenger', () => {
    const drifted = judgeProject({
      project: 'p',
      window: WINDOW,
      monitor: MONITOR,
      minFeedback: 30,
      versions: [observed(1, { count: 0, sum: 0, maxPsi: 0.5 })],
    });
    expect(drifted.retrain).toMatchObject({
      trigger: 'drift',
      reason: expect.stringContaining('input drift PSI 0.5 over 500 sampled inputs exceeds psiThreshold 0.2'),
    });

    const weakChallenger = judgeProject({
      project: 'p',
      window: WINDOW,
      monitor: MONITOR,
      minFeedback: 30,
      versions: [observed(1, { count: 100, sum: 90 }), observed(2, { count: 100, sum: 10, maxPsi: 0.9 })],
    });
    expect(weakChallenger.versions[1].breaches).toHaveLength(2);
    expect(weakChallenger.retrain).toBeUndefined();
  });
});

describe('windows and run ids', () => {
  it('aligns a window to the epoch so every pass inside it agrees', () => {
    expect(windowOf(new Date('2031-05-06T10:59:59Z'), 1)).toEqual({ start: '2031-05-06T10:00:00.000Z', end: '2031-05-06T11:00:00.000Z' });
    expect(windowOf(new Date('2031-05-06T10:00:00Z'), 6)).toEqual({ start: '2031-05-06T06:00:00.000Z', end: '2031-05-06T12:00:00.000Z' });
  });

  it('gives two projects different retraining runs in one window, each a valid run id that names its execution', () => {
    const long = 'a'.repeat(40);
    const ids = [retrainRunId('churn', WINDOW.start), retrainRunId(long, WINDOW.start), retrainRunId(`${'a'.repeat(39)}b`, WINDOW.start)];
    expect(ids[0]).toBe('churn-retrain-20310506T1000');
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) {
      expect(RunId.safeParse(id).success, id).toBe(true);
      expect(executionName({ runId: id })).toBe(id);
    }
  });

  it('names a restart after its run and attempt', () => {
    expect(executionName({ runId: 'run-1', attempt: 2 })).toBe('run-1-resume-2');
  });
});
