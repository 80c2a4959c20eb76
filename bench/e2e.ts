/**
 * The demo pipeline timed by stage: `npm run bench -- e2e`. One full local run of the penguins
 * spec (prepare, embed, three generations of trials, reward, export, promote) in a fresh data
 * folder, with each stage's wall time and, for the trials, how much of each trial job's wall time
 * was training (the job's own durationMs) against process start-up and I/O. Last line: JSON.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TrialRow } from '#lib/pipeline/reward/reward.ts';
import { openLocalSession, runPipelineLocally } from '#lib/adapters/local/index.ts';
import { stageTimer } from './stageTimes.ts';

export async function benchE2e(options: { specPath?: string } = {}) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const dir = await mkdtemp(join(tmpdir(), 'agentflow-bench-e2e-'));
  const session = await openLocalSession({ dir });
  try {
    const { onEvent, stages, trialWallMs } = stageTimer();
    const started = performance.now();
    const { runId, staged, result } = await runPipelineLocally(session, {
      specPath: options.specPath ?? 'examples/penguins/spec.json',
      onEvent,
      onJobOutput: () => {},
    });
    const totalMs = performance.now() - started;
    if (result.status !== 'SUCCEEDED') throw new Error(`the run failed: ${result.error}: ${result.cause}`);
    const trials = await session.deps.rewards.listTrials<TrialRow>(staged.spec.project, runId);
    const trainingMs = trials.reduce((sum, t) => sum + (t.row.durationMs ?? 0), 0);
    const jobWallMs = trialWallMs.reduce((a, b) => a + b, 0);

    const rows = [...stages];
    console.log(`demo pipeline (${staged.spec.project}, ${trials.length} trials, 2 at a time), run ${runId}`);
    for (const [stage, ms] of rows)
      console.log(`  ${stage.padEnd(10)} ${(ms / 1000).toFixed(2).padStart(7)} s${stage === 'Trials' ? '  (all generations, wall)' : ''}`);
    console.log(`  ${'total'.padEnd(10)} ${(totalMs / 1000).toFixed(2).padStart(7)} s`);
    console.log(
      `  trial jobs: ${(jobWallMs / 1000).toFixed(1)} s of job wall time, ${(trainingMs / 1000).toFixed(1)} s of it training; training / job wall = ${(trainingMs / jobWallMs).toFixed(2)}`,
    );
    const figures = {
      bench: 'e2e',
      spec: staged.spec.project,
      trials: trials.length,
      totalSeconds: totalMs / 1000,
      stageSeconds: Object.fromEntries(rows.map(([stage, ms]) => [stage, ms / 1000])),
      trialJobWallSeconds: jobWallMs / 1000,
      trialTrainingSeconds: trainingMs / 1000,
      trainingShareOfJobWall: trainingMs / jobWallMs,
    };
    console.log(JSON.stringify(figures));
    return figures;
  } finally {
    await session.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchE2e({ ...(process.argv[2] ? { specPath: process.argv[2] } : {}) });
}
