import * as z from 'zod';
import { createHash } from 'node:crypto';
import { ProblemSummary, trimsCsv, validateDataset } from '#lib/domain/datasets/index.ts';
import { QUANTILES_SUMMARY_KEY } from '#lib/domain/encoders/index.ts';
import type { LabelledFeedbackRow, RewardLog, RunLog } from '#lib/adapters/registry/index.ts';
import { parseSpec, specDigest, canonicalJson, type Spec } from '#lib/domain/spec/index.ts';
import { keys, s3Uri, type ArtifactStore } from '#lib/adapters/store/index.ts';
import type { PrepareInput, PrepareOutput } from '#lib/pipeline/contracts.ts';
import { PrepareError } from './errors.ts';
import type { DatasetEntry, DatasetRole, EncoderEntry, RunManifest } from '#lib/domain/run/index.ts';

export interface PrepareDependencies {
  store: ArtifactStore;
  runLog: RunLog;
  /** The labelled feedback a spec with `datasets.feedback` trains on. */
  rewards?: Pick<RewardLog, 'labelledFeedbackRows'>;
  /** Fits every base-model candidate on the train split; returns one entry per `spec.baseModels` item. */
  fitEncoders: (context: { spec: Spec; datasets: DatasetEntry[]; split: Spec['split'] }) => Promise<EncoderEntry[]>;
}

export interface PrepareOptions {
  /** Row problems listed per dataset before the rest are only counted. */
  maxProblems?: number;
  /** What started the run (`cli`, `schedule`, `drift`), kept on the run record. */
  trigger?: string;
}

const ROLES: readonly DatasetRole[] = ['train', 'validation', 'holdout'];

/**
 * The Prepare stage: checks the spec and every dataset row, fits the base models, and writes the
 * manifest the later stages read. Bad data stops the run here, before any training, with every
 * problem listed; the run record then says why it failed and nothing else is registered.
 * Retried, it writes the same manifest again and creates nothing twice.
 */
export async function prepareRun(input: PrepareInput, deps: PrepareDependencies, options: PrepareOptions = {}): Promise<PrepareOutput> {
  const { store, runLog } = deps;
  const spec = parseSpec(await store.getJson(input.specUri, z.unknown()), { source: input.specUri });
  if (spec.project !== input.project) {
    throw new PrepareError(
      `${input.specUri} is a spec of project "${spec.project}", but the run was started for project "${input.project}": start it with project "${spec.project}"`,
      { code: 'SPEC_PROJECT_MISMATCH', context: { specProject: spec.project, runProject: input.project } },
    );
  }
  const digest = specDigest(spec);
  await runLog.createRun({
    project: spec.project,
    runId: input.runId,
    specDigest: digest,
    specUri: input.specUri,
    executionArn: input.executionId,
    ...(options.trigger ? { trigger: options.trigger } : {}),
  });
  await runLog.updateRunStatus(spec.project, input.runId, 'running', { stage: 'Prepare' });

  const feedback = spec.datasets.feedback === true ? await writeFeedbackDataset(spec, { store, rewards: deps.rewards }) : undefined;
  const datasets = await checkDatasets(spec, store, {
    runId: input.runId,
    maxProblems: options.maxProblems ?? 50,
    ...(feedback ? { feedbackUri: feedback.uri } : {}),
  });
  const split = effectiveSplit(spec);
  const encoders = await deps.fitEncoders({ spec, datasets, split });
  const featuresDigest = digestOf({
    format: 'agentflow-features/1',
    datasets: datasets.map(({ role, digest: d, format, source }) => ({ role, digest: d, format, ...(source ? { source } : {}) })),
    // Trimming changes the values read from CSV, and `positive` the binary labels in the shards.
    ...(spec.datasets.format === 'csv' ? { csvTrim: trimsCsv(spec) } : {}),
    split,
    tasks: spec.tasks.map((task) => ({
      name: task.name,
      type: task.type,
      label: task.label,
      classes: 'classes' in task ? task.classes : undefined,
      ...(task.type === 'binary' && task.positive !== undefined ? { positive: task.positive } : {}),
    })),
    encoders: encoders.map(({ id, sha256 }) => ({ id, sha256 })),
  });

  const manifest: RunManifest = {
    manifestVersion: 1,
    runId: input.runId,
    project: spec.project,
    specUri: input.specUri,
    specDigest: digest,
    spec,
    datasets,
    split,
    encoders,
    featuresDigest,
  };
  const manifestKey = keys.runManifest(input.runId);
  await store.putJson(manifestKey, manifest);
  await runLog.recordRunEvent(spec.project, input.runId, 'prepare', {
    datasets: datasets.map(({ role, rows, labelledPerTask, source }) => ({ role, rows, labelledPerTask, ...(source ? { source } : {}) })),
    // The fitted quantile boundaries stay in the manifest only: the event names the bins per column.
    encoders: encoders.map(({ id, kind, dimension, summary: { [QUANTILES_SUMMARY_KEY]: _quantiles, ...summary } }) => ({
      id,
      kind,
      dimension,
      summary: clipped(summary) as Record<string, unknown>,
    })),
    featuresDigest,
  });
  return {
    runUri: s3Uri(store.bucket, `runs/${input.runId}`),
    manifestUri: store.uri(manifestKey),
    featuresUri: store.uri(keys.featuresPrefix(featuresDigest)),
  };
}

