import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { AgentflowError } from '#lib/domain/errors/index.ts';
import type { MonitorReport } from '#lib/serve/index.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { parseSpec } from '#lib/domain/spec/index.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { mulberry32 } from '#lib/domain/random/index.ts';
import type { JobOutputLine } from '#lib/adapters/local/batchJob.ts';
import type { WorkflowEvent } from '#lib/adapters/local/workflow.ts';
import { runPipelineLocally, type LocalSession } from './localRun.ts';
import { startUp, type UpRun } from './up.ts';

/**
 * The closed loop, driven on one machine: a tabular project is trained and served by `up`, then
 * live traffic shifts (its numeric inputs move by some standard deviations) and, optionally, the
 * ground truth changes with it (the shifted birds' classes rotate). Each request's feedback carries
 * the bird's label (`datasets.feedback`), so the retraining run learns from the shifted population
 * it served; the monitor sees the reward drop or the drift and starts
 * a retraining run, the new version goes out as a canary, and Thompson routing moves traffic as
 * feedback arrives — or, when the feedback's labels were wrong, keeps it on the champion.
 */
export class DriftScenarioError extends AgentflowError {
  constructor(message: string, options: { code: 'SCENARIO_SPEC_UNSUITED' | 'SCENARIO_FAILED'; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'DriftScenarioError';
  }
}

export interface DriftScenarioOptions {
  /** A tabular spec with a JSONL train file and a multiclass first task (the penguins example fits). */
  specPath: string;
  /** Where the scenario's spec and training file are written. */
  workDir: string;
  /** How far the numeric inputs move, in standard deviations. */
  shiftSd: number;
  /** Whether the ground truth of shifted records changes (their class rotates to the next one). */
  truthChanges: boolean;
  /** The labels the shifted records' feedback carries: the ground truth, or wrong ones (a bad labelling job). */
  feedbackLabels: 'truth' | 'wrong';
  /** The monitor's window; the monitor runs once per window. */
  windowSeconds: number;
  /** Requests sent per second (sequential, one record each, each with its feedback). */
  requestsPerSecond?: number;
  /** After the new version first serves, how long traffic keeps flowing before the scenario ends. */
  observeSeconds?: number;
  /** Gives up when no retraining has served by then. */
  timeoutSeconds?: number;
  /** Spec overrides for speed (tuning budget, epochs). */
  specPatch?: Record<string, unknown>;
  say?: (line: string) => void;
  /** The runs' progress (default: the local runner's own printing of job output). */
  onEvent?: (event: WorkflowEvent) => void;
  onJobOutput?: (line: JobOutputLine) => void;
}

/** One monitor window as the timeline shows it. */
export interface LoopWindow {
  start: string;
  /** The monitor's per-version online reward and drift score at the end of the window. */
  versions: { version: number; production: boolean; reward: number | null; feedback: number; psi: number | null }[];
  /** Share of this window's requests each version served. */
  traffic: Record<string, number>;
  requests: number;
  shifted: boolean;
}

export interface DriftScenarioResult {
  project: string;
  champion: number;
  /** The retrained version, when one was registered. */
  challenger?: number;
  production: number;
  driftOnsetAt: string;
  detectedAt?: string;
  /** `feedbackRows`: the labelled predictions the retraining trained with (its manifest's feedback dataset). */
  retrainRun?: { runId: string; status: string; reason: string; startedAt: string; endedAt: string; feedbackRows: number };
  /** When the new version first answered a request. */
  servingAt?: string;
  /** Mean reward per request in the last window before the shift, and over the last window. */
  rewardBefore: number | null;
  rewardAfter: number | null;
  /** The share of the requests that left the champion (went to any retrained version) after the first retrained one served. */
  challengerShare: number | null;
  /**
   * The first retrained version's own share of the same requests. Drift that persists can start
   * more retraining runs within the observation, and each of their canaries takes its own floor of
   * the traffic; this share is what the router gave the version that retraining produced.
   */
  firstChallengerShare: number | null;
  windows: LoopWindow[];
}

interface Row {
  input: Record<string, unknown>;
  labels: Record<string, unknown>;
}

/** Runs the whole scenario in this process: an initial run, `up`, the traffic, and the loop closing. */
export async function runDriftScenario(session: LocalSession, options: DriftScenarioOptions): Promise<DriftScenarioResult> {
  const say = options.say ?? (() => undefined);
  const { spec, raw, rows, numeric, task, classes, project } = await loadScenario(options);
  await mkdir(options.workDir, { recursive: true });
  const trainPath = join(options.workDir, 'train.jsonl');
  const specPath = join(options.workDir, 'spec.json');
  await writeFile(trainPath, rows.map((row) => JSON.stringify({ ...row.input, ...row.labels })).join('\n') + '\n');
  await writeFile(
    specPath,
    JSON.stringify({
      ...raw,
      ...options.specPatch,
      project,
      // The served records and their feedback's labels become training rows of the retraining run.
      datasets: { train: 'train.jsonl', feedback: true },
      // Floors off: the canary must go out even when it is worse, so that routing is what keeps traffic on the champion.
      tasks: spec.tasks.map((t) => ({ ...(raw.tasks as Record<string, unknown>[]).find((r) => r.name === t.name), floor: undefined })),
      deploy: { policy: 'canary', canaryShare: 0.2 },
      // PSI over a hundred-odd samples reads above 0.2 by chance now and then; a shift of a standard deviation reads well above 0.5.
      monitor: { windowHours: options.windowSeconds / 3600, minRewardDrop: 0.15, psiThreshold: 0.5 },
      schedule: undefined,
    }),
  );

  say(`training the champion of ${project}…`);
  const progress = { ...(options.onEvent ? { onEvent: options.onEvent } : {}), ...(options.onJobOutput ? { onJobOutput: options.onJobOutput } : {}) };
  const initial = await runPipelineLocally(session, { specPath, trigger: 'scenario', ...progress });
  if (initial.result.status !== 'SUCCEEDED')
    throw new DriftScenarioError(
      `the initial run ${initial.runId} of ${project} ${initial.result.status}: ${initial.result.error ?? ''} ${initial.result.cause ?? ''}`,
      { code: 'SCENARIO_FAILED' },
    );
  const serving = await session.deps.registry.getServingSet(project);
  if (!serving) throw new DriftScenarioError(`the initial run of ${project} put no version in production`, { code: 'SCENARIO_FAILED' });
  const champion = serving.production;
  say(`version ${champion} in production; starting up with the monitor every ${options.windowSeconds}s`);

  const stats = numeric.map((field) => {
    const values = rows.map((r) => r.input[field]).filter((v): v is number => typeof v === 'number');
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    return { field, mean, sd: Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length) };
  });
  // Shuffled: the file is sorted by species and island, and a stream in file order would drift by itself.
  const random = mulberry32(7);
  const labelled = rows
    .filter((r) => typeof r.labels[task] === 'string')
    .map((row) => ({ row, key: random() }))
    .sort((a, b) => a.key - b.key)
    .map(({ row }) => row);
  const shifted = (row: Row): Row => ({
    input: {
      ...row.input,
      ...Object.fromEntries(
        stats.map((s) => [s.field, typeof row.input[s.field] === 'number' ? (row.input[s.field] as number) + options.shiftSd * s.sd : row.input[s.field]]),
      ),
    },
    labels: { ...row.labels, [task]: options.truthChanges ? rotate(classes, row.labels[task] as string) : row.labels[task] },
  });

