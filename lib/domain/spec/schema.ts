import * as z from 'zod';
import { renderValue } from '#lib/domain/spec/render.ts';

/*
 * The run spec as the user writes it. Every object is strict, so a typo such as `epoch` is
 * reported instead of silently falling back to a default. Defaults that depend on other fields
 * (a task's label, `tuning.lambdaScale`, `datasets.format`) are filled in by `normalizeSpec`.
 */

export const TASK_TYPES = ['binary', 'multiclass', 'regression'] as const;
export const METRICS_BY_TASK_TYPE = {
  binary: ['auc', 'accuracy', 'logLoss'],
  multiclass: ['accuracy', 'macroF1', 'logLoss'],
  regression: ['rmse', 'mae'],
} as const;
export const DEFAULT_METRIC = { binary: 'auc', multiclass: 'macroF1', regression: 'rmse' } as const;
export const ARCHITECTURES = ['shared-bottom', 'mmoe'] as const;
export const DATASET_FORMATS = ['jsonl', 'csv'] as const;
/**
 * How the tabular encoder turns a numeric column into features: `standard` (x − mean) / std,
 * `quantile` its rank in [0, 1] through fitted boundaries, `ple` piecewise-linear encoding (one
 * feature per quantile bin). `auto` lets the agent screen the three.
 */
export const NUMERIC_ENCODINGS = ['standard', 'quantile', 'ple'] as const;
/**
 * How the tabular encoder turns a categorical column into features: `onehot` (its `maxCategories`
 * most frequent values, one 0/1 feature each) or `embedding` (one index feature that the heads
 * look up in a learned table, so a column of thousands of levels loses none to a cap).
 */
export const CATEGORICAL_ENCODINGS = ['onehot', 'embedding'] as const;

const PROJECT_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;
/* Task names become ONNX output names, metric keys and DynamoDB attribute names. */
const TASK_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const S3_URI = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/\S.*$/;

/** A local path or an `s3://bucket/key` URI. */
const location = (what: string) =>
  z
    .string()
    .min(1, { error: () => `is empty; give a local path or an s3://bucket/key URI for the ${what}` })
    .refine((value) => !value.startsWith('s3:') || S3_URI.test(value), {
      error: (issue) => `${renderValue(issue.input)} is not an S3 URI of the form s3://bucket/key`,
    });

const positiveInt = () => z.int().min(1);
const nonNegativeInt = () => z.int().min(0);
const nonNegative = () => z.number().min(0);
const positive = () => z.number().gt(0);
const columnName = () => z.string().min(1, { error: () => 'is empty; give a column name' });

export const textBaseModelSchema = z
  .strictObject({
    kind: z.literal('text'),
    field: columnName().default('text'),
    ngramRange: z.tuple([z.int().min(1).max(5), z.int().min(1).max(5)]).default([1, 2]),
    vocabularySize: positiveInt().default(20000),
    minDocumentFrequency: positiveInt().default(2),
    lowercase: z.boolean().default(true),
  })
  .superRefine((model, ctx) => {
    const [low, high] = model.ngramRange;
    if (low > high) {
      ctx.addIssue({
        code: 'custom',
        path: ['ngramRange'],
        input: model.ngramRange,
        message: `[${low}, ${high}] starts above where it ends; write [smallest, largest], e.g. [1, 2]`,
      });
    }
  });

