/**
 * The sparse-text benchmark set shared by `bench embed` and `bench train`: a generated corpus of
 * 5k documents over a 20k-word Zipf vocabulary (300–800 tokens each, two binary tasks decided by a
 * few words; `generateTextCorpus`), the spec's default text encoder fitted on its train rows, and
 * the scikit-learn baseline (TfidfVectorizer + LogisticRegression per task) run on the same rows in
 * its own Python process.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { fitEncoder, loadEncoder, type Encoder } from '#lib/domain/encoders/index.ts';
import type { TextBaseModelSpec } from '#lib/domain/spec/index.ts';
import { generateTextCorpus } from '#lib/domain/synth/index.ts';

export const TEXT_SET = { documents: 5000, vocabulary: 20000, tokens: [300, 800] as const, seed: 2026, trainFraction: 0.75 };
export const TEXT_TASKS = ['spam', 'urgent'] as const;
/** The spec's text defaults: unigrams and bigrams, a 20k vocabulary, df ≥ 2, lowercase. */
export const TEXT_ENCODER: TextBaseModelSpec = {
  kind: 'text',
  field: 'text',
  ngramRange: [1, 2],
  vocabularySize: 20000,
  minDocumentFrequency: 2,
  lowercase: true,
};

/** The text set's tasks as a shard declares them. */
export const TEXT_SHARD_TASKS = TEXT_TASKS.map((name) => ({ name, type: 'binary' as const }));

/** A shard's label and mask columns for rows of the text set (every row is labelled). */
export function textLabelColumns(rows: readonly ValidatedRow[]): { labels: Record<string, Float32Array>; masks: Record<string, Uint8Array> } {
  return {
    labels: Object.fromEntries(TEXT_TASKS.map((t) => [t, Float32Array.from(rows, (r) => r.labels[t] as number)])),
    masks: Object.fromEntries(TEXT_TASKS.map((t) => [t, new Uint8Array(rows.length).fill(1)])),
  };
}

export interface TextSet {
  records: Record<string, string | number>[];
  rows: ValidatedRow[];
  train: number;
  encoder: Encoder;
  encoderModel: Uint8Array;
  fitMs: number;
}

export async function loadTextSet(): Promise<TextSet> {
  const { records } = generateTextCorpus({ documents: TEXT_SET.documents, vocabulary: TEXT_SET.vocabulary, tokens: TEXT_SET.tokens, seed: TEXT_SET.seed });
  const rows: ValidatedRow[] = records.map((r) => ({ input: { text: r.text }, labels: Object.fromEntries(TEXT_TASKS.map((t) => [t, Number(r[t])])) }));
  const train = Math.floor(rows.length * TEXT_SET.trainFraction);
  const start = performance.now();
  const fitted = await fitEncoder(TEXT_ENCODER, async function* () {
    yield* rows.slice(0, train);
  });
  const fitMs = performance.now() - start;
  return { records, rows, train, encoder: await loadEncoder(fitted.model, { intraOpNumThreads: 2 }), encoderModel: fitted.model, fitMs };
}

export interface SklearnFigures {
  available: boolean;
  detail: string;
  /** TfidfVectorizer fit on the train rows and transform of every row. */
  vectorizeMs?: number;
  /** LogisticRegression fits, one per task. */
  fitMs?: number;
  totalMs?: number;
  auc?: Record<string, number>;
}

/**
 * Settings this machine exports for OpenBLAS that current OpenBLAS runs slower with: with them the
 * PyTorch baseline read 133 ms a step, without them 19.7 ms. They are removed for the baseline
 * process alone (ONNX Runtime's kernels do not read them), so the ratio is against the baseline
 * as a user's machine would run it.
 */
export const BASELINE_UNSET_ENV = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;

/** What `bench/quality_sklearn.py` prints (the fields read here). */
interface QualityBaselineOutput {
  sklearn: string;
  vectorizeSeconds: number;
  tasks: Record<string, { linear: { auc: number; seconds: number } }>;
}

/**
 * scikit-learn on the same rows, in its own process, with the machine's OpenBLAS settings that
 * slow current OpenBLAS removed (as `bench train`'s PyTorch baseline): `bench/quality_sklearn.py`'s
 * TF-IDF + LogisticRegression path, fitted on the train rows and scored on the rest. The corpus's
 * words are letters and digits of two or more characters, so scikit-learn's default tokenizer keeps
 * the same tokens as ours (`[a-z0-9]+` after lowercasing) and both see the same vocabulary.
 */
export function sklearnBaseline(set: TextSet, options: { python?: string } = {}): SklearnFigures {
  const python = options.python ?? '/usr/bin/python3';
  const dir = mkdtempSync(join(tmpdir(), 'agentflow-text-'));
  const data = join(dir, 'corpus.jsonl');
  writeFileSync(data, set.records.map((r) => JSON.stringify(r)).join('\n'));
  const splits = join(dir, 'splits.json');
  const indices = set.records.map((_, i) => i);
  writeFileSync(splits, JSON.stringify({ train: indices.slice(0, set.train), validation: [], holdout: indices.slice(set.train) }));
  const env = { ...process.env };
  for (const name of BASELINE_UNSET_ENV) delete env[name];
  const config = { data, format: 'jsonl', splits, text: TEXT_ENCODER, tasks: TEXT_TASKS.map((task) => ({ name: task, label: task, type: 'binary' })) };
  const script = join(dirname(fileURLToPath(import.meta.url)), 'quality_sklearn.py');
  const run = spawnSync(python, [script, JSON.stringify(config)], { encoding: 'utf8', env });
  rmSync(dir, { recursive: true, force: true });
  if (run.error) return { available: false, detail: `${python} could not run (${run.error.message})` };
  if (run.status !== 0) {
    const last = run.stderr.trim().split('\n').at(-1) ?? '';
    return { available: false, detail: `${python} bench/quality_sklearn.py failed (${last}); install Debian's python3-sklearn to measure the baseline` };
  }
  const output = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as QualityBaselineOutput;
  const vectorizeMs = output.vectorizeSeconds * 1000;
  const fitMs = TEXT_TASKS.reduce((sum, task) => sum + output.tasks[task].linear.seconds * 1000, 0);
  const auc = Object.fromEntries(TEXT_TASKS.map((task) => [task, output.tasks[task].linear.auc]));
  return { available: true, detail: `${python}: scikit-learn ${output.sklearn}`, vectorizeMs, fitMs, totalMs: vectorizeMs + fitMs, auc };
}
