import * as ort from 'onnxruntime-node';

import { objectiveTasks, type CategoryEmbedding } from '#lib/domain/run/index.ts';
import { TrainingSession, UNCERTAINTY_PARAMETER, type TrainingSessionOptions } from '#lib/domain/graph/index.ts';
import { evaluateTask, labelSpread, MetricsError } from '#lib/domain/metrics/index.ts';
import { batchesOf, paddedSparse, piecedSparse, shuffleBuffer, type ShardBatch } from '#lib/domain/shards/index.ts';
import type { Architecture, Spec } from '#lib/domain/spec/index.ts';
import { deriveSeed, mulberry32 } from '#lib/domain/random/index.ts';
import { rewardOf } from '#lib/domain/tune/index.ts';
import { TrainError } from '#lib/domain/train/errors.ts';
import {
  batchNames,
  buildHeads,
  buildHeadsTrainingStep,
  buildInferenceGraph,
  type Heads,
  type HeadsModel,
  type HeadTask,
  type TargetScale,
} from '#lib/domain/train/heads.ts';
import { dwaWeights, learningRateAt } from '#lib/domain/train/schedule.ts';
import { headsModelOf, specWithHyperparameters, type TrialHyperparameters } from '#lib/domain/train/hyperparameters.ts';

export type ExecutionProviders = NonNullable<TrainingSessionOptions['executionProviders']>;

/** Trained weights with what is needed to rebuild the graph they belong to. */
export interface TrialWeights {
  readonly architecture: Architecture;
  readonly inputDim: number;
  /** Parameter values by name (row-major float32), including `taskLogVariance` under uncertainty weighting. */
  readonly tensors: Readonly<Record<string, Float32Array>>;
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  /** Regression tasks' train-label mean and std the heads were built with (see `HeadsOptions.targetScales`). */
  readonly targetScales?: Readonly<Record<string, TargetScale>>;
  /** The model section the heads were built with, when the trial's hyperparameters changed the spec's (width, depth, dropout). */
  readonly model?: HeadsModel;
  /** The encoder's index features the heads looked up in learned tables (see `HeadsOptions.categoryEmbeddings`). */
  readonly categoryEmbeddings?: readonly CategoryEmbedding[];
}

/** Validation metrics per task: `evaluateTask`'s, plus `labelStd` (rmse reference) and `labelMad` (mae reference) for regression. */
export type TaskMetrics = Record<string, Record<string, number>>;

export interface EpochRecord {
  readonly epoch: number;
  /** Optimizer steps in this epoch. */
  readonly steps: number;
  /** Mean training loss per task over the epoch's labelled rows. */
  readonly trainLoss: Record<string, number>;
  /** The weight each task's loss had in the total during this epoch (see `TrainWeighting`). */
  readonly taskWeights: Record<string, number>;
  /** Learning rate of the epoch's last step. */
  readonly learningRate: number;
  readonly validation: TaskMetrics;
  /** The agent's reward over `validation`: what early stopping maximises. */
  readonly objective: number;
}

export interface TrainProgress {
  readonly kind: 'step' | 'epoch';
  readonly epoch: number;
  /** Global optimizer step (1-based). */
  readonly step: number;
  /** Per-task losses: of the last step (`step`), or the epoch means (`epoch`). */
  readonly losses: Record<string, number>;
  /** Validation metrics, on `epoch` events. */
  readonly metrics?: TaskMetrics;
  readonly objective?: number;
}