  const reports: MonitorReport[] = [];
  const runs: UpRun[] = [];
  const up = await startUp(session, {
    specPaths: [specPath],
    port: 0,
    ...progress,
    monitorEveryMs: options.windowSeconds * 1000,
    monitor: { minFeedback: 20, minDriftSamples: 80, projects: [project] },
    serve: { statsTtlMs: 500, drift: { sampleRate: 1, flushAfterMs: 1000 } },
    onMonitor: (report) => {
      reports.push(report);
      for (const p of report.projects.filter((p) => p.project === project)) {
        const versions = p.versions.map(
          (v) =>
            `v${v.version}${v.production ? '*' : ''} reward ${v.reward.mean === null ? '–' : v.reward.mean.toFixed(2)} psi ${'maxPsi' in v.drift ? v.drift.maxPsi.toFixed(2) : '–'}`,
        );
        say(`  monitor: ${versions.join(' | ')}${p.retrain?.started ? `  → retraining (${p.retrain.reason})` : ''}`);
      }
    },
    onRunStart: (run) => say(`  retraining run ${run.runId} started (${run.trigger})`),
    onRunEnd: (run) => {
      runs.push(run);
      say(`  retraining run ${run.runId}: ${run.result.error === 'RunInterrupted' ? 'stopped with up between stages (resumable)' : run.result.status}`);
    },
    onError: (error) => say(`  up: ${(error as Error).message}`),
  });

