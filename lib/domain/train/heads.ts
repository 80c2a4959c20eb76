import {
  Graph,
  binaryCrossEntropyWithLogits,
  buildTrainingStep,
  huber,
  mse,
  softmaxCrossEntropy,
  type AdamWOptions,
  type BatchInputSpec,
  type ParameterSpec,
  type TrainingStep,
  Value,
} from '#lib/domain/graph/index.ts';
import type { CategoryEmbedding } from '#lib/domain/run/index.ts';
import type { Architecture, ModelSpec } from '#lib/domain/spec/index.ts';
import { deriveSeed, Random } from '#lib/domain/random/index.ts';
import { TrainError } from '#lib/domain/train/errors.ts';

/**
 * The multi-task heads as one parameter list and one forward function. The training step, the
 * evaluation graph and the exported model are all built from `forward`, so what is trained and
 * what is served cannot drift apart.
 */

export type HeadTaskType = 'binary' | 'multiclass' | 'regression';

/** A task as the heads need it; a spec `TaskSpec` fits as it is. */
export interface HeadTaskInput {
  readonly name: string;
  readonly type: HeadTaskType;
  readonly classes?: readonly string[];
  /** Regression only: `mse` (default) or `huber`. */
  readonly loss?: 'mse' | 'huber';
  readonly huberDelta?: number;
}

export interface HeadTask {
  readonly name: string;
  readonly type: HeadTaskType;
  readonly classes?: readonly string[];
  /** Columns of the task's raw output: 1, or the class count. */
  readonly outputs: number;
  readonly loss: 'bce' | 'softmax-ce' | 'mse' | 'huber';
  readonly huberDelta?: number;
  /** The exported output: `<task>.probability`, `<task>.probabilities` or `<task>.value`. */
  readonly outputName: string;
  /** Regression only: how the raw output maps to label units (identity when absent). */
  readonly scale?: TargetScale;
}

export type HeadsModel = Pick<ModelSpec, 'hidden' | 'experts' | 'expertHidden' | 'towerHidden' | 'dropout'>;

export interface HeadsOptions {
  readonly architecture: Architecture;
  readonly model: HeadsModel;
  readonly tasks: readonly HeadTaskInput[];
  /** Length of the feature vectors (the encoder's dimension; for sparse features, the vocabulary size). */
  readonly inputDim: number;
  /**
   * Train on sparse rows (TF-IDF): the first layer is an embedding bag over padded indices and
   * values instead of a MatMul over dense rows. Same parameters, same function: the exported model
   * keeps the dense MatMul behind the text encoder's dense output.
   */
  readonly sparseInput?: boolean;
  /** Rows per training step; sets the sparse first layer's rate (`sparseLayerOptimizer`). Default 256. */
  readonly batchSize?: number;
  /**
   * Dense input only: features that hold a categorical column's level index (the tabular encoder's
   * `categoryEmbeddings`). The first layer reads the other features and, per such column, the row
   * of a learned table `embedding.<column>.weight [levels, dimension]` its index selects.
   */
  readonly categoryEmbeddings?: readonly CategoryEmbedding[];
  /** Seeds the initial weights; each parameter draws from its own stream named after it. */
  readonly seed: number;
  /** Decoupled weight decay of the weight matrices (biases get none). Default the optimizer's. */
  readonly weightDecay?: number;
  /**
   * Per regression task, the train labels' mean and standard deviation. The head learns the
   * standardized target (label − mean) / std, so a task in grams trains as readily as one in
   * [0, 1], and its served value is raw·std + mean — built into the graph, so export is in label units.
   */
  readonly targetScales?: Readonly<Record<string, TargetScale>>;
}

export interface TargetScale {
  readonly mean: number;
  readonly std: number;
}

/** The name of the heads' input, kept so `mergeEncoderAndHeads(…, { featureInput: 'features' })` finds it. */
export const FEATURES_INPUT = 'features';

/**
 * The heads' input: dense rows `[batch, dim]`, or sparse rows as padded `[batch, nnz]` int32 indices
 * and float32 values, or (the training step's) sparse rows cut into pieces: `[pieces, length]`
 * indices and values and the `[batch, pieces]` assignment of pieces to rows (`piecedSparse`).
 */