export interface TrainTrialOptions {
  readonly spec: Spec;
  /** `categoryEmbeddings`: the tabular encoder's index features (its manifest entry's), embedded by the heads. */
  readonly encoder: { readonly id: string; readonly dimension: number; readonly categoryEmbeddings?: readonly CategoryEmbedding[] };
  /**
   * λ per task (every spec task), an optional learning rate over `spec.training.learningRate`, and
   * optional hyperparameters over the spec's settings (see `specWithHyperparameters`).
   */
  readonly proposal: { readonly lambda: Readonly<Record<string, number>>; readonly learningRate?: number; readonly hyperparameters?: TrialHyperparameters };
  /** Default the spec's first candidate architecture. */
  readonly architecture?: Architecture;
  /** Each call re-opens the split as a stream; the train split is read once per epoch. */
  readonly data: {
    readonly train: () => AsyncIterable<ShardBatch>;
    readonly validation: () => AsyncIterable<ShardBatch>;
  };
  readonly options?: {
    /** Default `['cpu']`; nothing falls back from CUDA to CPU. */
    readonly executionProviders?: ExecutionProviders;
    readonly intraOpNumThreads?: number;
    readonly onProgress?: (progress: TrainProgress) => void;
    /** Caps `spec.training.epochs` (screening trials run fewer). */
    readonly maxEpochs?: number;
    /** Rows held by the streaming shuffle. Default 16384. */
    readonly shuffleBufferRows?: number;
    /** A `step` progress event every this many steps. Default 100. */
    readonly progressEverySteps?: number;
    /** Rows per validation forward pass. Default 4096 (256 for sparse features). */
    readonly evaluationBatchRows?: number;
  };
}

export interface TrainResult {
  /** The best epoch's weights. */
  readonly weights: TrialWeights;
  /** The best epoch's validation metrics. */
  readonly metrics: TaskMetrics;
  readonly objective: number;
  readonly history: readonly EpochRecord[];
  readonly epochsRun: number;
  readonly stoppedEarly: boolean;
  /** 0-based epoch whose weights are returned. */
  readonly bestEpoch: number;
  readonly steps: number;
  readonly architecture: Architecture;
}

/**
 * How the proposal's λ meets each `training.weighting` mode (the tuner's λ always applies):
 * - `fixed`: total = Σ λ_k·L_k.
 * - `uncertainty` (Kendall et al. 2018): total = Σ λ_k·(½e^(−s_k)·L_k + ½s_k) with a learned
 *   log-variance s_k per task (`taskLogVariance`, starting at 0, no weight decay); a task's
 *   effective weight is λ_k·½e^(−s_k), reported per epoch.
 * - `dwa` (Liu et al. 2019): total = Σ λ_k·w_k(t)·L_k with w from `dwaWeights` (K·softmax of the
 *   last two epochs' loss ratios over T = 2, 1 for the first two epochs).
 */
export type TrainWeighting = Spec['training']['weighting'];

const DEFAULT_SHUFFLE_ROWS = 16384;
const DEFAULT_EVALUATION_ROWS = 4096;
/**
 * Sparse rows evaluate in smaller batches: the embedding bag gathers a [slots, width] block, the
 * batch's terms and their padding, so 4096 TF-IDF rows of ~900 terms would hold GBs at width 256.
 */
const SPARSE_EVALUATION_ROWS = 256;

/**
 * Trains one trial's heads in ONNX Runtime: streamed, shuffled epochs, one `session.run` per step,
 * warm-up and decay, the spec's task weighting, validation after every epoch with the agent's own
 * objective, early stopping that keeps the best epoch, and a divergence guard. Seeded: the same
 * inputs give the same weights.
 */
