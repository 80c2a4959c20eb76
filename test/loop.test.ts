/**
 * The closed loop end to end on the embedded local AWS with real training: `up` serves a trained
 * model, traffic shifts, the monitor starts a retraining run on data that includes the shifted
 * population, the new version goes out as a canary, and Thompson routing decides its traffic.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRunReport, writeLoopTimeline } from '#lib/adapters/report/index.ts';
import { openLocalSession, runDriftScenario, type DriftScenarioOptions, type LocalSession } from '#lib/adapters/local/index.ts';

let folder: string;
let session: LocalSession;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'agentflow-loop-'));
  session = await openLocalSession({ dir: join(folder, 'data') });
});

afterAll(async () => {
  await session?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

/** Tiny budgets: one generation of two trials, a few epochs. */
const scenario = (name: string, options: Pick<DriftScenarioOptions, 'shiftSd' | 'truthChanges' | 'feedbackLabels'>): DriftScenarioOptions => ({
  specPath: 'examples/penguins/spec.json',
  workDir: join(folder, name),
  windowSeconds: 6,
  observeSeconds: 15,
  timeoutSeconds: 150,
  specPatch: {
    project: name,
    tuning: { strategy: 'pgpe', generations: 1, population: 2, maxConcurrency: 2 },
    training: { epochs: 25, batchSize: 32, learningRate: 0.02, warmupSteps: 5, earlyStoppingPatience: 6 },
  },
  onJobOutput: () => undefined,
  ...options,
});

describe('the closed loop', () => {
  it('retrains when the ground truth shifts, and the router moves traffic to the new version', async () => {
    const result = await runDriftScenario(session, scenario('good', { shiftSd: 2, truthChanges: true, feedbackLabels: 'truth' }));

    expect(result.detectedAt, JSON.stringify(result.windows)).toBeDefined();
    expect(result.retrainRun?.status).toBe('SUCCEEDED');
    expect(result.challenger).toBeGreaterThan(result.champion);
    expect(result.servingAt).toBeDefined();
    // The canary floor is 0.2; feedback must have taken it well past that.
    expect(result.challengerShare).toBeGreaterThan(0.5);
    expect(result.rewardAfter).toBeGreaterThan(0.6);
    expect(result.rewardBefore).toBeGreaterThan(0.8);
    // The retraining learned the shifted birds from their labelled feedback, not from a grown training file.
    expect(result.retrainRun?.feedbackRows).toBeGreaterThan(50);
    // The timeline: windows before the shift, detection after it, the new version's traffic in the last window.
    expect(result.windows.some((w) => !w.shifted)).toBe(true);
    expect(Date.parse(result.detectedAt!)).toBeGreaterThan(Date.parse(result.driftOnsetAt));
    expect(result.windows.some((w) => w.versions.some((v) => v.psi !== null && v.psi > 0.5))).toBe(true);
    expect(result.windows.at(-1)!.traffic[`v${result.champion}`] ?? 0).toBeLessThan(0.5);

    await writeLoopTimeline(session.deps.store, result.retrainRun!.runId, result);
    const report = await buildRunReport(session.deps, { project: 'good', runId: result.retrainRun!.runId });
    expect(report.data.loop?.challenger).toBe(result.challenger);
    expect(report.html).toContain('<h2>The loop</h2>');
    expect(report.html).toMatch(/Drift to detection: <strong>\d+ s<\/strong>/);
  }, 300_000);

  it('keeps traffic on the champion when the retrained model is worse', async () => {
    const result = await runDriftScenario(session, scenario('worse', { shiftSd: 1, truthChanges: false, feedbackLabels: 'wrong' }));

    expect(result.detectedAt, JSON.stringify(result.windows)).toBeDefined();
    expect(result.retrainRun?.status).toBe('SUCCEEDED');
    expect(result.production).toBe(result.champion);
    expect(result.challenger).toBeGreaterThan(result.champion);
    expect(result.servingAt).toBeDefined();
    // The retrained version's own share: the drift persists, so more retraining runs may start within
    // the observation, and each canary they add takes its own floor of the traffic.
    expect(result.firstChallengerShare).toBeLessThan(0.4);
    expect(result.retrainRun?.feedbackRows).toBeGreaterThan(50);
  }, 300_000);
});