export type HeadsInput = Value | { readonly indices: Value; readonly values: Value; readonly assignment?: Value };

/** Batch input names of the training step. */
export const batchNames = {
  features: FEATURES_INPUT,
  /** Sparse rows: column indices `[batch, nnz]`, padded with 0. */
  indices: `${FEATURES_INPUT}.indices`,
  /** Sparse rows: values `[batch, nnz]`, padded with 0. */
  values: `${FEATURES_INPUT}.values`,
  /** The training step's sparse rows cut into pieces: `[batch, pieces]`, 1 where a piece (a row of indices and values) belongs to the row. */
  assignment: `${FEATURES_INPUT}.assignment`,
  label: (task: string) => `label.${task}`,
  mask: (task: string) => `mask.${task}`,
  /** The keep mask (0/1 per unit) of a task tower's input dropout, fed each training step. */
  dropout: (task: string) => `dropout.${task}`,
} as const;

export interface Heads {
  readonly architecture: Architecture;
  readonly inputDim: number;
  /** The training step and the default inference graph take sparse rows (see `HeadsOptions.sparseInput`). */
  readonly sparseInput: boolean;
  /** The index features looked up in learned tables (see `HeadsOptions.categoryEmbeddings`); empty when none. */
  readonly categoryEmbeddings: readonly CategoryEmbedding[];
  readonly model: HeadsModel;
  readonly tasks: readonly HeadTask[];
  /** In a fixed order; the seeded initial values live in `init`. */
  readonly parameters: readonly ParameterSpec[];
  /** Width of each task tower's input (the shared representation), where dropout applies. */
  readonly towerInput: number;
  /**
   * Raw task outputs: binary logits `[batch]`, multiclass logits `[batch, C]`, regression values `[batch]`.
   * With `dropoutMasks` (the training step's batch inputs) each tower's input is dropped out; without, as served.
   */
  forward(g: Graph, params: Readonly<Record<string, Value>>, features: HeadsInput, dropoutMasks?: Readonly<Record<string, Value>>): Record<string, Value>;
  /** Masked per-task losses over the raw outputs, in task order. */
  losses(g: Graph, raw: Readonly<Record<string, Value>>, batch: Readonly<Record<string, Value>>): Value[];
  /** Served predictions: sigmoid, softmax or the value itself, keyed by task. */
  predictions(g: Graph, raw: Readonly<Record<string, Value>>): Record<string, Value>;
}