export const tabularBaseModelSchema = z
  .strictObject({
    kind: z.literal('tabular'),
    numeric: z.array(columnName()).default([]),
    categorical: z.array(columnName()).default([]),
    maxCategories: positiveInt().default(50),
    /*
     * Left unset rather than defaulted, so specs and manifests written before these existed read
     * the same: the encoder takes unset as `standard` (numeric) and `auto` (categorical), no
     * overrides, DEFAULT_BINS and the embedding defaults.
     */
    /** Every numeric column's encoding unless `columnEncodings` names another; default `standard`. */
    numericEncoding: z.enum([...NUMERIC_ENCODINGS, 'auto']).optional(),
    columnEncodings: z.record(z.string(), z.enum(NUMERIC_ENCODINGS)).optional(),
    /** Quantile bins fitted per column for `quantile` and `ple` (fewer when values repeat); default 16. */
    bins: z.int().min(2).max(256).optional(),
    /**
     * Every categorical column's encoding unless `categoricalEncodings` names another; default
     * `auto`: an embedding for a column with more distinct train values than `maxCategories`,
     * one-hot for the others (so a spec whose columns fit the cap encodes as it always has).
     */
    categoricalEncoding: z.enum([...CATEGORICAL_ENCODINGS, 'auto']).optional(),
    categoricalEncodings: z.record(z.string(), z.enum(CATEGORICAL_ENCODINGS)).optional(),
    /** Levels an embedded column keeps, most frequent first, of those seen at least twice in train; default 10000. */
    maxEmbeddingLevels: z.int().min(1).max(1_000_000).optional(),
    /** Width of every embedded column's table; default per column min(16, round(1.6·levels^0.56)). */
    embeddingDimension: z.int().min(1).max(1024).optional(),
  })
  .superRefine((model, ctx) => {
    // Per-column overrides may name only columns of their own kind.
    for (const [field, list, columns] of [
      ['columnEncodings', 'numeric', model.numeric],
      ['categoricalEncodings', 'categorical', model.categorical],
    ] as const) {
      for (const column of Object.keys(model[field] ?? {})) {
        if (!columns.includes(column)) {
          ctx.addIssue({
            code: 'custom',
            path: [field, column],
            input: column,
            message: `"${column}" is not one of the ${list} columns (${columns.join(', ') || 'none'}); list it in ${list} or remove it from ${field}`,
          });
        }
      }
    }
    if (model.numeric.length + model.categorical.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        input: model,
        message: 'a tabular base model needs at least one column; list them in numeric and/or categorical',
      });
    }
    const seen = new Set<string>();
    for (const [list, columns] of [
      ['numeric', model.numeric],
      ['categorical', model.categorical],
    ] as const) {
      columns.forEach((column, index) => {
        if (seen.has(column)) {
          ctx.addIssue({
            code: 'custom',
            path: [list, index],
            input: column,
            message: `column "${column}" is listed twice; a column is either numeric or categorical, once`,
          });
        }
        seen.add(column);
      });
    }
  });

export const featuresBaseModelSchema = z.strictObject({
  kind: z.literal('features'),
  field: columnName().default('features'),
  dimension: positiveInt(),
});

export const onnxBaseModelSchema = z.strictObject({
  kind: z.literal('onnx'),
  model: location('ONNX encoder'),
  tokenizer: location('tokenizer.json'),
  textField: columnName().default('text'),
  pooling: z.enum(['mean', 'cls']).default('mean'),
  maxLength: z.int().min(1).max(8192).default(128),
  normalize: z.boolean().default(true),
});

export const baseModelSchema = z.discriminatedUnion('kind', [textBaseModelSchema, tabularBaseModelSchema, featuresBaseModelSchema, onnxBaseModelSchema]);

const multiclassOnly = () =>
  z
    .custom<never>((value) => value === undefined, {
      error: () => 'only multiclass tasks take classes; remove it or set type to "multiclass"',
    })
    .optional();

const taskCommon = {
  name: z.string().regex(TASK_NAME, {
    error: (issue) => `${renderValue(issue.input)} is not a usable task name; start with a letter, then letters, digits, _ or - (at most 64)`,
  }),
  label: columnName().optional(),
  weight: nonNegative().default(1),
  floor: z.number().optional(),
};

const labelValue = () =>
  z.string().refine((value) => value.trim() !== '', { error: () => 'is empty; give the label value that means positive, e.g. "churned"' });

export const binaryTaskSchema = z.strictObject({
  ...taskCommon,
  type: z.literal('binary'),
  metric: z.enum(METRICS_BY_TASK_TYPE.binary).default(DEFAULT_METRIC.binary),
  /**
   * The label value(s) that mean 1, compared as given (case matters) after trimming spaces; every
   * other present value is 0. Without it labels must be 0/1/true/false.
   */
  positive: z
    .union([labelValue(), z.array(labelValue()).min(1, { error: () => 'is an empty list; give at least one label value, e.g. ["churned"]' })])
    .optional(),
  classes: multiclassOnly(),
});

export const multiclassTaskSchema = z.strictObject({
  ...taskCommon,
  type: z.literal('multiclass'),
  classes: z
    .array(z.string().min(1, { error: () => 'is empty; class names must be non-empty strings' }))
    .min(2, { error: (issue) => `${renderValue(issue.input)} has fewer than 2 classes; a multiclass task needs at least 2` })
    .superRefine((classes, ctx) => {
      classes.forEach((name, index) => {
        if (classes.indexOf(name) !== index) {
          ctx.addIssue({ code: 'custom', path: [index], input: name, message: `"${name}" is listed twice; class names must be unique` });
        }
      });
    }),
  metric: z.enum(METRICS_BY_TASK_TYPE.multiclass).default(DEFAULT_METRIC.multiclass),
});