/**
 * A summary as a run event may hold it: DynamoDB caps an item at 400 KB, and a summary names
 * values from the data (categories, top terms) that may be any length. The manifest in S3 keeps
 * them whole; the event keeps the start of each text and of each list.
 */
function clipped(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > 80 ? `${value.slice(0, 79)}…` : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return '…';
  if (Array.isArray(value)) return value.slice(0, 50).map((item) => clipped(item, depth + 1));
  return Object.fromEntries(
    Object.entries(value)
      .slice(0, 50)
      .map(([key, item]) => [String(clipped(key)), clipped(item, depth + 1)]),
  );
}

/**
 * Validates every dataset the spec names, all of them before failing, so one run finds every
 * problem. The error carries a screenful (per file, task and kind: a count, the first lines, the
 * fix); the full list, one problem a line, goes to `runs/<runId>/problems.txt`.
 */
async function checkDatasets(spec: Spec, store: ArtifactStore, options: { runId: string; maxProblems: number; feedbackUri?: string }): Promise<DatasetEntry[]> {
  const { maxProblems } = options;
  const entries: DatasetEntry[] = [];
  const summary = new ProblemSummary({ tasks: spec.tasks });
  const files: { role: DatasetRole; uri: string | undefined; source?: 'feedback' }[] = ROLES.map((role) => ({ role, uri: spec.datasets[role] }));
  // The feedback rows join the train file's, so the split rule spreads them like any train row.
  if (options.feedbackUri) files.splice(1, 0, { role: 'train', uri: options.feedbackUri, source: 'feedback' });
  for (const { role, uri, source } of files) {
    if (uri === undefined) continue;
    if (!uri.startsWith('s3://')) {
      throw new PrepareError(
        `datasets.${role}: "${uri}" is a local path, but Prepare reads datasets from S3: start the run with \`agentflow run\`, which uploads local datasets, or give an s3:// URI`,
        { code: 'DATASET_NOT_IN_STORE', context: { role, uri } },
      );
    }
    const report = await validateDataset(await store.getStream(uri), spec, {
      file: fileName(uri),
      format: source === 'feedback' ? 'jsonl' : spec.datasets.format,
      ...(source === 'feedback' ? { addsRows: true } : {}),
      maxProblems,
      onProblem: summary.add,
    });
    entries.push({
      role,
      uri,
      format: report.format,
      digest: report.digest,
      sizeBytes: report.sizeBytes,
      rows: report.rows,
      labelledPerTask: report.labelledPerTask,
      classCounts: report.classCounts,
      ...(source ? { source } : {}),
    });
  }
  if (summary.count > 0) {
    const total = summary.count;
    const list = await store.putBytes(keys.runFile(options.runId, PROBLEMS_FILE), Buffer.from(summary.fullText(), 'utf8'), {
      contentType: 'text/plain; charset=utf-8',
    });
    const groups = summary.groups();
    throw new PrepareError(
      `the datasets have ${total.toLocaleString('en-US')} problem${total === 1 ? '' : 's'}; nothing was trained or registered. Fix them and run again:\n${summary.format({ fullListAt: list.uri })}`,
      {
        code: 'DATASETS_INVALID',
        context: {
          problemCount: total,
          problemsUri: list.uri,
          // Only the first examples: the error travels in a Step Functions payload (256 KB at most).
          problems: groups.flatMap((group) => group.examples).slice(0, maxProblems),
        },
      },
    );
  }
  return entries;
}

