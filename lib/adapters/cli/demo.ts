import { splitRows } from '#lib/pipeline/embed/index.ts';
import { join } from 'node:path';
import { ModelCard, RunManifest } from '#lib/domain/run/index.ts';
import { runDriftScenario, runPipelineLocally, trainBaselines, type LocalSession } from '#lib/adapters/local/index.ts';
import { startServer } from '#lib/serve/index.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { EXIT, fixed, table, type Output } from './output.ts';
import type { Progress } from './progress.ts';
import { serveContextOf } from './serving.ts';
import { loopFigures, writeLoopTimeline, writeRunReport } from '#lib/adapters/report/index.ts';
import { summarizeRun } from './summary.ts';

export const DEMO_SPEC = 'examples/penguins/spec.json';

/**
 * `npm start`: the whole loop on the shipped demo data — a pipeline run (prepare, embed, tune,
 * export, promote), the tuned model against uniform λ and single-task models on the holdout, then
 * the registered model served over HTTP on this machine: one prediction and its feedback.
 */
export async function runDemo(
  session: LocalSession,
  options: { output: Output; progress: Progress; specPath?: string; reportPath: (runId: string) => string },
): Promise<number> {
  const { output, progress } = options;
  const say = (text: string) => {
    if (!output.json) output.out(text);
  };
  say(`agentflow demo: ${options.specPath ?? DEMO_SPEC} on the embedded local AWS (data in ${session.aws.dir})\n`);
  const started = Date.now();
  const { runId, staged, result } = await runPipelineLocally(session, {
    specPath: options.specPath ?? DEMO_SPEC,
    trigger: 'demo',
    onEvent: progress.onEvent,
    onJobOutput: progress.onJobOutput,
  });
  progress.finish();
  const project = staged.spec.project;
  const summary = await summarizeRun(session.deps, project, runId);
  say(`\n${summary.text}\n`);
  if (result.status !== 'SUCCEEDED' || !summary.card) {
    if (output.json) output.out(JSON.stringify({ runId, status: result.status, error: result.error, cause: result.cause }));
    return EXIT.failed;
  }
  const card = summary.card;

  say('comparing with uniform λ and single-task models on the same holdout rows…');
  const manifest = await session.deps.store.getJson(keys.runManifest(runId), RunManifest);
  const baselines = await trainBaselines(session.deps.store, manifest);
  const uniform = baselines.find((b) => b.name === 'uniform λ')!;
  const comparison = card.tasks.map((task) => ({
    task: task.name,
    metric: task.metric,
    singleTask: baselines.find((b) => b.name === `single-task ${task.name}`)?.holdout[task.name]?.[task.metric],
    uniform: uniform.holdout[task.name]?.[task.metric],
    tuned: card.metrics.holdout[task.name]?.[task.metric],
  }));
  say(
    table(
      ['task', 'metric', 'single-task', 'uniform λ', `tuned (v${card.version})`],
      comparison.map((c) => [c.task, c.metric, fixed(c.singleTask), fixed(c.uniform), fixed(c.tuned)]),
    ),
  );
  say(
    `chosen λ: ${Object.entries(card.lambda)
      .map(([t, x]) => `${t}=${fixed(x, 3)}`)
      .join(' ')}\n`,
  );

  const served = await servePrediction(session, manifest, card);
  say(`served version ${served.version} at ${served.url}/infer`);
  say(`  record   ${JSON.stringify(served.record)}`);
  say(`  answer   ${JSON.stringify(served.outputs)}`);
  say(`  feedback reward ${served.reward} recorded for prediction ${served.predictionId}`);
  const report = await writeRunReport(session.deps, { project, runId, path: options.reportPath(runId) });
  say(`\nreport: ${report.path}`);
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  say(`\ndone in ${seconds}s. Next:`);
  say(`  npm run agentflow -- runs show ${runId} -p ${project}`);
  say(`  npm run agentflow -- models ls -p ${project}`);
  say(`  npm run agentflow -- serve        # POST /infer and /feedback on localhost`);
  if (output.json)
    output.out(
      JSON.stringify({
        runId,
        status: result.status,
        version: card.version,
        lambda: card.lambda,
        comparison,
        prediction: served,
        report: { uri: report.uri, path: report.path },
      }),
    );
  return EXIT.ok;
}