function checkOptions(options: HeadsOptions): HeadTask[] {
  const bad = (message: string, context: Record<string, unknown>): never => {
    throw new TrainError(`heads: ${message}`, { code: 'INVALID_INPUT', context });
  };
  const { inputDim, model, architecture } = options;
  if (!Number.isInteger(inputDim) || inputDim < 1) bad(`inputDim ${inputDim} is not a positive integer; pass the encoder's dimension`, { inputDim });
  if (architecture !== 'shared-bottom' && architecture !== 'mmoe')
    bad(`architecture ${JSON.stringify(architecture)} is not shared-bottom or mmoe`, { architecture });
  const sizes: [string, readonly number[]][] = [
    ['model.hidden', model.hidden],
    ['model.towerHidden', model.towerHidden],
    ['model.experts', [model.experts]],
    ['model.expertHidden', [model.expertHidden]],
  ];
  for (const [field, values] of sizes) {
    if (!values.every((v) => Number.isInteger(v) && v > 0)) bad(`${field} ${JSON.stringify(values)} must hold positive integers`, { field });
  }
  if (model.dropout !== undefined && !(model.dropout >= 0 && model.dropout < 1))
    bad(`model.dropout ${model.dropout} must lie in [0, 1)`, { dropout: model.dropout });
  if (architecture === 'shared-bottom' && model.hidden.length === 0) bad('model.hidden is empty; shared-bottom needs at least one shared layer', {});
  if (options.tasks.length === 0) bad('no tasks; pass at least one', {});
  const features = new Set<number>();
  for (const e of options.categoryEmbeddings ?? []) {
    if (options.sparseInput === true)
      bad(`categoryEmbeddings (column "${e.column}") need dense input; sparse features hold no level indices`, { column: e.column });
    if (!Number.isInteger(e.feature) || e.feature < 0 || e.feature >= inputDim || features.has(e.feature)) {
      bad(
        `category embedding of column "${e.column}" reads feature ${e.feature}, not a distinct feature of 0 … ${inputDim - 1}; pass the encoder's categoryEmbeddings`,
        {
          column: e.column,
          feature: e.feature,
        },
      );
    }
    features.add(e.feature);
    if (!(Number.isInteger(e.levels) && e.levels >= 1 && Number.isInteger(e.dimension) && e.dimension >= 1)) {
      bad(`category embedding of column "${e.column}" has levels ${e.levels} and dimension ${e.dimension}; both must be positive integers`, {
        column: e.column,
      });
    }
  }
  const seen = new Set<string>();
  return options.tasks.map((task) => {
    if (seen.has(task.name)) bad(`task "${task.name}" is listed twice`, { task: task.name });
    seen.add(task.name);
    switch (task.type) {
      case 'binary':
        return { name: task.name, type: task.type, outputs: 1, loss: 'bce', outputName: `${task.name}.probability` };
      case 'multiclass': {
        const classes = task.classes ?? [];
        if (classes.length < 2) bad(`multiclass task "${task.name}" has ${classes.length} classes; give at least 2`, { task: task.name });
        return {
          name: task.name,
          type: task.type,
          classes: [...classes],
          outputs: classes.length,
          loss: 'softmax-ce',
          outputName: `${task.name}.probabilities`,
        };
      }
      case 'regression': {
        const loss = task.loss ?? 'mse';
        const scale = options.targetScales?.[task.name];
        if (scale && !(Number.isFinite(scale.mean) && scale.std > 0 && Number.isFinite(scale.std))) {
          bad(`task "${task.name}": target scale ${JSON.stringify(scale)} needs a finite mean and a std > 0`, { task: task.name });
        }
        const scaled = scale ? { scale: { mean: scale.mean, std: scale.std } } : {};
        if (loss === 'huber') {
          const delta = task.huberDelta ?? 1;
          if (!(delta > 0)) bad(`task "${task.name}": huberDelta ${delta} must be > 0`, { task: task.name });
          return { name: task.name, type: task.type, outputs: 1, loss, huberDelta: delta, outputName: `${task.name}.value`, ...scaled };
        }
        return { name: task.name, type: task.type, outputs: 1, loss, outputName: `${task.name}.value`, ...scaled };
      }
      default:
        return bad(`task "${task.name}": type ${JSON.stringify(task.type)} is not binary, multiclass or regression`, { task: task.name });
    }
  });
}

/** Gaussian weights: He (√(2/fanIn)) before a ReLU, Xavier (√(2/(fanIn+fanOut))) before a softmax, sigmoid or the output. */
function initWeights(seed: number, name: string, fanIn: number, fanOut: number, kind: 'he' | 'xavier', columns = fanOut): Float32Array {
  const random = new Random(deriveSeed(seed, name));
  const std = kind === 'he' ? Math.sqrt(2 / fanIn) : Math.sqrt(2 / (fanIn + fanOut));
  return Float32Array.from({ length: fanIn * columns }, () => random.normal() * std);
}

/*
 * A table row starts near zero, so a level contributes little until its rows have learned, and
 * the many rare levels do not add noise of the size of a standardized feature to the first layer.
 */
const EMBEDDING_INIT_STD = 0.05;

/**
 * The optimizer of the weights over sparse features: momentum SGD rather than Adam. Adam divides
 * each weight's step by its own gradient scale, so the row of a term seen in two documents moves as
 * far as the row of a term that decides the label, and on TF-IDF the heads learn the rare terms of
 * their training rows. An eps far above any √v turns Adam's step into lr·m̂/eps, a step
 * proportional to the gradient, as in the gradient descent that fits a logistic regression; the rate
 * scale gives the layer the rate such a step needs (lr·scale/eps) while the dense layers keep
 * Adam's at lr. The scale grows with the batch: a row moves its own hidden units by about the rate
 * over the batch size per step, so a rate that suits 256 rows throws units of a 64-row batch past
 * where ReLUs die. Chosen in `npm run bench -- train`'s text section against scikit-learn's
 * LogisticRegression.
 */
