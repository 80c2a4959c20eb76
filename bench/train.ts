/**
 * Training-step speed of the heads in ONNX Runtime (one `session.run` per step: forward, masked
 * losses, gradients, AdamW) for shared-bottom and MMoE, against the same architectures, losses and
 * optimizer in PyTorch measured in the same run when `/usr/bin/python3` can import torch.
 * Run: `npx tsx bench/train.ts`. The last output line is one JSON object with every figure.
 *
 * GFLOP/s counts the dense layers' multiply-adds (2 FLOPs each) of one forward pass times 3 for
 * forward + backward (the usual approximation: backward costs two matrix products per layer).
 *
 * A second section times one whole trial on sparse TF-IDF features (the 5k-document ×
 * 20k-vocabulary set of `bench/textSet.ts`, read from sparse shards, embedding-bag first layer)
 * against scikit-learn's TfidfVectorizer + LogisticRegression fit on the same rows in the same
 * run, goals: the trial no slower, and its validation AUC at least LogisticRegression's on every
 * task. It runs with a text spec's defaults, with the same but batches not grouped by row length,
 * and with the width and rate every other spec gets, and prints all three.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { TrainingSession } from '#lib/domain/graph/index.ts';
import { Random } from '#lib/domain/random/index.ts';
import { batchNames, buildHeads, buildHeadsTrainingStep, forwardFlopsPerRow, type HeadTaskInput } from '#lib/domain/train/index.ts';
import { BASELINE_UNSET_ENV, loadTextSet, sklearnBaseline, TEXT_SET, type SklearnFigures } from './textSet.ts';
import { textTrial, type TextTrialFigures, type TextTrialOverrides } from './textTrial.ts';

export interface BenchTrainOptions {
  inputDim: number;
  hidden: number[];
  towerHidden: number[];
  experts: number;
  expertHidden: number;
  classes: number;
  batch: number;
  threads: number;
  warmupSteps: number;
  steps: number;
  /** Interpreter that must import torch for the PyTorch baseline. */
  python: string;
  log: (line: string) => void;
}

export const BENCH_TRAIN_DEFAULTS: Readonly<Omit<BenchTrainOptions, 'log'>> = {
  inputDim: 384,
  hidden: [256],
  towerHidden: [64],
  experts: 4,
  expertHidden: 128,
  classes: 5,
  batch: 512,
  threads: 2,
  warmupSteps: 10,
  steps: 60,
  python: '/usr/bin/python3',
};

type Architecture = 'shared-bottom' | 'mmoe';

export interface ArchitectureFigures {
  architecture: Architecture;
  parameters: number;
  trainFlopsPerStep: number;
  ours: { msPerStep: number; gflops: number };
  pytorch: { msPerStep: number; gflops: number; blas: string } | null;
  /** Our steps/s ÷ PyTorch's; null without PyTorch. */
  ratio: number | null;
}

export interface BenchTrainReport {
  config: Omit<BenchTrainOptions, 'log' | 'python'>;
  pytorch: { available: boolean; version: string | null; detail: string; unsetEnv: string[] };
  results: ArchitectureFigures[];
  goal: { ratio: number; met: boolean | null };
}

const TASKS: (classes: number) => HeadTaskInput[] = (classes) => [
  { name: 'click', type: 'binary' },
  { name: 'topic', type: 'multiclass', classes: Array.from({ length: classes }, (_, k) => `c${k}`) },
  { name: 'price', type: 'regression', loss: 'mse' },
];

/** A few fixed random batches, rotated so no step reuses the previous step's inputs. */
function makeBatches(options: BenchTrainOptions, count: number) {
  const random = new Random(17);
  return Array.from({ length: count }, () => {
    const { batch, inputDim, classes } = options;
    const mask = () => Uint8Array.from({ length: batch }, () => (random.uniform() < 0.8 ? 1 : 0));
    return {
      [batchNames.features]: { data: Float32Array.from({ length: batch * inputDim }, () => random.normal()), dims: [batch, inputDim] },
      [batchNames.label('click')]: { data: Float32Array.from({ length: batch }, () => (random.uniform() < 0.3 ? 1 : 0)), dims: [batch] },
      [batchNames.mask('click')]: { data: mask(), dims: [batch] },
      [batchNames.label('topic')]: { data: Float32Array.from({ length: batch }, () => random.int(classes)), dims: [batch] },
      [batchNames.mask('topic')]: { data: mask(), dims: [batch] },
      [batchNames.label('price')]: { data: Float32Array.from({ length: batch }, () => random.normal()), dims: [batch] },
      [batchNames.mask('price')]: { data: mask(), dims: [batch] },
    };
  });
}