export async function trainTrial(options: TrainTrialOptions): Promise<TrainResult> {
  const { encoder, proposal, data } = options;
  const spec = specWithHyperparameters(options.spec, proposal.hyperparameters);
  const reshaped = spec.model !== options.spec.model;
  const settings = options.options ?? {};
  const training = spec.training;
  const architecture = options.architecture ?? spec.model.architectures[0];
  const targetScales = await regressionTargetScales(spec.tasks, data.train);
  const sparseInput = (await featureLayoutOf(data.train())) === 'sparse';
  const heads = buildHeads({
    architecture,
    model: spec.model,
    tasks: spec.tasks,
    inputDim: encoder.dimension,
    seed: training.seed,
    targetScales,
    sparseInput,
    batchSize: training.batchSize,
    ...(encoder.categoryEmbeddings?.length ? { categoryEmbeddings: encoder.categoryEmbeddings } : {}),
  });
  const taskNames = heads.tasks.map((t) => t.name);
  const lambda = proposalLambda(taskNames, proposal.lambda);
  const baseRate = proposal.learningRate ?? training.learningRate;
  if (!(baseRate > 0) || !Number.isFinite(baseRate)) {
    throw new TrainError(`learning rate ${baseRate} must be a finite number > 0; fix proposal.learningRate or training.learningRate`, {
      code: 'INVALID_INPUT',
      context: { learningRate: baseRate },
    });
  }
  const epochs = Math.min(training.epochs, settings.maxEpochs ?? Infinity);
  if (!(epochs >= 1))
    throw new TrainError(`maxEpochs ${settings.maxEpochs} leaves no epoch to train; pass at least 1`, {
      code: 'INVALID_INPUT',
      context: { maxEpochs: settings.maxEpochs },
    });
  const weighting = training.weighting;
  const providers = settings.executionProviders ?? ['cpu'];
  const sessionOptions = {
    executionProviders: providers,
    ...(settings.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: settings.intraOpNumThreads }),
  };

  const step = buildHeadsTrainingStep(heads, {
    optimizer: { weightDecay: training.weightDecay },
    taskWeighting: weighting === 'uncertainty' ? 'uncertainty' : 'lambda',
  });
  const session = await onDevice(providers, () => TrainingSession.create(step, { ...sessionOptions, nanGuard: false }));
  let evaluator: ort.InferenceSession | undefined;
  try {
    // Sparse rows go in as pieces, as in the training step (see batchFeeds).
    const evaluationGraph = buildInferenceGraph(heads, sparseInput ? { input: 'pieces' } : {});
    evaluator = await onDevice(providers, () => ort.InferenceSession.create(evaluationGraph, { ...sessionOptions, graphOptimizationLevel: 'all' }));
    const evaluate = (parameters: Readonly<Record<string, ort.Tensor>>) =>
      evaluateSplit({
        heads,
        session: evaluator!,
        parameters,
        batches: batchesOf(data.validation(), settings.evaluationBatchRows ?? (sparseInput ? SPARSE_EVALUATION_ROWS : DEFAULT_EVALUATION_ROWS)),
      });

    const history: EpochRecord[] = [];
    const lossHistory: number[][] = [];
    let best: { epoch: number; objective: number; metrics: TaskMetrics; tensors: Record<string, Float32Array> } | undefined;
    // The epoch that last beat the objective by at least `earlyStoppingMinDelta`: patience counts from it.
    let lastGain: { epoch: number; objective: number } | undefined;
    let stepsPerEpoch: number | undefined;
    let stoppedEarly = false;
    const everySteps = settings.progressEverySteps ?? 100;
    const stepLambda = new Float64Array(taskNames.length);
    // Its own stream, so turning dropout on leaves the shuffle and the initial weights as they were.
    const dropoutRandom = mulberry32(deriveSeed(training.seed, 'dropout'));

    for (let epoch = 0; epoch < epochs; epoch++) {
      const dynamic = weighting === 'dwa' ? dwaWeights(lossHistory, { taskCount: taskNames.length }) : taskNames.map(() => 1);
      for (let k = 0; k < taskNames.length; k++) stepLambda[k] = lambda[k] * dynamic[k];

      const lossSums = new Float64Array(taskNames.length);
      const labelled = new Float64Array(taskNames.length);
      let epochSteps = 0;
      let learningRate = 0;
      const shuffled = shuffleBuffer(data.train(), {
        bufferRows: settings.shuffleBufferRows ?? DEFAULT_SHUFFLE_ROWS,
        rng: mulberry32(deriveSeed(training.seed, `shuffle.${epoch}`)),
      });
      for await (const batch of batchesOf(shuffled, training.batchSize)) {
        const feeds = batchFeeds(heads, batch, dropoutRandom);
        const progress = (epoch + (stepsPerEpoch === undefined ? 0 : epochSteps / stepsPerEpoch)) / epochs;
        learningRate = learningRateAt({ baseRate, warmupSteps: training.warmupSteps, schedule: training.schedule }, { step: session.steps, progress });
        const result = await session.step(feeds, { lambda: stepLambda, learningRate });
        epochSteps += 1;
        guardDivergence({ losses: result.losses, total: result.loss, taskNames, epoch, step: session.steps, limit: training.maxDivergenceLoss });
        for (let k = 0; k < taskNames.length; k++) {
          const count = countLabelled(batch.masks[taskNames[k]]);
          lossSums[k] += result.losses[k] * count;
          labelled[k] += count;
        }
        if (settings.onProgress && session.steps % everySteps === 0) {
          settings.onProgress({ kind: 'step', epoch, step: session.steps, losses: byTask(taskNames, result.losses) });
        }
      }
      if (epochSteps === 0) {
        throw new TrainError(`epoch ${epoch + 1}: the train split yielded no rows; check the shards under the features prefix`, {
          code: 'NO_LABELS',
          context: { epoch: epoch + 1 },
        });
      }
      taskNames.forEach((task, k) => {
        if (labelled[k] === 0) {
          throw new TrainError(`task "${task}" has no labelled rows in the train split; label some rows or remove the task from the spec`, {
            code: 'NO_LABELS',
            context: { task, split: 'train' },
          });
        }
      });
      stepsPerEpoch ??= epochSteps;
      const meanLoss = Array.from(lossSums, (sum, k) => sum / labelled[k]);
      lossHistory.push(meanLoss);

      const metrics = await evaluate(session.parameterTensors());
      const objective = objectiveOf(spec, metrics);
      const taskWeights = effectiveWeights({ weighting, stepLambda, parameters: session.parameterTensors(), taskCount: taskNames.length });
      history.push({
        epoch,
        steps: epochSteps,
        trainLoss: byTask(taskNames, meanLoss),
        taskWeights: byTask(taskNames, taskWeights),
        learningRate,
        validation: metrics,
        objective,
      });
      settings.onProgress?.({ kind: 'epoch', epoch, step: session.steps, losses: byTask(taskNames, meanLoss), metrics, objective });

      if (best === undefined || objective > best.objective) best = { epoch, objective, metrics, tensors: session.parameters() };
      if (lastGain === undefined || objective >= lastGain.objective + training.earlyStoppingMinDelta) {
        lastGain = { epoch, objective };
      } else if (training.earlyStoppingPatience > 0 && epoch - lastGain.epoch >= training.earlyStoppingPatience) {
        stoppedEarly = epoch + 1 < epochs;
        if (stoppedEarly) break;
      }
    }
    const kept = best!;
    return {
      weights: {
        architecture,
        inputDim: heads.inputDim,
        tensors: kept.tensors,
        shapes: Object.fromEntries(step.parameters.map((p) => [p.name, [...p.shape]])),
        ...(Object.keys(targetScales).length > 0 ? { targetScales } : {}),
        ...(reshaped ? { model: headsModelOf(spec.model) } : {}),
        ...(heads.categoryEmbeddings.length > 0 ? { categoryEmbeddings: heads.categoryEmbeddings } : {}),
      },
      metrics: kept.metrics,
      objective: kept.objective,
      history,
      epochsRun: history.length,
      stoppedEarly,
      bestEpoch: kept.epoch,
      steps: session.steps,
      architecture,
    };
  } finally {
    await evaluator?.release();
    await session.release();
  }
}

