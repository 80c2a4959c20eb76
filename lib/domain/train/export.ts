import * as ort from 'onnxruntime-node';

import { bakeInitializers, modelMetadata } from '#lib/domain/graph/index.ts';
import type { Spec } from '#lib/domain/spec/index.ts';
import { TrainError } from '#lib/domain/train/errors.ts';
import { batchNames, buildHeads, buildInferenceGraph, FEATURES_INPUT, type Heads } from '#lib/domain/train/heads.ts';
import { evaluateSplit, type ExecutionProviders, type TaskMetrics, type TrialWeights } from '#lib/domain/train/trainer.ts';
import { denseFeatures, paddedSparse, type ShardBatch, type SparseRow } from '#lib/domain/shards/index.ts';

/** Metadata keys of an exported heads model (ONNX `metadata_props`). */
export const HEADS_METADATA_KEYS = {
  kind: 'agentflow.kind',
  architecture: 'agentflow.architecture',
  // Not `agentflow.encoder`: that key holds the encoder's descriptor once the heads are merged behind it.
  encoder: 'agentflow.encoder_id',
  inputDim: 'agentflow.input_dim',
  tasks: 'agentflow.tasks',
  metrics: 'agentflow.metrics',
  lambda: 'agentflow.lambda',
  digests: 'agentflow.digests',
  version: 'agentflow.version',
} as const;

/** What an exported file says about its tasks, as JSON under `agentflow.tasks`. */
export interface ExportedTask {
  name: string;
  type: 'binary' | 'multiclass' | 'regression';
  classes?: string[];
  output: string;
}

export interface HeadsExportMetadata {
  /** Validation (or holdout) metrics per task. */
  readonly metrics?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly lambda?: Readonly<Record<string, number>>;
  /** Content digests the model depends on (spec, features, encoder, weights…). */
  readonly digests?: Readonly<Record<string, string>>;
  readonly version?: string | number;
}

/** Rebuilds the heads a set of weights was trained with and checks every shape. */
export function headsForWeights(spec: Pick<Spec, 'model' | 'tasks' | 'training'>, weights: TrialWeights, options: { sparseInput?: boolean } = {}): Heads {
  const heads = buildHeads({
    sparseInput: options.sparseInput === true,
    architecture: weights.architecture,
    // A trial whose hyperparameters reshaped the layers stored the shape it trained.
    model: weights.model ?? spec.model,
    tasks: spec.tasks,
    inputDim: weights.inputDim,
    seed: spec.training.seed,
    ...(weights.targetScales ? { targetScales: weights.targetScales } : {}),
    ...(weights.categoryEmbeddings ? { categoryEmbeddings: weights.categoryEmbeddings } : {}),
  });
  for (const p of heads.parameters) {
    const values = weights.tensors[p.name];
    const shape = weights.shapes[p.name];
    if (values === undefined) {
      throw new TrainError(
        `weights have no parameter "${p.name}" for ${weights.architecture} heads with this spec's model and tasks; export the trial trained with this spec`,
        {
          code: 'WEIGHTS',
          context: { parameter: p.name },
        },
      );
    }
    if (shape === undefined || shape.length !== p.shape.length || shape.some((d, i) => d !== p.shape[i]) || values.length !== p.init.length) {
      throw new TrainError(
        `parameter "${p.name}" has shape [${shape?.join(', ') ?? '?'}] (${values.length} values) but the spec's heads need [${p.shape.join(', ')}]; the spec's model section changed since the trial`,
        {
          code: 'WEIGHTS',
          context: { parameter: p.name, shape, expected: p.shape },
        },
      );
    }
  }
  return heads;
}

/**
 * The inference heads as one ONNX file: input `features [batch, dim]`, outputs per task
 * (`<task>.probability [batch]`, `<task>.probabilities [batch, C]`, `<task>.value [batch]`), the
 * trained weights baked in as initializers, and metadata for the registry and the merged model.
 * It is the graph the trainer evaluated with, so training and serving run the same forward pass.
 */