  const served: { at: number; version: number; reward: number; shifted: boolean }[] = [];
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${up.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const answer = (await response.json()) as Record<string, unknown>;
    if (!response.ok) throw new DriftScenarioError(`${path} answered ${response.status}: ${JSON.stringify(answer)}`, { code: 'SCENARIO_FAILED' });
    return answer;
  };
  const sendOne = async (row: Row, isShifted: boolean) => {
    const answer = (await post('/infer', { project, records: [row.input] })) as {
      version: number;
      predictions: { predictionId: string; outputs: Record<string, { label?: unknown }> }[];
    };
    const prediction = answer.predictions[0];
    const reward = Number(prediction.outputs[task]?.label === row.labels[task]);
    const truth = row.labels[task] as string;
    // A bad labelling job labels each shifted bird as the class two after its true one (never the truth).
    const label = isShifted && options.feedbackLabels === 'wrong' ? rotate(classes, rotate(classes, truth)) : truth;
    await post('/feedback', { project, predictionId: prediction.predictionId, reward, label: { [task]: label } });
    served.push({ at: Date.now(), version: answer.version, reward, shifted: isShifted });
  };
  const pace = 1000 / (options.requestsPerSecond ?? 25);
  let next = 0;
  const traffic = async (until: () => boolean, isShifted: boolean) => {
    while (!until()) {
      const row = labelled[next++ % labelled.length];
      const started = Date.now();
      await sendOne(isShifted ? shifted(row) : row, isShifted);
      await new Promise((r) => setTimeout(r, Math.max(0, pace - (Date.now() - started))));
    }
  };

  let result: DriftScenarioResult;
  try {
    // A window and a half of the population the champion was trained on, for the reward before: the first monitor pass falls inside it.
    const stableUntil = Date.now() + options.windowSeconds * 1500;
    await traffic(() => Date.now() >= stableUntil, false);
    const driftOnset = Date.now();
    say(
      `drift begins: inputs move by ${options.shiftSd} sd${options.truthChanges ? ' and their class rotates' : ''}; their feedback labels them${options.feedbackLabels === 'wrong' ? ' wrongly' : ''}`,
    );

    const deadline = driftOnset + (options.timeoutSeconds ?? 240) * 1000;
    let firstServed: number | undefined;
    let firstChallenger: number | undefined;
    await traffic(() => {
      if (Date.now() > deadline) return true;
      const newest = served.at(-1);
      if (newest && newest.version !== champion && firstServed === undefined) {
        firstServed = newest.at;
        firstChallenger = newest.version;
        say(`version ${newest.version} serves as a canary; routing by feedback for ${options.observeSeconds ?? 20}s`);
      }
      // A retraining that registered no servable version ends the scenario too.
      const failed = runs.length > 0 && up.queued === 0 && runs.every((r) => r.result.status !== 'SUCCEEDED');
      return failed || (firstServed !== undefined && Date.now() - firstServed >= (options.observeSeconds ?? 20) * 1000);
    }, true);

    // A pass before the onset that started a retraining would be a false alarm; it is in the timeline, not the detection.
    const detection = reports.find((r) => Date.parse(r.time) >= driftOnset && r.projects.some((p) => p.project === project && p.retrain?.started));
    const retrain = runs[0];
    const feedbackRows = retrain ? await feedbackRowsOf(session, retrain.runId) : 0;
    if (retrain) say(`  retraining ${retrain.runId} trained with ${feedbackRows} labelled feedback rows`);
    const after = await session.deps.registry.getServingSet(project);
    // The version the retraining produced (the first to serve beside the champion).
    const challenger =
      firstChallenger ??
      after?.challengers.find((c) => c.version !== champion)?.version ??
      (after && after.production !== champion ? after.production : undefined);
    const sinceServing = firstServed === undefined ? [] : served.filter((s) => s.at >= firstServed!);
    const windowMs = options.windowSeconds * 1000;
    const lastWindow = served.filter((s) => s.at >= (served.at(-1)?.at ?? 0) - windowMs);
    const before = served.filter((s) => !s.shifted);
    result = {
      project,
      champion,
      ...(challenger === undefined ? {} : { challenger }),
      production: after?.production ?? champion,
      driftOnsetAt: new Date(driftOnset).toISOString(),
      ...(detection ? { detectedAt: detection.time } : {}),
      ...(retrain
        ? {
            retrainRun: {
              runId: retrain.runId,
              status: retrain.result.status,
              reason: retrain.reason,
              startedAt: retrain.startedAt.toISOString(),
              endedAt: retrain.endedAt.toISOString(),
              feedbackRows,
            },
          }
        : {}),
      ...(firstServed === undefined ? {} : { servingAt: new Date(firstServed).toISOString() }),
      rewardBefore: mean(before.map((s) => s.reward)),
      rewardAfter: mean(lastWindow.map((s) => s.reward)),
      challengerShare: sinceServing.length === 0 ? null : sinceServing.filter((s) => s.version !== champion).length / sinceServing.length,
      firstChallengerShare: sinceServing.length === 0 ? null : sinceServing.filter((s) => s.version === firstChallenger).length / sinceServing.length,
      windows: timeline(reports, project, served, windowMs, driftOnset),
    };
  } finally {
    await up.stop();
  }
  return result;
}