export function sparseLayerOptimizer(batchSize: number): { eps: number; learningRateScale: number } {
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new TrainError(`batchSize ${batchSize} must be a positive integer; fix training.batchSize`, { code: 'INVALID_INPUT', context: { batchSize } });
  }
  return { eps: 0.1, learningRateScale: (100 * batchSize) / 256 };
}

export function buildHeads(options: HeadsOptions): Heads {
  const tasks = checkOptions(options);
  const { architecture, model, inputDim, seed } = options;
  const decay = options.weightDecay === undefined ? {} : { weightDecay: options.weightDecay };
  const parameters: ParameterSpec[] = [];
  // `overFeatures`: the layer reads the features themselves (sparse ones get `sparseLayerOptimizer`).
  const sparseOptimizer = options.sparseInput === true ? sparseLayerOptimizer(options.batchSize ?? 256) : undefined;
  const dense = (prefix: string, fanIn: number, fanOut: number, kind: 'he' | 'xavier', initFanOut = fanOut, overFeatures = false) => {
    parameters.push({
      name: `${prefix}.weight`,
      shape: [fanIn, fanOut],
      init: initWeights(seed, `${prefix}.weight`, fanIn, initFanOut, kind, fanOut),
      ...decay,
      ...(overFeatures && sparseOptimizer !== undefined ? sparseOptimizer : {}),
    });
    parameters.push({ name: `${prefix}.bias`, shape: [fanOut], init: new Float32Array(fanOut), weightDecay: 0 });
  };

  const categoryEmbeddings = [...(options.categoryEmbeddings ?? [])];
  const plainFeatures = plainFeaturesOf(inputDim, categoryEmbeddings);
  for (const e of categoryEmbeddings) {
    const name = embeddingParameter(e.column);
    const random = new Random(deriveSeed(seed, name));
    parameters.push({
      name,
      shape: [e.levels, e.dimension],
      init: Float32Array.from({ length: e.levels * e.dimension }, () => random.normal() * EMBEDDING_INIT_STD),
      ...decay,
    });
  }
  // What the first layer reads: the plain features, then each embedded column's table row.
  const firstWidth = plainFeatures.length + categoryEmbeddings.reduce((sum, e) => sum + e.dimension, 0);

  let towerInput: number;
  if (architecture === 'shared-bottom') {
    let width = firstWidth;
    model.hidden.forEach((h, i) => {
      dense(`bottom.${i}`, width, h, 'he', h, i === 0);
      width = h;
    });
    towerInput = width;
  } else {
    const { experts, expertHidden } = model;
    // All experts in one matrix: columns e·H … (e+1)·H − 1 are expert e (He init per expert's fan-in).
    dense('experts', firstWidth, experts * expertHidden, 'he', experts * expertHidden, true);
    // All gates in one matrix: columns t·E … (t+1)·E − 1 are task t's gate logits.
    dense('gates', firstWidth, tasks.length * experts, 'xavier', experts, true);
    towerInput = expertHidden;
  }
  for (const task of tasks) {
    let width = towerInput;
    model.towerHidden.forEach((h, i) => {
      dense(`tower.${task.name}.${i}`, width, h, 'he');
      width = h;
    });
    dense(`tower.${task.name}.out`, width, task.outputs, 'xavier');
  }

  const linear = (g: Graph, p: Readonly<Record<string, Value>>, prefix: string, x: Value): Value =>
    g.gemm(x, p[`${prefix}.weight`], p[`${prefix}.bias`], { name: prefix });
  // The layer over the features: Σ_k value_k·W[index_k] + b for sparse rows, x·W + b for dense ones.
  const firstLinear = (g: Graph, p: Readonly<Record<string, Value>>, prefix: string, x: HeadsInput): Value =>
    x instanceof Value
      ? linear(g, p, prefix, x)
      : g.add(
          g.embeddingBag(p[`${prefix}.weight`], x.indices, x.values, { name: `${prefix}.bag`, ...(x.assignment ? { assignment: x.assignment } : {}) }),
          p[`${prefix}.bias`],
          { name: prefix },
        );

  // Dense rows with index features become [plain features, E_c[index_c] …]; others pass as they are.
  const embedded = (g: Graph, p: Readonly<Record<string, Value>>, x: HeadsInput): HeadsInput =>
    categoryEmbeddings.length === 0 || !(x instanceof Value) ? x : embedCategories(g, x, { categoryEmbeddings, parameters: p });

  const rate = model.dropout ?? 0;
  const tower = (g: Graph, p: Readonly<Record<string, Value>>, task: HeadTask, x: Value, masks: Readonly<Record<string, Value>> | undefined): Value => {
    let h = masks && rate > 0 ? g.dropout(x, masks[batchNames.dropout(task.name)], rate) : x;
    model.towerHidden.forEach((_, i) => {
      h = g.relu(linear(g, p, `tower.${task.name}.${i}`, h));
    });
    const out = linear(g, p, `tower.${task.name}.out`, h);
    return task.outputs === 1 ? g.squeeze(out, { axes: [1] }) : out;
  };

  const forward = (g: Graph, p: Readonly<Record<string, Value>>, input: HeadsInput, masks?: Readonly<Record<string, Value>>): Record<string, Value> => {
    const raw: Record<string, Value> = {};
    const features = embedded(g, p, input);
    if (architecture === 'shared-bottom') {
      let h = g.relu(firstLinear(g, p, 'bottom.0', features));
      model.hidden.slice(1).forEach((_, i) => {
        h = g.relu(linear(g, p, `bottom.${i + 1}`, h));
      });
      for (const task of tasks) raw[task.name] = g.scope(`tower.${task.name}`, () => tower(g, p, task, h, masks));
      return raw;
    }
    const { experts, expertHidden } = model;
    const batch = (features instanceof Value ? features : (features.assignment ?? features.values)).shape[0];
    const expertOut = g.reshape(g.relu(firstLinear(g, p, 'experts', features)), [batch, experts, expertHidden]);
    const gates = g.softmax(g.reshape(firstLinear(g, p, 'gates', features), [batch, tasks.length, experts]), { axis: -1 });
    // [batch, T, E] · [batch, E, H] → [batch, T, H]: every task's gate-weighted expert mixture at once.
    const mixtures = g.matmul(gates, expertOut, { name: 'mixtures' });
    const perTask = tasks.length === 1 ? [mixtures] : g.split(mixtures, { axis: 1, sizes: tasks.map(() => 1) });
    tasks.forEach((task, t) => {
      raw[task.name] = g.scope(`tower.${task.name}`, () => tower(g, p, task, g.squeeze(perTask[t], { axes: [1] }), masks));
    });
    return raw;
  };

  const losses = (g: Graph, raw: Readonly<Record<string, Value>>, batch: Readonly<Record<string, Value>>): Value[] =>
    tasks.map((task) =>
      g.scope(`loss.${task.name}`, () => {
        const out = raw[task.name];
        const label = batch[batchNames.label(task.name)];
        const mask = batch[batchNames.mask(task.name)];
        switch (task.loss) {
          case 'bce':
            return binaryCrossEntropyWithLogits(g, out, label, mask);
          case 'softmax-ce': {
            // Labels arrive as float class indices; an unlabelled row becomes −1, which selects no class.
            const labelled = g.greater(g.cast(mask, 'float32'), 0);
            const indices = g.cast(g.where(labelled, label, -1), 'int64');
            return softmaxCrossEntropy(g, out, indices, mask);
          }
          case 'mse':
            return mse(g, out, standardized(g, task, label), mask);
          case 'huber':
            // The spec's delta is in label units; the loss sees standardized values.
            return huber(g, out, standardized(g, task, label), mask, { delta: (task.huberDelta ?? 1) / (task.scale?.std ?? 1) });
        }
      }),
    );

  const predictions = (g: Graph, raw: Readonly<Record<string, Value>>): Record<string, Value> =>
    Object.fromEntries(
      tasks.map((task) => {
        const out = raw[task.name];
        const value =
          task.type === 'binary'
            ? g.sigmoid(out)
            : task.type === 'multiclass'
              ? g.softmax(out, { axis: -1 })
              : task.scale
                ? g.add(g.mul(out, task.scale.std), task.scale.mean)
                : out;
        return [task.name, value];
      }),
    );

  return {
    architecture,
    inputDim,
    sparseInput: options.sparseInput === true,
    categoryEmbeddings,
    model,
    tasks,
    parameters,
    towerInput,
    forward,
    losses,
    predictions,
  };
}