/**
 * The project's labelled feedback as a train dataset (`datasets.feedback`): each labelled
 * prediction once, in prediction id order, as the record it was served with plus the labels of the
 * tasks its feedback named (the other tasks' label columns are dropped, so they stay masked), and
 * its `predictionId`, which the split rule hashes. Stored under its content's sha256, so the same
 * rows are the same file and new feedback a new one. Undefined when nothing is labelled yet.
 */
export async function writeFeedbackDataset(
  spec: Spec,
  deps: { store: ArtifactStore; rewards: PrepareDependencies['rewards'] },
): Promise<{ uri: string; rows: number } | undefined> {
  if (deps.rewards === undefined) {
    throw new PrepareError(
      `datasets.feedback is true in the spec of ${spec.project}, but Prepare was given no reward log to read feedback from; pass the stage dependencies' rewards`,
      {
        code: 'FEEDBACK_UNAVAILABLE',
        context: { project: spec.project },
      },
    );
  }
  const byId = new Map<string, LabelledFeedbackRow>();
  for (const row of await deps.rewards.labelledFeedbackRows(spec.project)) if (!byId.has(row.predictionId)) byId.set(row.predictionId, row);
  if (byId.size === 0) return undefined;
  const lines = [...byId.values()]
    .sort((a, b) => (a.predictionId < b.predictionId ? -1 : a.predictionId > b.predictionId ? 1 : 0))
    .map((row) => JSON.stringify(feedbackRecord(spec, row)));
  const bytes = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const stored = await deps.store.putBytes(keys.feedbackDataset(spec.project, sha256), bytes, { contentType: 'application/x-ndjson' });
  return { uri: stored.uri, rows: lines.length };
}

/** One labelled prediction as a train row: the served record, the spec's label columns from the feedback's labels, and the prediction id. */
export function feedbackRecord(spec: Pick<Spec, 'tasks'>, row: LabelledFeedbackRow): Record<string, unknown> {
  const record: Record<string, unknown> = { ...row.record };
  for (const task of spec.tasks) {
    delete record[task.label];
    if (row.labels[task.name] !== undefined) record[task.label] = row.labels[task.name];
  }
  record.predictionId = row.predictionId;
  return record;
}

/** The split rule for the train dataset's rows: a role given as its own dataset takes no train rows. */
export function effectiveSplit(spec: Spec): Spec['split'] {
  return {
    ...spec.split,
    validationFraction: spec.datasets.validation === undefined ? spec.split.validationFraction : 0,
    holdoutFraction: spec.datasets.holdout === undefined ? spec.split.holdoutFraction : 0,
  };
}

/** The run file listing every dataset problem, one a line, when Prepare finds any. */
export const PROBLEMS_FILE = 'problems.txt';

function fileName(uri: string): string {
  return uri.slice(uri.lastIndexOf('/') + 1);
}

function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}