/** One holdout record through the real local HTTP server, and its feedback (1 when the first task is right). */
async function servePrediction(session: LocalSession, manifest: RunManifest, card: ModelCard) {
  let sample: { input: Record<string, unknown>; labels: Record<string, number | null> } | undefined;
  for await (const routed of splitRows(session.deps.store, manifest, 'holdout')) {
    if (Object.values(routed.row.labels).every((label) => label !== null)) {
      sample = routed.row;
      break;
    }
  }
  const record = sample!.input;
  const server = await startServer({ context: serveContextOf(session), port: 0 });
  try {
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const answer = (await response.json()) as Record<string, unknown>;
      if (!response.ok) throw new Error(`${path} answered ${response.status}: ${JSON.stringify(answer)}`);
      return answer;
    };
    const inferred = (await post('/infer', { project: card.project, records: [record] })) as {
      version: number;
      predictions: { predictionId: string; outputs: Record<string, { label?: string | number; value?: number }> }[];
    };
    const prediction = inferred.predictions[0];
    const first = card.tasks[0];
    const truth = sample!.labels[first.name];
    const predicted = prediction.outputs[first.name]?.label;
    const reward = first.type === 'multiclass' ? Number(first.classes?.[truth ?? -1] === predicted) : first.type === 'binary' ? Number(truth === predicted) : 1;
    await post('/feedback', { project: card.project, predictionId: prediction.predictionId, reward });
    return { url: server.url, version: inferred.version, record, outputs: prediction.outputs, predictionId: prediction.predictionId, reward };
  } finally {
    await server.close();
  }
}

/**
 * `demo --drift`: after the demo, the loop closing live. `up` serves a champion trained on the
 * penguins; then the birds' measurements move by two standard deviations and their species, as
 * the ground truth has it, rotates; their feedback carries the true species (`datasets.feedback`).
 * The monitor sees the reward drop and the drift, a retraining run learns from those labelled rows, the new
 * version goes out as a canary and Thompson routing moves traffic to it as feedback arrives.
 * Time is compressed: monitor windows of seconds, one small generation of trials.
 */
export async function runDriftDemo(
  session: LocalSession,
  options: { output: Output; progress: Progress; verbose?: boolean; specPath?: string; reportPath: (runId: string) => string },
): Promise<number> {
  const { output, progress } = options;
  const say = (text: string) => {
    if (!output.json) output.out(text);
  };
  const specPath = options.specPath ?? DEMO_SPEC;
  const base = JSON.parse(await (await import('node:fs/promises')).readFile(specPath, 'utf8')) as { project: string };
  // A project of its own per demo, so a second demo starts from a champion again rather than a canary beside the first one's.
  let project = `${base.project}-drift`;
  for (let n = 2; await session.deps.registry.getServingSet(project); n += 1) project = `${base.project}-drift${n}`;
  say(`\nagentflow demo --drift: the loop closing live on ${project} (monitor windows of 8 s; this takes two or three minutes)\n`);
  const loop = await runDriftScenario(session, {
    specPath,
    workDir: join(session.aws.dir, 'drift', project),
    shiftSd: 2,
    truthChanges: true,
    feedbackLabels: 'truth',
    windowSeconds: 8,
    observeSeconds: 16,
    specPatch: {
      project,
      tuning: { strategy: 'pgpe', generations: 1, population: 2, maxConcurrency: 2 },
      training: { epochs: 25, batchSize: 32, learningRate: 0.02, warmupSteps: 5, earlyStoppingPatience: 6 },
    },
    say,
    // The loop's own lines tell this part; every job line would bury them.
    ...(options.verbose ? { onEvent: progress.onEvent, onJobOutput: progress.onJobOutput } : { onEvent: () => undefined, onJobOutput: () => undefined }),
  });
  progress.finish();
  const figures = loopFigures(loop);
  const seconds = (value: number | null) => (value === null ? 'never' : `${value.toFixed(0)} s`);
  say(`\nthe loop on ${project}:`);
  say(
    table(
      ['figure', 'value'],
      [
        ['drift onset → detection', seconds(figures.detectionSeconds)],
        ['drift onset → new version serving', seconds(figures.servingSeconds)],
        ['reward before the drift', fixed(loop.rewardBefore ?? undefined, 3)],
        ['reward in the last window', fixed(loop.rewardAfter ?? undefined, 3)],
        [`v${loop.challenger ?? '?'} share once serving`, loop.challengerShare === null ? '—' : `${(loop.challengerShare * 100).toFixed(0)}%`],
      ],
    ),
  );
  let reportFile: string | undefined;
  if (loop.retrainRun) {
    await writeLoopTimeline(session.deps.store, loop.retrainRun.runId, loop);
    reportFile = (await writeRunReport(session.deps, { project, runId: loop.retrainRun.runId, path: options.reportPath(loop.retrainRun.runId) })).path;
    say(`report with the timeline: ${reportFile}`);
  }
  if (output.json) output.out(JSON.stringify({ loop, figures, ...(reportFile ? { report: reportFile } : {}) }));
  return loop.servingAt && (loop.challengerShare ?? 0) > 0.5 ? EXIT.ok : EXIT.failed;
}