function proposalLambda(tasks: readonly string[], lambda: Readonly<Record<string, number>>): number[] {
  for (const name of Object.keys(lambda)) {
    if (!tasks.includes(name)) {
      throw new TrainError(`proposal λ names task "${name}", which is not in the spec (tasks: ${tasks.join(', ')}); propose weights for the spec's tasks`, {
        code: 'INVALID_INPUT',
        context: { task: name },
      });
    }
  }
  return tasks.map((task) => {
    const value = lambda[task];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new TrainError(`proposal λ for task "${task}" is ${String(value)}; give every task a finite weight ≥ 0`, {
        code: 'INVALID_INPUT',
        context: { task, value },
      });
    }
    return value;
  });
}

function byTask(tasks: readonly string[], values: ArrayLike<number>): Record<string, number> {
  return Object.fromEntries(tasks.map((t, k) => [t, values[k]]));
}

function countLabelled(mask: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) count += 1;
  return count;
}

/**
 * Whether a split's shards hold dense or sparse features, from its first batch (the stream is
 * closed after it). An empty split reads as dense; it fails later with its own message.
 */
export async function featureLayoutOf(batches: AsyncIterable<ShardBatch>): Promise<'dense' | 'sparse'> {
  const iterator = batches[Symbol.asyncIterator]();
  try {
    const first = await iterator.next();
    return !first.done && first.value.sparse !== undefined ? 'sparse' : 'dense';
  } finally {
    await iterator.return?.();
  }
}