export function exportHeads(options: {
  spec: Pick<Spec, 'model' | 'tasks' | 'training'>;
  encoder: { id: string; dimension: number };
  weights: TrialWeights;
  metadata?: HeadsExportMetadata;
}): Uint8Array {
  const { spec, encoder, weights } = options;
  if (encoder.dimension !== weights.inputDim) {
    throw new TrainError(
      `encoder "${encoder.id}" has dimension ${encoder.dimension} but the weights take ${weights.inputDim}; export with the encoder the trial trained on`,
      {
        code: 'WEIGHTS',
        context: { encoder: encoder.id },
      },
    );
  }
  const heads = headsForWeights(spec, weights);
  const metadata = options.metadata ?? {};
  const tasks: ExportedTask[] = heads.tasks.map((t) => ({
    name: t.name,
    type: t.type,
    ...(t.classes ? { classes: [...t.classes] } : {}),
    output: t.outputName,
  }));
  const props: Record<string, string> = {
    [HEADS_METADATA_KEYS.kind]: 'heads',
    [HEADS_METADATA_KEYS.architecture]: heads.architecture,
    [HEADS_METADATA_KEYS.encoder]: encoder.id,
    [HEADS_METADATA_KEYS.inputDim]: String(heads.inputDim),
    [HEADS_METADATA_KEYS.tasks]: JSON.stringify(tasks),
    ...(metadata.metrics ? { [HEADS_METADATA_KEYS.metrics]: JSON.stringify(metadata.metrics) } : {}),
    ...(metadata.lambda ? { [HEADS_METADATA_KEYS.lambda]: JSON.stringify(metadata.lambda) } : {}),
    ...(metadata.digests ? { [HEADS_METADATA_KEYS.digests]: JSON.stringify(metadata.digests) } : {}),
    ...(metadata.version === undefined ? {} : { [HEADS_METADATA_KEYS.version]: String(metadata.version) }),
  };
  // Dense input: the merged model feeds the heads the encoder's dense output, whatever the trial trained on.
  const graph = buildInferenceGraph(heads, { metadata: props, input: 'dense' });
  return bakeInitializers(graph, Object.fromEntries(heads.parameters.map((p) => [p.name, weights.tensors[p.name]])));
}

/** The tasks an exported heads file declares. */
export function exportedTasks(model: Uint8Array): ExportedTask[] {
  const text = modelMetadata(model)[HEADS_METADATA_KEYS.tasks];
  if (text === undefined)
    throw new TrainError(`the model has no "${HEADS_METADATA_KEYS.tasks}" metadata; it was not written by exportHeads`, { code: 'WEIGHTS' });
  return JSON.parse(text) as ExportedTask[];
}

/** Rows to predict: `rows × dim` row-major features, or sparse rows (then `features` is ignored). */
export interface FeatureRows {
  readonly features: Float32Array;
  readonly rows: number;
  readonly sparse?: readonly SparseRow[];
}

export type Predictions = Record<string, Float32Array>;

/**
 * The training-time forward pass: the trainer's evaluation graph (parameters as inputs) fed the
 * given weights. Outputs keyed by output name (`<task>.probability`, …).
 */
export async function trainingForward(options: {
  spec: Pick<Spec, 'model' | 'tasks' | 'training'>;
  weights: TrialWeights;
  batch: FeatureRows;
  executionProviders?: ExecutionProviders;
}): Promise<Predictions> {
  const { batch } = options;
  const heads = headsForWeights(options.spec, options.weights, { sparseInput: batch.sparse !== undefined });
  const session = await ort.InferenceSession.create(buildInferenceGraph(heads), { executionProviders: options.executionProviders ?? ['cpu'] });
  try {
    const feeds: Record<string, ort.Tensor> = {};
    if (batch.sparse) {
      const { indices, values, nnz } = paddedSparse(batch.sparse);
      feeds[batchNames.indices] = new ort.Tensor('int32', indices, [batch.rows, nnz]);
      feeds[batchNames.values] = new ort.Tensor('float32', values, [batch.rows, nnz]);
    } else {
      feeds[FEATURES_INPUT] = featureTensor(batch, heads.inputDim);
    }
    for (const p of heads.parameters) feeds[p.name] = new ort.Tensor('float32', options.weights.tensors[p.name], p.shape);
    return copyOutputs(await session.run(feeds));
  } finally {
    await session.release();
  }
}

/** Scores trained weights on a stream of shard batches with the trainer's own evaluation (metrics per task, `labelStd`/`labelMad` included). */
export async function evaluateWeights(options: {
  spec: Pick<Spec, 'model' | 'tasks' | 'training'>;
  weights: TrialWeights;
  batches: AsyncIterable<ShardBatch>;
}): Promise<TaskMetrics> {
  const { layout, batches } = await peekLayout(options.batches);
  const heads = headsForWeights(options.spec, options.weights, { sparseInput: layout === 'sparse' });
  const session = await ort.InferenceSession.create(buildInferenceGraph(heads));
  try {
    const parameters = Object.fromEntries(heads.parameters.map((p) => [p.name, new ort.Tensor('float32', options.weights.tensors[p.name], p.shape)]));
    return await evaluateSplit({ heads, session, parameters, batches });
  } finally {
    await session.release();
  }
}

