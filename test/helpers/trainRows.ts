import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { encodeRows, type FittedEncoder } from '#lib/domain/encoders/index.ts';
import type { ShardBatch } from '#lib/domain/shards/index.ts';
import { trainTrial, type TrainResult, type TrainTrialOptions } from '#lib/domain/train/index.ts';

/** Records with their labels by task (null: unlabelled), as a dataset's rows. */
export interface LabelledInputs {
  readonly inputs: readonly Record<string, unknown>[];
  readonly labels: readonly Record<string, number | null>[];
}

/** Records as validated rows, with their labels where given. */
export const rowsOf = (inputs: readonly Record<string, unknown>[], labels: readonly Record<string, number | null>[] = []): ValidatedRow[] =>
  inputs.map((input, i) => ({ input, labels: labels[i] ?? {} }));

/** Rows as an encoder fit reads them (re-iterable). */
export const rowSource = (rows: readonly ValidatedRow[]) =>
  async function* () {
    yield* rows;
  };

/** The rows through a fitted encoder as one shard batch, as Embed would write them; a null label is masked. */
export async function encodedBatch(fitted: FittedEncoder, data: LabelledInputs): Promise<ShardBatch> {
  const features = await encodeRows(fitted, rowsOf(data.inputs, data.labels));
  const tasks = [...new Set(data.labels.flatMap((l) => Object.keys(l)))];
  return {
    rows: data.inputs.length,
    dim: fitted.dimension,
    features,
    labels: Object.fromEntries(tasks.map((task) => [task, Float32Array.from(data.labels, (l) => l[task] ?? 0)])),
    masks: Object.fromEntries(tasks.map((task) => [task, Uint8Array.from(data.labels, (l) => (l[task] === null || l[task] === undefined ? 0 : 1))])),
    rowIndex: Int32Array.from(data.inputs, (_, i) => i),
  };
}

/** One trial on the rows through a fitted encoder (its category embeddings passed on), single-threaded, one batch per split. */
export async function trainOnRows(options: {
  spec: TrainTrialOptions['spec'];
  fitted: FittedEncoder;
  lambda: Record<string, number>;
  train: LabelledInputs;
  validation: LabelledInputs;
}): Promise<{ encoder: TrainTrialOptions['encoder']; result: TrainResult }> {
  const { fitted } = options;
  const [trainBatch, validationBatch] = await Promise.all([encodedBatch(fitted, options.train), encodedBatch(fitted, options.validation)]);
  const encoder = { id: 'e0', dimension: fitted.dimension, ...(fitted.categoryEmbeddings ? { categoryEmbeddings: fitted.categoryEmbeddings } : {}) };
  const result = await trainTrial({
    spec: options.spec,
    encoder,
    proposal: { lambda: options.lambda },
    data: {
      train: async function* () {
        yield trainBatch;
      },
      validation: async function* () {
        yield validationBatch;
      },
    },
    options: { intraOpNumThreads: 1 },
  });
  return { encoder, result };
}