export const regressionTaskSchema = z.strictObject({
  ...taskCommon,
  type: z.literal('regression'),
  metric: z.enum(METRICS_BY_TASK_TYPE.regression).default(DEFAULT_METRIC.regression),
  loss: z.enum(['mse', 'huber']).default('mse'),
  huberDelta: positive().default(1),
  classes: multiclassOnly(),
});

export const taskSchema = z.discriminatedUnion('type', [binaryTaskSchema, multiclassTaskSchema, regressionTaskSchema]);

export const datasetsSchema = z.strictObject({
  train: location('training data'),
  /** Many public CSVs put a space after each comma (` churned`); trimming it is the default. */
  csv: z.strictObject({ trim: z.boolean().default(true) }).prefault({}),
  validation: location('validation data').optional(),
  holdout: location('holdout data').optional(),
  format: z.enum(DATASET_FORMATS).optional(),
  /**
   * Labelled feedback as training data: serving keeps each prediction's raw inputs (bounded, for
   * as long as its id is accepted), `/feedback` may carry labels, and Prepare adds the labelled
   * predictions to the train rows. Optional rather than defaulted: a default would change the
   * digest of every existing spec.
   */
  feedback: z.boolean({ error: (issue) => `is ${renderValue(issue.input)}; use true to train on labelled feedback, or leave it out` }).optional(),
});

const fraction = () => z.number().min(0).lt(1);

export const splitSchema = z
  .strictObject({
    validationFraction: fraction().default(0.15),
    holdoutFraction: fraction().default(0.15),
    seed: z.int().default(1),
  })
  .superRefine((split, ctx) => {
    if (split.validationFraction + split.holdoutFraction >= 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['holdoutFraction'],
        input: split.holdoutFraction,
        message: `validationFraction ${split.validationFraction} + holdoutFraction ${split.holdoutFraction} leaves no training rows; keep their sum below 1`,
      });
    }
  });

const architectureSchema = z.enum(ARCHITECTURES);

export const modelSchema = z
  .strictObject({
    architecture: z.union([architectureSchema, z.array(architectureSchema).min(1)]).default('shared-bottom'),
    /** Absent: `MODEL_DEFAULTS` (narrower over text features; see `normalizeSpec`). */
    hidden: z.array(positiveInt()).optional(),
    experts: positiveInt().default(4),
    expertHidden: positiveInt().optional(),
    /** Absent: `MODEL_DEFAULTS`. */
    towerHidden: z.array(positiveInt()).optional(),
    /** Dropout on each task tower's input while training (the served model keeps every unit); absent: none. */
    dropout: z.number().min(0).lt(1).optional(),
  })
  .superRefine((model, ctx) => {
    const architectures = typeof model.architecture === 'string' ? [model.architecture] : model.architecture;
    // Refused here rather than in every trial: the heads would fail to build once per trial, after Embed.
    if (architectures.includes('shared-bottom') && model.hidden?.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['hidden'],
        input: model.hidden,
        message: 'is empty, but shared-bottom needs at least one shared layer; give one, e.g. "hidden": [64]',
      });
    }
  });

export const trainingSchema = z.strictObject({
  epochs: positiveInt().default(20),
  batchSize: positiveInt().default(256),
  /** Absent: `MODEL_DEFAULTS` (higher over text features; see `normalizeSpec`). */
  learningRate: positive().optional(),
  weightDecay: nonNegative().default(1e-4),
  warmupSteps: nonNegativeInt().default(50),
  schedule: z.enum(['cosine', 'constant']).default('cosine'),
  /** Epochs without validation improvement before stopping; 0 turns early stopping off. */
  earlyStoppingPatience: nonNegativeInt().default(3),
  /**
   * An epoch whose validation objective beats the best by less than this does not restart the
   * patience count (its weights are still kept when they are the best): a plateau that creeps
   * upward in the fourth decimal ends the trial instead of running out its epochs.
   */
  earlyStoppingMinDelta: nonNegative().default(1e-4),
  weighting: z.enum(['fixed', 'uncertainty', 'dwa']).default('fixed'),
  seed: z.int().default(7),
  /** A trial whose loss exceeds this (or turns NaN) fails cleanly instead of wasting GPU time. */
  maxDivergenceLoss: positive().optional(),
});