/** The rows of a run's feedback dataset, from its manifest; 0 when it had none (or stopped before Prepare wrote one). */
async function feedbackRowsOf(session: LocalSession, runId: string): Promise<number> {
  const key = keys.runManifest(runId);
  if (!(await session.deps.store.exists(key))) return 0;
  const manifest = await session.deps.store.getJson(key, RunManifest);
  return manifest.datasets.find((d) => d.source === 'feedback')?.rows ?? 0;
}

/** Fixed windows over the traffic, from its first request to its last, each with the monitor pass that ended in it (if one did). */
function timeline(
  reports: MonitorReport[],
  project: string,
  served: { at: number; version: number; shifted: boolean }[],
  windowMs: number,
  driftOnset: number,
): LoopWindow[] {
  if (served.length === 0) return [];
  const windows: LoopWindow[] = [];
  for (let start = served[0].at; start <= served.at(-1)!.at; start += windowMs) {
    const end = start + windowMs;
    const inWindow = served.filter((s) => s.at >= start && s.at < end);
    const traffic: Record<string, number> = {};
    for (const s of inWindow) traffic[`v${s.version}`] = (traffic[`v${s.version}`] ?? 0) + 1 / inWindow.length;
    const pass = reports.filter((r) => Date.parse(r.time) >= start && Date.parse(r.time) < end).at(-1);
    const health = pass?.projects.find((p) => p.project === project && !p.error);
    windows.push({
      start: new Date(start).toISOString(),
      versions: (health?.versions ?? []).map((v) => ({
        version: v.version,
        production: v.production,
        reward: v.reward.mean,
        feedback: v.reward.count,
        psi: 'maxPsi' in v.drift ? v.drift.maxPsi : null,
      })),
      traffic,
      requests: inWindow.length,
      shifted: end > driftOnset,
    });
  }
  return windows;
}

const mean = (values: number[]) => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);

function rotate(classes: readonly string[], label: string): string {
  return classes[(classes.indexOf(label) + 1) % classes.length];
}

async function loadScenario(options: DriftScenarioOptions) {
  const raw = JSON.parse(await readFile(options.specPath, 'utf8')) as Record<string, unknown>;
  const spec = parseSpec(raw, { source: options.specPath });
  const base = spec.baseModels[0];
  const first = spec.tasks[0];
  const train = spec.datasets.train;
  if (base.kind !== 'tabular' || first.type !== 'multiclass' || !first.classes || !train.endsWith('.jsonl')) {
    throw new DriftScenarioError(
      `${options.specPath}: the drift scenario needs a tabular base model, a multiclass first task with classes and a JSONL train file (examples/penguins/spec.json has them)`,
      {
        code: 'SCENARIO_SPEC_UNSUITED',
      },
    );
  }
  const text = await readFile(resolve(dirname(options.specPath), train), 'utf8');
  const taskNames = new Set(spec.tasks.map((t) => t.name));
  const rows: Row[] = text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      const record = JSON.parse(line) as Record<string, unknown>;
      return {
        input: Object.fromEntries(Object.entries(record).filter(([k]) => !taskNames.has(k))),
        labels: Object.fromEntries(Object.entries(record).filter(([k]) => taskNames.has(k))),
      };
    });
  const project = typeof options.specPatch?.project === 'string' ? options.specPatch.project : `${spec.project}-drift`;
  return { spec, raw, rows, numeric: base.numeric as string[], task: first.name, classes: first.classes, project };
}
