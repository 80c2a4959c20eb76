/**
 * The demo pipeline timed by stage: `npm run bench -- e2e`. Two full local runs of the penguins
 * spec (prepare, embed, three generations of trials, reward, export, promote), each in a fresh
 * data folder so both do the same work: with the session's warm job workers, and the baseline
 * with one fresh process per Batch job (the job image's command). For each, every stage's wall
 * time and how much of the trial jobs' wall time was training (the job's own durationMs) against
 * start-up and I/O; then warm ÷ fresh. Last line: JSON.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TrialRow } from '#lib/pipeline/reward/reward.ts';
import { openLocalSession, runPipelineLocally } from '#lib/adapters/local/index.ts';
import { stageTimer } from './stageTimes.ts';

type JobProcesses = 'fresh' | 'warm';

async function timedRun(specPath: string, jobProcesses: JobProcesses) {
  const dir = await mkdtemp(join(tmpdir(), 'agentflow-bench-e2e-'));
  const session = await openLocalSession({ dir });
  try {
    const { onEvent, stages, trialWallMs } = stageTimer();
    const started = performance.now();
    const { runId, staged, result } = await runPipelineLocally(session, { specPath, onEvent, onJobOutput: () => {}, jobProcesses });
    const totalMs = performance.now() - started;
    if (result.status !== 'SUCCEEDED') throw new Error(`the ${jobProcesses} run failed: ${result.error}: ${result.cause}`);
    const trials = await session.deps.rewards.listTrials<TrialRow>(staged.spec.project, runId);
    const trainingMs = trials.reduce((sum, t) => sum + (t.row.durationMs ?? 0), 0);
    const jobWallMs = trialWallMs.reduce((a, b) => a + b, 0);
    const { started: workersStarted, readyMs } = session.workers.stats();
    return { runId, project: staged.spec.project, trials: trials.length, totalMs, stages: [...stages], jobWallMs, trainingMs, workersStarted, readyMs };
  } finally {
    await session.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchE2e(options: { specPath?: string } = {}) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const specPath = options.specPath ?? 'examples/penguins/spec.json';
  // Warm first: whatever the first run warms for the second (tsx's transpile cache, the page cache) favours the baseline.
  const warm = await timedRun(specPath, 'warm');
  const runs = { fresh: await timedRun(specPath, 'fresh'), warm };

  const seconds = (ms: number) => `${(ms / 1000).toFixed(2).padStart(7)} s`;
  for (const kind of ['fresh', 'warm'] as const) {
    const run = runs[kind];
    const how = kind === 'fresh' ? 'a fresh process per job' : `warm job workers (${run.workersStarted} started)`;
    console.log(`demo pipeline (${run.project}, ${run.trials} trials, 2 at a time), run ${run.runId}, jobs in ${how}`);
    for (const [stage, ms] of run.stages) console.log(`  ${stage.padEnd(10)} ${seconds(ms)}${stage === 'Trials' ? '  (all generations, wall)' : ''}`);
    console.log(`  ${'total'.padEnd(10)} ${seconds(run.totalMs)}`);
    console.log(
      `  trial jobs: ${(run.jobWallMs / 1000).toFixed(1)} s of job wall time, ${(run.trainingMs / 1000).toFixed(1)} s of it training; training / job wall = ${(run.trainingMs / run.jobWallMs).toFixed(2)}`,
    );
  }
  const ratio = (of: (run: (typeof runs)['warm']) => number) => of(runs.warm) / of(runs.fresh);
  const trialsMs = (run: (typeof runs)['warm']) => run.stages.find(([stage]) => stage === 'Trials')?.[1] ?? NaN;
  const meanReadyMs = runs.warm.readyMs.reduce((a, b) => a + b, 0) / Math.max(1, runs.warm.readyMs.length);
  console.log(
    `warm ÷ fresh: total ${ratio((r) => r.totalMs).toFixed(2)}, Trials state ${ratio(trialsMs).toFixed(2)}, trial job wall ${ratio((r) => r.jobWallMs).toFixed(2)}; a warm worker took ${(meanReadyMs / 1000).toFixed(2)} s to become ready`,
  );
  const figuresOf = (run: (typeof runs)['warm']) => ({
    totalSeconds: run.totalMs / 1000,
    stageSeconds: Object.fromEntries(run.stages.map(([stage, ms]) => [stage, ms / 1000])),
    trialJobWallSeconds: run.jobWallMs / 1000,
    trialTrainingSeconds: run.trainingMs / 1000,
    trainingShareOfJobWall: run.trainingMs / run.jobWallMs,
  });
  const figures = {
    bench: 'e2e',
    spec: runs.warm.project,
    trials: runs.warm.trials,
    fresh: figuresOf(runs.fresh),
    warm: { ...figuresOf(runs.warm), workersStarted: runs.warm.workersStarted, workerReadySeconds: meanReadyMs / 1000 },
    warmOverFresh: { total: ratio((r) => r.totalMs), trials: ratio(trialsMs), trialJobWall: ratio((r) => r.jobWallMs) },
  };
  console.log(JSON.stringify(figures));
  return figures;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchE2e({ ...(process.argv[2] ? { specPath: process.argv[2] } : {}) });
}