type Feed = { data: Float32Array | Uint8Array | Int32Array; dims: number[] };

/**
 * A step's (or an evaluation's) feature feeds: dense shard columns as they are (no copy), sparse
 * rows padded to the batch's longest row (the inference graph's input), or with `layout: 'pieces'`
 * cut into pieces (the training step's input, `batchSpec`).
 */
export function featureFeeds(heads: Heads, batch: ShardBatch, options: { layout?: 'padded' | 'pieces' } = {}): Record<string, Feed> {
  if (batch.dim !== heads.inputDim) {
    throw new TrainError(
      `shard features have dimension ${batch.dim} but the heads take ${heads.inputDim}; train on the shards of encoder with that dimension`,
      { code: 'INVALID_INPUT', context: { dim: batch.dim } },
    );
  }
  if (heads.sparseInput !== (batch.sparse !== undefined)) {
    const [has, takes] = heads.sparseInput ? ['dense', 'sparse'] : ['sparse', 'dense'];
    throw new TrainError(
      `the shard holds ${has} features but the heads were built for ${takes} ones; build the heads with sparseInput: ${!heads.sparseInput}`,
      {
        code: 'INVALID_INPUT',
        context: { sparseInput: heads.sparseInput },
      },
    );
  }
  if (!batch.sparse) return { [batchNames.features]: { data: batch.features, dims: [batch.rows, batch.dim] } };
  if (options.layout === 'pieces') {
    const { indices, values, assignment, pieces, pieceLength } = piecedSparse(batch.sparse);
    return {
      [batchNames.indices]: { data: indices, dims: [pieces, pieceLength] },
      [batchNames.values]: { data: values, dims: [pieces, pieceLength] },
      [batchNames.assignment]: { data: assignment, dims: [batch.rows, pieces] },
    };
  }
  const { indices, values, nnz } = paddedSparse(batch.sparse);
  return { [batchNames.indices]: { data: indices, dims: [batch.rows, nnz] }, [batchNames.values]: { data: values, dims: [batch.rows, nnz] } };
}

/**
 * A training step's feeds; `dropoutRandom` (uniform in [0, 1)) draws the keep masks when the heads
 * use dropout. Sparse rows go in as pieces (`piecedSparse`): the step's embedding bag then pads
 * each piece, not every row to the batch's longest.
 */
export function batchFeeds(heads: Heads, batch: ShardBatch, dropoutRandom?: () => number): Record<string, Feed> {
  const feeds: Record<string, Feed> = featureFeeds(heads, batch, { layout: 'pieces' });
  for (const task of heads.tasks) {
    const labels = batch.labels[task.name];
    const masks = batch.masks[task.name];
    if (labels === undefined || masks === undefined) {
      throw new TrainError(
        `the shard has no label column for task "${task.name}" (it has ${Object.keys(batch.labels).join(', ') || 'none'}); re-run Embed for this spec`,
        { code: 'INVALID_INPUT', context: { task: task.name } },
      );
    }
    feeds[batchNames.label(task.name)] = { data: labels, dims: [batch.rows] };
    feeds[batchNames.mask(task.name)] = { data: masks, dims: [batch.rows] };
    const rate = heads.model.dropout ?? 0;
    if (dropoutRandom && rate > 0) {
      const keep = new Float32Array(batch.rows * heads.towerInput);
      for (let i = 0; i < keep.length; i++) keep[i] = dropoutRandom() < rate ? 0 : 1;
      feeds[batchNames.dropout(task.name)] = { data: keep, dims: [batch.rows, heads.towerInput] };
    }
  }
  return feeds;
}