async function measureOurs(architecture: Architecture, options: BenchTrainOptions) {
  const heads = buildHeads({
    architecture,
    model: { hidden: options.hidden, towerHidden: options.towerHidden, experts: options.experts, expertHidden: options.expertHidden },
    tasks: TASKS(options.classes),
    inputDim: options.inputDim,
    seed: 1,
  });
  const step = buildHeadsTrainingStep(heads, { optimizer: { weightDecay: 1e-4 } });
  const session = await TrainingSession.create(step, { intraOpNumThreads: options.threads });
  const batches = makeBatches(options, 4);
  const lambda = [1, 1, 1];
  try {
    for (let i = 0; i < options.warmupSteps; i++) await session.step(batches[i % batches.length], { lambda, learningRate: 1e-3 });
    const start = performance.now();
    for (let i = 0; i < options.steps; i++) await session.step(batches[i % batches.length], { lambda, learningRate: 1e-3 });
    const msPerStep = (performance.now() - start) / options.steps;
    const trainFlopsPerStep = 3 * forwardFlopsPerRow(heads) * options.batch;
    const parameters = heads.parameters.reduce((n, p) => n + p.init.length, 0);
    return { msPerStep, trainFlopsPerStep, parameters };
  } finally {
    await session.release();
  }
}

function probeTorch(python: string): { available: boolean; version: string | null; detail: string } {
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.error) return { available: false, version: null, detail: `${python} could not run (${probe.error.message})` };
  if (probe.status !== 0) {
    const last = probe.stderr.trim().split('\n').at(-1) ?? '';
    return { available: false, version: null, detail: `${python} cannot import torch (${last}); install Debian's python3-torch to measure the baseline` };
  }
  return { available: true, version: probe.stdout.trim(), detail: `${python}: torch ${probe.stdout.trim()}` };
}

// bench/quality.ts reads it from here.
export { BASELINE_UNSET_ENV };

/** The environment the baseline runs in, and which of the machine's BLAS settings it lost. */
function baselineEnvironment(): { env: NodeJS.ProcessEnv; removed: string[] } {
  const env = { ...process.env };
  const removed: string[] = [];
  for (const name of BASELINE_UNSET_ENV) {
    if (env[name] === undefined) continue;
    removed.push(`${name}=${env[name]}`);
    delete env[name];
  }
  return { env, removed };
}

function measureTorch(architecture: Architecture, options: BenchTrainOptions): { msPerStep: number; blas: string } {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'train_torch.py');
  const config = {
    architecture,
    inputDim: options.inputDim,
    hidden: options.hidden,
    towerHidden: options.towerHidden,
    experts: options.experts,
    expertHidden: options.expertHidden,
    classes: options.classes,
    batch: options.batch,
    threads: options.threads,
    warmupSteps: options.warmupSteps,
    steps: options.steps,
  };
  const run = spawnSync(options.python, [script, JSON.stringify(config)], { encoding: 'utf8', env: baselineEnvironment().env });
  if (run.status !== 0)
    throw new Error(`bench/train_torch.py failed for ${architecture} (exit ${run.status}): ${run.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  const last = run.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as { msPerStep: number; blas: string };
}

export async function benchTrain(overrides: Partial<BenchTrainOptions> = {}): Promise<BenchTrainReport> {
  const options: BenchTrainOptions = { ...BENCH_TRAIN_DEFAULTS, log: (line) => console.log(line), ...overrides };
  const torch = probeTorch(options.python);
  const results: ArchitectureFigures[] = [];
  for (const architecture of ['shared-bottom', 'mmoe'] as const) {
    const ours = await measureOurs(architecture, options);
    const gflops = (ms: number) => ours.trainFlopsPerStep / (ms * 1e6);
    const theirs = torch.available ? measureTorch(architecture, options) : null;
    results.push({
      architecture,
      parameters: ours.parameters,
      trainFlopsPerStep: ours.trainFlopsPerStep,
      ours: { msPerStep: ours.msPerStep, gflops: gflops(ours.msPerStep) },
      pytorch: theirs === null ? null : { msPerStep: theirs.msPerStep, gflops: gflops(theirs.msPerStep), blas: theirs.blas },
      ratio: theirs === null ? null : theirs.msPerStep / ours.msPerStep,
    });
  }

  const { log, python: _python, ...config } = options;
  log(
    `train bench: inputs ${options.inputDim}, hidden [${options.hidden.join(', ')}], towers [${options.towerHidden.join(', ')}], MMoE ${options.experts}×${options.expertHidden}, tasks binary + ${options.classes}-class + regression, batch ${options.batch}, ${options.threads} intra-op threads, ${options.steps} timed steps after ${options.warmupSteps}`,
  );
  const blas = results.find((r) => r.pytorch !== null)?.pytorch?.blas;
  log(`PyTorch baseline: ${torch.detail}${blas === undefined ? '' : `, BLAS ${blas}`}`);
  const { removed } = baselineEnvironment();
  log(
    `  run without the machine's BLAS settings: ${removed.length > 0 ? `${removed.join(', ')} unset for the baseline process` : `${BASELINE_UNSET_ENV.join(' and ')} were not set`}`,
  );
  if (blas !== undefined && /\/blas\/libblas\.so/.test(blas)) {
    log(`  note: ${blas} is netlib's reference BLAS, so PyTorch's dense layers run unoptimised here; install OpenBLAS (libopenblas0) for a stronger baseline`);
  }
  log('');
  log('architecture  | params  | MFLOP/step | ORT ms/step | ORT GFLOP/s | PyTorch ms/step | PyTorch GFLOP/s | steps/s ratio');
  log('--------------|---------|------------|-------------|-------------|-----------------|-----------------|--------------');
  for (const r of results) {
    const cell = (v: number | undefined, width: number, digits = 2) => (v === undefined ? 'n/a' : v.toFixed(digits)).padStart(width);
    log(
      `${r.architecture.padEnd(13)} | ${String(r.parameters).padStart(7)} | ${cell(r.trainFlopsPerStep / 1e6, 10, 1)} | ${cell(r.ours.msPerStep, 11)} | ${cell(r.ours.gflops, 11, 1)} | ${cell(r.pytorch?.msPerStep, 15)} | ${cell(r.pytorch?.gflops, 15, 1)} | ${cell(r.ratio ?? undefined, 13)}`,
    );
  }
  const goalRatio = 2.5;
  const met = results.every((r) => r.ratio !== null) ? results.every((r) => (r.ratio ?? 0) >= goalRatio) : null;
  log(met === null ? `goal ≥ ${goalRatio}× PyTorch: not measured (no PyTorch here)` : `goal ≥ ${goalRatio}× PyTorch: ${met ? 'met' : 'not met'}`);
  const report: BenchTrainReport = { config, pytorch: { ...torch, unsetEnv: removed }, results, goal: { ratio: goalRatio, met } };
  log(JSON.stringify(report));
  return report;
}