const increasingInts = (min: number) =>
  z
    .array(z.int().min(min))
    .min(1)
    .refine((values) => values.every((v, i) => i === 0 || v > values[i - 1]), {
      message: 'list the choices once each, in increasing order, e.g. [64, 128, 256]',
    });

/**
 * One hyperparameter the tuner searches beside λ (and the lr, `tuneLearningRate`): weight decay on
 * a log scale, head dropout on a linear one, hidden width and depth and early-stopping patience as ordered choices. Each has a
 * default range, so `{ name: width }` alone searches it.
 */
export const searchDimensionSchema = z.discriminatedUnion('name', [
  z.strictObject({ name: z.literal('weightDecay'), scale: z.literal('log').default('log'), min: positive().default(1e-6), max: positive().default(1e-2) }),
  z.strictObject({ name: z.literal('width'), choices: increasingInts(1).default([64, 128, 256, 512]) }),
  z.strictObject({ name: z.literal('depth'), choices: increasingInts(1).default([1, 2, 3]) }),
  z.strictObject({ name: z.literal('patience'), choices: increasingInts(0).default([1, 2, 3, 5, 8]) }),
  z.strictObject({
    name: z.literal('dropout'),
    scale: z.literal('linear').default('linear'),
    min: z.number().min(0).lt(1).default(0),
    max: z.number().min(0).lt(1).default(0.5),
  }),
]);

export const tuningSchema = z
  .strictObject({
    strategy: z.enum(['pgpe', 'random', 'uniform']).default('pgpe'),
    generations: positiveInt().default(3),
    population: z.int().min(2).default(6),
    maxConcurrency: positiveInt().default(2),
    /** Also tune the learning rate per trial, within a decade either side of training.learningRate (the policy starts there). */
    tuneLearningRate: z.boolean().default(false),
    /** More hyperparameters to search per trial (see `searchDimensionSchema`); default none, λ (and the lr) only. */
    search: z.array(searchDimensionSchema).default([]),
    /** K in λ = K·softmax(θ); defaults to the number of tasks so uniform λ is all ones. */
    lambdaScale: positive().optional(),
    screening: z
      .strictObject({
        enabled: z.union([z.literal('auto'), z.boolean()]).default('auto'),
        trialEpochs: positiveInt().default(2),
      })
      .prefault({}),
  })
  .superRefine((tuning, ctx) => {
    tuning.search.forEach((dimension, i) => {
      if (tuning.search.findIndex((other) => other.name === dimension.name) !== i) {
        ctx.addIssue({
          code: 'custom',
          path: ['search', i, 'name'],
          input: dimension.name,
          message: `${dimension.name} is listed twice; list each dimension once`,
        });
      }
      if ('min' in dimension && dimension.min > dimension.max) {
        ctx.addIssue({
          code: 'custom',
          path: ['search', i, 'min'],
          input: dimension.min,
          message: `min ${dimension.min} is above max ${dimension.max}; give min ≤ max`,
        });
      }
    });
    if (tuning.strategy === 'pgpe' && tuning.population % 2 !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['population'],
        input: tuning.population,
        message: `${tuning.population} is odd; PGPE samples in symmetric pairs, so use an even population such as ${tuning.population + 1}`,
      });
    }
  });

export const deploySchema = z.strictObject({
  policy: z.enum(['if-better', 'always', 'never', 'canary']).default('if-better'),
  margin: nonNegative().default(0.005),
  canaryShare: z.number().gt(0).lt(1).default(0.1),
  quantize: z.boolean().default(false),
  maxQuantizationLoss: nonNegative().default(0.01),
});

const RATE = /^(1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))$/;

export const scheduleSchema = z
  .strictObject({
    /** EventBridge cron fields: minutes hours day-of-month month day-of-week year. */
    cron: z
      .string()
      .refine((value) => value.trim().split(/\s+/).length === 6, {
        error: (issue) =>
          `${renderValue(issue.input)} is not an EventBridge cron expression; give 6 fields (minutes hours day-of-month month day-of-week year), e.g. "0 3 ? * MON *"`,
      })
      .optional(),
    rate: z
      .string()
      .regex(RATE, {
        error: (issue) => `${renderValue(issue.input)} is not a rate; write "<n> <minutes|hours|days>" such as "7 days" or "1 day"`,
      })
      .optional(),
    enabled: z.boolean().default(true),
  })
  .superRefine((schedule, ctx) => {
    if ((schedule.cron === undefined) === (schedule.rate === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        input: schedule,
        message:
          schedule.cron === undefined ? 'has neither cron nor rate; give exactly one, e.g. "rate": "7 days"' : 'has both cron and rate; keep exactly one',
      });
    }
  });