function guardDivergence(at: {
  losses: Float32Array;
  total: number;
  taskNames: readonly string[];
  epoch: number;
  step: number;
  limit: number | undefined;
}): void {
  const { losses, taskNames, epoch, step, limit } = at;
  for (let k = 0; k < taskNames.length; k++) {
    const loss = losses[k];
    const bad = !Number.isFinite(loss) ? 'is not finite' : limit !== undefined && loss > limit ? `exceeds training.maxDivergenceLoss ${limit}` : undefined;
    if (bad !== undefined) {
      throw new TrainError(
        `task "${taskNames[k]}": loss ${loss} ${bad} at epoch ${epoch + 1}, step ${step}; the trial diverged — lower the learning rate or λ for this task`,
        { code: 'DIVERGED', context: { task: taskNames[k], epoch: epoch + 1, step, loss } },
      );
    }
  }
  if (!Number.isFinite(at.total)) {
    throw new TrainError(
      `the weighted total loss ${at.total} is not finite at epoch ${epoch + 1}, step ${step}; the trial diverged — lower the learning rate`,
      {
        code: 'DIVERGED',
        context: { task: 'total', epoch: epoch + 1, step, loss: at.total },
      },
    );
  }
}

function effectiveWeights(at: {
  weighting: TrainWeighting;
  stepLambda: Float64Array;
  parameters: Readonly<Record<string, ort.Tensor>>;
  taskCount: number;
}): number[] {
  const weights = Array.from(at.stepLambda);
  if (at.weighting !== 'uncertainty') return weights;
  const s = at.parameters[UNCERTAINTY_PARAMETER].data as Float32Array;
  return weights.map((l, k) => l * 0.5 * Math.exp(-s[k]));
}

/** The agent's reward for these metrics (the objective early stopping maximises). */
export function objectiveOf(spec: Spec, metrics: TaskMetrics): number {
  return rewardOf(metrics, objectiveTasks(spec, metrics)).reward;
}

/** Runs the inference graph (parameters as inputs; padded sparse rows or pieces, as the graph takes them) over a split and scores every task. */
export async function evaluateSplit(at: {
  heads: Heads;
  session: ort.InferenceSession;
  parameters: Readonly<Record<string, ort.Tensor>>;
  batches: AsyncIterable<ShardBatch>;
}): Promise<TaskMetrics> {
  const { heads, session } = at;
  const parameterFeeds: Record<string, ort.Tensor> = {};
  for (const p of heads.parameters) parameterFeeds[p.name] = at.parameters[p.name];
  const collected = new Map<string, { predictions: Float32Array[]; labels: Float32Array[]; masks: Uint8Array[] }>(
    heads.tasks.map((t) => [t.name, { predictions: [], labels: [], masks: [] }]),
  );
  const layout = session.inputNames.includes(batchNames.assignment) ? 'pieces' : 'padded';
  for await (const batch of at.batches) {
    const features = Object.fromEntries(
      Object.entries(featureFeeds(heads, batch, { layout })).map(([name, feed]) => [name, new ort.Tensor(feed.data, feed.dims)]),
    );
    const outputs = await session.run({ ...parameterFeeds, ...features });
    for (const task of heads.tasks) {
      const entry = collected.get(task.name)!;
      entry.predictions.push(Float32Array.from(outputs[task.outputName].data as Float32Array));
      entry.labels.push(Float32Array.from(batch.labels[task.name]));
      entry.masks.push(Uint8Array.from(batch.masks[task.name]));
    }
  }
  const metrics: TaskMetrics = {};
  for (const task of heads.tasks) {
    const entry = collected.get(task.name)!;
    const labels = concat(entry.labels, Float32Array);
    const mask = concat(entry.masks, Uint8Array);
    if (countLabelled(mask) === 0) {
      throw new TrainError(
        `task "${task.name}" has no labelled rows in the validation split; the trial cannot be scored — label some validation rows or adjust split.validationFraction`,
        {
          code: 'NO_LABELS',
          context: { task: task.name, split: 'validation' },
        },
      );
    }
    metrics[task.name] = scoreTask(task, concat(entry.predictions, Float32Array), labels, mask);
  }
  return metrics;
}