/**
 * The layout of a stream of shard batches from its first batch, and the same stream with that
 * batch put back, for consumers that must build their graph before reading on.
 */
async function peekLayout(source: AsyncIterable<ShardBatch>): Promise<{ layout: 'dense' | 'sparse'; batches: AsyncIterable<ShardBatch> }> {
  const iterator = source[Symbol.asyncIterator]();
  const first = await iterator.next();
  async function* batches(): AsyncGenerator<ShardBatch> {
    if (first.done) return;
    yield first.value;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return { layout: !first.done && first.value.sparse ? 'sparse' : 'dense', batches: batches() };
}

/** Runs an exported model (dense features in) in a fresh session; sparse rows are scattered into dense ones for it. */
export async function predictExported(model: Uint8Array, batch: FeatureRows, options: { executionProviders?: ExecutionProviders } = {}): Promise<Predictions> {
  const session = await ort.InferenceSession.create(model, { executionProviders: options.executionProviders ?? ['cpu'] });
  try {
    const input = session.inputMetadata.find((m) => m.name === FEATURES_INPUT);
    const dim = batch.sparse && input?.isTensor ? Number(input.shape[1]) : batch.features.length / batch.rows;
    const features = batch.sparse ? denseFeatures({ rows: batch.rows, dim, features: batch.features, sparse: batch.sparse }) : batch.features;
    return copyOutputs(await session.run({ [FEATURES_INPUT]: featureTensor({ rows: batch.rows, features }, dim) }));
  } finally {
    await session.release();
  }
}

export interface ParityReport {
  readonly rows: number;
  readonly maxAbsDiff: number;
  readonly perOutput: Record<string, number>;
}

/** Max difference (see `parityDifference`) allowed before a file is refused. */
export const PARITY_TOLERANCE = 1e-5;

/**
 * The largest |got − want| / max(1, |want|) over two outputs. Absolute below 1, relative above:
 * a regression value in grams (~4000) carries float32 rounding of ~5e-4 however it is computed,
 * so an absolute 1e-5 would refuse every correct file, while probabilities stay held to 1e-5.
 * A NaN on either side counts as an infinite difference.
 */
export function parityDifference(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    worst = d <= worst ? worst : Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

/**
 * Runs the exported model in a fresh ONNX Runtime session on `batch` and compares every output
 * with `expected` (the training-time forward pass on the same rows). Refuses the file with
 * `TrainError` `PARITY` when an output is missing, has another size, or differs by more than
 * `tolerance` anywhere.
 */
export async function checkParity(model: Uint8Array, expected: Predictions, options: { batch: FeatureRows; tolerance?: number }): Promise<ParityReport> {
  const tolerance = options.tolerance ?? PARITY_TOLERANCE;
  const actual = await predictExported(model, options.batch);
  const perOutput: Record<string, number> = {};
  let maxAbsDiff = 0;
  for (const [name, want] of Object.entries(expected)) {
    const got = actual[name];
    if (got === undefined || got.length !== want.length) {
      throw new TrainError(
        `parity: the exported model ${got === undefined ? 'has no output' : `gives ${got.length} values for`} "${name}" (training gives ${want.length}); refusing the file`,
        {
          code: 'PARITY',
          context: { output: name },
        },
      );
    }
    const diff = parityDifference(got, want);
    perOutput[name] = diff;
    maxAbsDiff = Math.max(maxAbsDiff, diff);
  }
  if (!(maxAbsDiff <= tolerance)) {
    const worst = Object.entries(perOutput).sort((a, b) => b[1] - a[1])[0];
    throw new TrainError(
      `parity: the exported model differs from the training-time forward pass by ${maxAbsDiff} (output "${worst[0]}") on ${options.batch.rows} rows, over the tolerance ${tolerance}; refusing the file`,
      { code: 'PARITY', context: { maxAbsDiff, perOutput, tolerance } },
    );
  }
  return { rows: options.batch.rows, maxAbsDiff, perOutput };
}

function featureTensor(batch: FeatureRows, dim: number): ort.Tensor {
  if (!Number.isInteger(dim) || batch.features.length !== batch.rows * dim) {
    throw new TrainError(`features hold ${batch.features.length} values, not ${batch.rows} rows × ${dim}; pass rows × dim row-major values`, {
      code: 'INVALID_INPUT',
      context: { rows: batch.rows, dim },
    });
  }
  return new ort.Tensor('float32', batch.features, [batch.rows, dim]);
}

function copyOutputs(outputs: ort.InferenceSession.OnnxValueMapType): Predictions {
  return Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, Float32Array.from((tensor as ort.Tensor).data as Float32Array)]));
}