/** The features that are not level indices, in order. */
function plainFeaturesOf(inputDim: number, categoryEmbeddings: readonly CategoryEmbedding[]): number[] {
  const indexFeatures = new Set(categoryEmbeddings.map((e) => e.feature));
  return Array.from({ length: inputDim }, (_, i) => i).filter((i) => !indexFeatures.has(i));
}

/**
 * Dense rows `[batch, dim]` with level-index features as the heads' first layer reads them:
 * `[batch, plain features … , E_c[index_c] …]`, the plain features in order, then each embedded
 * column's table row (`parameters[embeddingParameter(column)]`). Only the tables and the plain
 * features carry gradients: an index selects a row (Gather, whose rule scatter-adds into the table).
 */
export function embedCategories(
  g: Graph,
  x: Value,
  options: { readonly categoryEmbeddings: readonly CategoryEmbedding[]; readonly parameters: Readonly<Record<string, Value>> },
): Value {
  const inputDim = x.shape[1];
  if (typeof inputDim !== 'number') {
    throw new TrainError(`heads: features ${x.name} have no static width; category embeddings need [batch, dim] rows`, { code: 'INVALID_INPUT' });
  }
  const plainFeatures = plainFeaturesOf(inputDim, options.categoryEmbeddings);
  return g.scope('embedding', () => {
    const parts: Value[] = [];
    if (plainFeatures.length > 0) {
      const columns = g.constant(BigInt64Array.from(plainFeatures, BigInt), { dtype: 'int64', name: 'plain_columns' });
      parts.push(g.gather(x, columns, { axis: 1, name: 'plain' }));
    }
    for (const e of options.categoryEmbeddings) {
      const feature = g.gather(x, g.constant(BigInt64Array.of(BigInt(e.feature)), { dtype: 'int64', shape: [], name: 'feature' }), { axis: 1 });
      // Clamped into the table, so an index the encoder cannot produce still reads a row instead of failing the Gather.
      const index = g.cast(g.min(g.max(feature, 0), e.levels - 1), 'int64');
      parts.push(g.gather(options.parameters[embeddingParameter(e.column)], index, { name: 'lookup' }));
    }
    return parts.length === 1 ? parts[0] : g.concat(parts, { axis: 1, name: 'first_input' });
  });
}