export interface SparseTrialReport {
  documents: number;
  dimension: number;
  sklearn: SklearnFigures;
  trials: (TextTrialFigures & { name: string; ratio: number | null; met: boolean | null; aucMet: boolean | null })[];
}

/** One trial on sparse text features beside scikit-learn's vectorize + fit on the same rows. */
export async function benchSparseTrial(log: (line: string) => void = (line) => console.log(line)): Promise<SparseTrialReport> {
  const set = await loadTextSet();
  const sklearn = sklearnBaseline(set);
  // The text defaults beside the dense defaults (the wide layers and rate every other spec gets).
  const configs: { name: string; overrides: TextTrialOverrides }[] = [
    { name: 'text spec defaults', overrides: {} },
    { name: 'dense-spec widths and rate', overrides: { model: { hidden: [256], towerHidden: [64] }, training: { learningRate: 1e-3 } } },
  ];
  const trials: SparseTrialReport['trials'] = [];
  for (const config of configs) {
    const figures = await textTrial(set, config.overrides);
    const ratio = sklearn.totalMs === undefined ? null : sklearn.totalMs / figures.trialMs;
    const aucMet = sklearn.auc === undefined ? null : Object.entries(sklearn.auc).every(([task, auc]) => figures.auc[task] >= auc);
    trials.push({ name: config.name, ...figures, ratio, met: ratio === null ? null : ratio >= 1, aucMet });
  }
  await set.encoder.release();

  const seconds = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(1)} s`);
  const aucs = (auc: Record<string, number> | undefined) =>
    auc === undefined
      ? 'n/a'
      : Object.entries(auc)
          .map(([task, value]) => `${task} ${value.toFixed(4)}`)
          .join(', ');
  log('');
  log(
    `sparse text trial: ${set.rows.length} generated documents (${TEXT_SET.tokens.join('–')} tokens, Zipf over ${TEXT_SET.vocabulary} words), ${set.train} train / ${set.rows.length - set.train} validation rows, TF-IDF dimension ${set.encoder.dimension}, two binary tasks`,
  );
  log(
    `  scikit-learn (${sklearn.detail}): TfidfVectorizer ${seconds(sklearn.vectorizeMs)} + LogisticRegression ×2 ${seconds(sklearn.fitMs)} = ${seconds(sklearn.totalMs)}; validation AUC ${aucs(sklearn.auc)}`,
  );
  log(`  our encoder fit (vocabulary + idf) on the train rows: ${seconds(set.fitMs)}; the sparse rows are computed by Embed, not timed here`);
  for (const t of trials) {
    log(
      `  one trial, ${t.name} (hidden [${t.settings.hidden.join(', ')}], towers [${t.settings.towerHidden.join(', ')}], batch ${t.settings.batchSize}, lr ${t.settings.learningRate}, up to ${t.settings.epochs} epochs): ${seconds(t.trialMs)}, ${t.epochs} epochs, ${t.steps} steps; validation AUC ${aucs(t.auc)}`,
    );
    log(
      `    scikit-learn time / trial time: ${t.ratio === null ? 'n/a' : `${t.ratio.toFixed(2)}×`}; goal ≥ 1× (no slower): ${t.met === null ? 'not measured (no scikit-learn)' : t.met ? 'met' : 'not met'}`,
    );
    log(
      `    validation AUC at least LogisticRegression's on every task: ${t.aucMet === null ? 'not measured (no scikit-learn)' : t.aucMet ? 'met' : 'not met'}`,
    );
  }
  return { documents: set.rows.length, dimension: set.encoder.dimension, sklearn, trials };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const report = await benchTrain();
  const sparseTrial = await benchSparseTrial();
  console.log(JSON.stringify({ ...report, sparseTrial }));
}