/**
 * How served requests treat inputs the model has no value for: a missing numeric or categorical
 * field, or a category it never saw (or did not keep). `impute` (the default) encodes them as
 * training did (the mean, no category) and counts them in the served metrics (`ImputedInputs`);
 * `reject` answers 400 naming the record and field.
 */
export const servingSchema = z.strictObject({
  unknownInputs: z
    .enum(['impute', 'reject'], {
      error: (issue) =>
        `${renderValue(issue.input)} is not a policy; use "impute" (the default: encode as training did and count them) or "reject" (answer 400)`,
    })
    .default('impute'),
  /** A binary task whose true label is the 0/1 reward itself (with `datasets.feedback`): feedback labels that task without a `label` field. */
  rewardIsLabel: z
    .string({ error: (issue) => `is ${renderValue(issue.input)}; name the binary task whose label the 0/1 reward is` })
    .min(1)
    .optional(),
});

export const monitorSchema = z.strictObject({
  windowHours: positive().default(24),
  minRewardDrop: nonNegative().default(0.05),
  psiThreshold: positive().default(0.2),
});

export const specInputSchema = z.strictObject({
  project: z.string().regex(PROJECT_NAME, {
    error: (issue) => `${renderValue(issue.input)} is not a valid project name; use 1-40 lowercase letters, digits or dashes, starting with a letter or digit`,
  }),
  description: z.string().optional(),
  baseModel: z.union([z.array(baseModelSchema).min(1), baseModelSchema]),
  datasets: datasetsSchema,
  split: splitSchema.prefault({}),
  tasks: z.array(taskSchema).min(1, { error: () => 'is empty; list at least one task' }),
  model: modelSchema.prefault({}),
  training: trainingSchema.prefault({}),
  tuning: tuningSchema.prefault({}),
  deploy: deploySchema.prefault({}),
  schedule: scheduleSchema.optional(),
  monitor: monitorSchema.prefault({}),
  // Optional rather than defaulted: a default would change the digest of every existing spec.
  serving: servingSchema.optional(),
});

export type SpecInput = z.input<typeof specInputSchema>;
type ParsedSpecInput = z.output<typeof specInputSchema>;

export type TextBaseModelSpec = z.output<typeof textBaseModelSchema>;
export type TabularBaseModelSpec = z.output<typeof tabularBaseModelSchema>;
export type FeaturesBaseModelSpec = z.output<typeof featuresBaseModelSchema>;
export type OnnxBaseModelSpec = z.output<typeof onnxBaseModelSchema>;
export type BaseModelSpec = z.output<typeof baseModelSchema>;
export type BaseModelKind = BaseModelSpec['kind'];

type Resolved<T> = Omit<T, 'label' | 'classes'> & { label: string };
/** `positive` becomes a list of trimmed values. */
export type BinaryTaskSpec = Omit<Resolved<z.output<typeof binaryTaskSchema>>, 'positive'> & { positive?: string[] };
export type MulticlassTaskSpec = Resolved<z.output<typeof multiclassTaskSchema>> & { classes: string[] };
export type RegressionTaskSpec = Resolved<z.output<typeof regressionTaskSchema>>;
export type TaskSpec = BinaryTaskSpec | MulticlassTaskSpec | RegressionTaskSpec;
export type TaskType = TaskSpec['type'];
export type Metric = TaskSpec['metric'];

export type DatasetFormat = (typeof DATASET_FORMATS)[number];
export type NumericEncoding = (typeof NUMERIC_ENCODINGS)[number];
export type CategoricalEncoding = (typeof CATEGORICAL_ENCODINGS)[number];
export type DatasetsSpec = Omit<z.output<typeof datasetsSchema>, 'format'> & { format: DatasetFormat };
export type SplitSpec = z.output<typeof splitSchema>;
export type Architecture = (typeof ARCHITECTURES)[number];
/** `architectures` holds the candidates the agent screens; a single choice is a list of one. */
export type ModelSpec = Omit<z.output<typeof modelSchema>, 'architecture' | 'hidden' | 'expertHidden' | 'towerHidden'> & {
  architectures: Architecture[];
  hidden: number[];
  expertHidden: number;
  towerHidden: number[];
};
export type TrainingSpec = Omit<z.output<typeof trainingSchema>, 'learningRate'> & { learningRate: number };
export type TuningSpec = Omit<z.output<typeof tuningSchema>, 'lambdaScale'> & { lambdaScale: number };
export type DeploySpec = z.output<typeof deploySchema>;
export type ScheduleSpec = z.output<typeof scheduleSchema>;
export type MonitorSpec = z.output<typeof monitorSchema>;
export type ServingSpec = z.output<typeof servingSchema>;