/** The learned table of an embedded categorical column. */
export function embeddingParameter(column: string): string {
  return `embedding.${column}.weight`;
}

function standardized(g: Graph, task: HeadTask, label: Value): Value {
  return task.scale ? g.div(g.sub(label, task.scale.mean), task.scale.std) : label;
}

/** Batch inputs of the training step: features, and per task a float label and a uint8 mask. */
export function batchSpec(heads: Heads): Record<string, BatchInputSpec> {
  const spec: Record<string, BatchInputSpec> = heads.sparseInput
    ? {
        [batchNames.indices]: { dtype: 'int32', shape: ['pieces', 'length'] },
        [batchNames.values]: { dtype: 'float32', shape: ['pieces', 'length'] },
        [batchNames.assignment]: { dtype: 'float32', shape: ['batch', 'pieces'] },
      }
    : { [batchNames.features]: { dtype: 'float32', shape: ['batch', heads.inputDim] } };
  for (const task of heads.tasks) {
    spec[batchNames.label(task.name)] = { dtype: 'float32', shape: ['batch'] };
    spec[batchNames.mask(task.name)] = { dtype: 'uint8', shape: ['batch'] };
    if ((heads.model.dropout ?? 0) > 0) spec[batchNames.dropout(task.name)] = { dtype: 'float32', shape: ['batch', heads.towerInput] };
  }
  return spec;
}