function scoreTask(task: HeadTask, predictions: Float32Array, labels: Float32Array, mask: Uint8Array): Record<string, number> {
  let scored: Partial<Record<string, number>>;
  try {
    scored = evaluateTask({ type: task.type, ...(task.type === 'multiclass' ? { numClasses: task.outputs } : {}), predictions, labels, mask });
  } catch (cause) {
    if (!(cause instanceof MetricsError)) throw cause;
    throw new TrainError(`task "${task.name}": validation metrics could not be computed (${cause.message})`, {
      code: 'VALIDATION',
      context: { task: task.name },
      cause,
    });
  }
  const result: Record<string, number> = {};
  for (const [name, value] of Object.entries(scored)) if (value !== undefined) result[name] = value;
  if (task.type === 'regression') Object.assign(result, labelSpread(labels, mask));
  return result;
}

function concat<T extends Float32Array | Uint8Array>(parts: readonly T[], Kind: { new (length: number): T }): T {
  const out = new Kind(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part as never, offset);
    offset += part.length;
  }
  return out;
}

function wantsCuda(providers: ExecutionProviders): boolean {
  return providers.some((p) => (typeof p === 'string' ? p : p.name) === 'cuda');
}

/**
 * Creates a session on the chosen providers. A CUDA request that ONNX Runtime cannot honour fails
 * here, by name, rather than quietly training on the CPU for hours.
 */
export async function onDevice<T>(providers: ExecutionProviders, create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (cause) {
    if (!wantsCuda(providers)) throw cause;
    const names = providers.map((p) => (typeof p === 'string' ? p : p.name)).join(', ');
    const detail = cause instanceof Error ? cause.message : String(cause);
    const hint =
      'the CUDA execution provider did not load: onnxruntime-node needs its CUDA provider libraries (libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so, which the job image installs with `node node_modules/onnxruntime-node/script/install --onnxruntime-node-install=cuda12`) and the CUDA 12 runtime, cuBLAS and cuDNN 9 on LD_LIBRARY_PATH with a visible GPU; fix the image, or unset AGENTFLOW_DEVICE to train on the CPU';
    throw new TrainError(`ONNX Runtime could not create a session on execution providers [${names}] (${detail}); ${hint}`, {
      code: 'DEVICE',
      context: { providers: names },
      cause,
    });
  }
}

/**
 * One streamed pass over the train split for each regression task's labelled mean and standard
 * deviation (Welford's update, so large label values lose no precision). A constant target gets
 * std 1 rather than a division by zero.
 */
export async function regressionTargetScales(
  tasks: readonly { name: string; type: string }[],
  train: () => AsyncIterable<ShardBatch>,
): Promise<Record<string, TargetScale>> {
  const regression = tasks.filter((task) => task.type === 'regression').map((task) => task.name);
  if (regression.length === 0) return {};
  const stats = new Map(regression.map((name) => [name, { count: 0, mean: 0, m2: 0 }]));
  for await (const batch of train()) {
    for (const name of regression) {
      const s = stats.get(name)!;
      const labels = batch.labels[name];
      const mask = batch.masks[name];
      for (let i = 0; i < batch.rows; i++) {
        if (!mask[i]) continue;
        s.count += 1;
        const delta = labels[i] - s.mean;
        s.mean += delta / s.count;
        s.m2 += delta * (labels[i] - s.mean);
      }
    }
  }
  return Object.fromEntries(
    regression.map((name) => {
      const s = stats.get(name)!;
      const std = s.count > 1 ? Math.sqrt(s.m2 / s.count) : 0;
      return [name, { mean: s.mean, std: std > 1e-12 ? std : 1 }];
    }),
  );
}