/** A parsed, fully defaulted run spec. */
export interface Spec {
  project: string;
  description?: string;
  /** Candidate base models, in the order given; one `baseModel` object becomes a list of one. */
  baseModels: BaseModelSpec[];
  datasets: DatasetsSpec;
  split: SplitSpec;
  tasks: TaskSpec[];
  model: ModelSpec;
  training: TrainingSpec;
  tuning: TuningSpec;
  deploy: DeploySpec;
  schedule?: ScheduleSpec;
  monitor: MonitorSpec;
  /** Absent: `{ unknownInputs: 'impute' }`. */
  serving?: ServingSpec;
}

/** `jsonl` for .jsonl/.ndjson/.json, `csv` for .csv, `undefined` when the extension says neither. */
export function datasetFormatOf(location: string): DatasetFormat | undefined {
  const name = location.toLowerCase().replace(/[?#].*$/, '');
  if (/\.(jsonl|ndjson|json)$/.test(name)) return 'jsonl';
  if (/\.csv$/.test(name)) return 'csv';
  return undefined;
}

/**
 * The model's widths and learning rate when the spec leaves them out. Over text (TF-IDF) features
 * the first layer is an embedding bag whose cost per step grows with its width times the rows'
 * terms, and whose momentum-SGD rate is a multiple of the learning rate (`SPARSE_LAYER_OPTIMIZER`
 * in lib/domain/train/heads.ts): a narrow layer at a higher rate matches LogisticRegression's AUC
 * on TF-IDF in less time (`npm run bench -- train`'s text section). Every other base model keeps
 * the wider layer and Adam's usual rate.
 */
export const MODEL_DEFAULTS = {
  dense: { hidden: [256], expertHidden: 128, towerHidden: [64], learningRate: 1e-3 },
  text: { hidden: [32], expertHidden: 32, towerHidden: [16], learningRate: 1e-2 },
} as const;

/**
 * Fills the defaults that depend on other fields: the width and learning rate by base model
 * (`MODEL_DEFAULTS.text` when every candidate is a text encoder). `format` is the dataset format the caller
 * resolved (given, or read from the file extension).
 */
export function normalizeSpec(parsed: ParsedSpecInput, options: { format: DatasetFormat }): Spec {
  const { baseModel, model, tasks, tuning, datasets, training, ...rest } = parsed;
  const { architecture, ...modelRest } = model;
  const format = options.format;
  const baseModels = Array.isArray(baseModel) ? baseModel : [baseModel];
  const defaults = baseModels.every((candidate) => candidate.kind === 'text') ? MODEL_DEFAULTS.text : MODEL_DEFAULTS.dense;
  return {
    ...rest,
    baseModels,
    training: { ...training, learningRate: training.learningRate ?? defaults.learningRate },
    datasets: { ...datasets, format },
    tasks: tasks.map((task): TaskSpec => {
      const { classes, ...taskRest } = task;
      const label = task.label ?? task.name;
      if (task.type === 'multiclass') return { ...(taskRest as Omit<typeof task, 'classes'>), label, classes: classes as string[] };
      if (task.type === 'binary' && task.positive !== undefined) {
        const positive = [...new Set((Array.isArray(task.positive) ? task.positive : [task.positive]).map((value) => value.trim()))];
        return { ...(taskRest as BinaryTaskSpec), label, positive };
      }
      return { ...taskRest, label } as TaskSpec;
    }),
    model: {
      ...modelRest,
      hidden: model.hidden ?? [...defaults.hidden],
      expertHidden: model.expertHidden ?? defaults.expertHidden,
      towerHidden: model.towerHidden ?? [...defaults.towerHidden],
      architectures: Array.isArray(architecture) ? [...new Set(architecture)] : [architecture],
    },
    tuning: { ...tuning, lambdaScale: tuning.lambdaScale ?? tasks.length },
  };
}

/** The first (preferred) base model candidate. */
export function primaryBaseModel(spec: Spec): BaseModelSpec {
  return spec.baseModels[0];
}