export interface HeadsTrainingStepOptions {
  readonly optimizer?: Partial<AdamWOptions>;
  readonly taskWeighting?: 'lambda' | 'uncertainty';
  readonly clipGradientNorm?: number;
}

/** The one-`session.run` training step for the heads (forward, masked losses, gradients, AdamW). */
export function buildHeadsTrainingStep(heads: Heads, options: HeadsTrainingStepOptions = {}): TrainingStep {
  return buildTrainingStep({
    name: `heads-${heads.architecture}-step`,
    parameters: heads.parameters,
    batch: batchSpec(heads),
    tasks: heads.tasks.map((t) => t.name),
    forward: (g, params, batch) => ({ losses: heads.losses(g, heads.forward(g, params, headsInputOf(heads, batch), batch), batch) }),
    ...(options.optimizer === undefined ? {} : { optimizer: options.optimizer }),
    ...(options.taskWeighting === undefined ? {} : { taskWeighting: options.taskWeighting }),
    ...(options.clipGradientNorm === undefined ? {} : { clipGradientNorm: options.clipGradientNorm }),
  });
}

/** The heads' input among a graph's batch values: the sparse pair or the dense features. */
function headsInputOf(heads: Heads, batch: Readonly<Record<string, Value>>): HeadsInput {
  return heads.sparseInput
    ? { indices: batch[batchNames.indices], values: batch[batchNames.values], assignment: batch[batchNames.assignment] }
    : batch[batchNames.features];
}

/**
 * The inference forward graph with every parameter as a graph input named after it, next to
 * `features [batch, dim]` (or, with `input: 'sparse'`, `features.indices` and `features.values`
 * `[batch, nnz]`; with `input: 'pieces'`, the training step's sparse input, rows cut into pieces);
 * outputs are the tasks' `outputName`s. Training evaluates with it (fed the live parameters) and
 * export bakes the trained weights into the same bytes. The input defaults to the heads' padded
 * sparse or dense input; export asks for `dense`, what the encoder in front of it produces.
 */
export function buildInferenceGraph(
  heads: Heads,
  options: { metadata?: Record<string, string>; name?: string; input?: 'dense' | 'sparse' | 'pieces' } = {},
): Uint8Array {
  const g = new Graph({ name: options.name ?? `heads-${heads.architecture}` });
  const input = options.input ?? (heads.sparseInput ? 'sparse' : 'dense');
  const features: HeadsInput =
    input === 'dense'
      ? g.input(FEATURES_INPUT, 'float32', ['batch', heads.inputDim])
      : input === 'sparse'
        ? { indices: g.input(batchNames.indices, 'int32', ['batch', 'nnz']), values: g.input(batchNames.values, 'float32', ['batch', 'nnz']) }
        : {
            indices: g.input(batchNames.indices, 'int32', ['pieces', 'length']),
            values: g.input(batchNames.values, 'float32', ['pieces', 'length']),
            assignment: g.input(batchNames.assignment, 'float32', ['batch', 'pieces']),
          };
  const params: Record<string, Value> = {};
  for (const p of heads.parameters) params[p.name] = g.input(p.name, 'float32', p.shape);
  const predictions = heads.predictions(g, heads.forward(g, params, features));
  for (const task of heads.tasks) g.output(predictions[task.name], task.outputName);
  return g.toModel({ name: options.name ?? `heads-${heads.architecture}`, ...(options.metadata ? { metadata: options.metadata } : {}) });
}

/** Multiply-accumulate FLOPs (2 per MAC) of one forward pass per row, for benchmarks. */
export function forwardFlopsPerRow(heads: Heads): number {
  let flops = 0;
  const tables = new Set(heads.categoryEmbeddings.map((e) => embeddingParameter(e.column)));
  for (const p of heads.parameters) {
    // A table is looked up, one row per column, not multiplied.
    if (p.shape.length === 2 && !tables.has(p.name)) flops += 2 * p.shape[0] * p.shape[1];
  }
  if (heads.architecture === 'mmoe') flops += 2 * heads.tasks.length * heads.model.experts * heads.model.expertHidden;
  return flops;
}
