import * as z from 'zod';
import { TASK_TYPES, type Spec, type TaskType } from '#lib/domain/spec/index.ts';
import { CategoryEmbedding } from './manifest.ts';

/** A task as the served model reports it; output names follow `modelOutputName`. */
export const CardTask = z.object({
  name: z.string().min(1),
  type: z.enum(TASK_TYPES),
  classes: z.array(z.string()).optional(),
  metric: z.string().min(1),
});
export type CardTask = z.infer<typeof CardTask>;

/** How to feed the model raw records (the encoder's EncoderDescriptor, as the card carries it). */
export const CardEncoder = z.object({
  kind: z.enum(['text', 'tabular', 'features', 'onnx']),
  dimension: z.int().positive(),
  inputs: z.array(
    z.object({
      name: z.string(),
      dtype: z.enum(['string', 'float32', 'int64']),
      shape: z.array(z.union([z.string(), z.number()])),
      role: z.enum(['text', 'numeric', 'categorical', 'features', 'token_ids', 'attention_mask']),
      fields: z.array(z.string()),
    }),
  ),
  output: z.string(),
  tokenization: z.object({ maxLength: z.int().positive(), tokenizerJson: z.string() }).optional(),
  /**
   * A tabular encoder's embedded categorical columns, as the run manifest's encoder entry lists
   * them: each one's output feature holds a level index, which drift monitoring leaves out.
   * Absent when there are none, and on cards from before embeddings existed.
   */
  categoryEmbeddings: z.array(CategoryEmbedding).optional(),
});

/**
 * What serving needs to tell an input the model has no value for: the spec's policy
 * (`serving.unknownInputs`) and, per categorical column, the categories the encoder one-hot
 * encodes (any other value is encoded as none of them, like a missing one).
 */
export const CardServing = z.object({
  unknownInputs: z.enum(['impute', 'reject']),
  categories: z.record(z.string(), z.array(z.string())),
  /**
   * Present when the spec keeps feedback as data (`datasets.feedback`): serving logs each record's
   * raw inputs, and `/feedback` checks labels against these rules (it loads no card of its own).
   */
  feedback: z
    .object({
      tasks: z.array(
        z.discriminatedUnion('type', [
          z.object({ name: z.string(), type: z.literal('binary'), positive: z.array(z.string()).optional() }),
          z.object({ name: z.string(), type: z.literal('multiclass'), classes: z.array(z.string()) }),
          z.object({ name: z.string(), type: z.literal('regression') }),
        ]),
      ),
      rewardIsLabel: z.string().optional(),
    })
    .optional(),
});
export type CardServing = z.infer<typeof CardServing>;

/**
 * The winning trial's training settings as it trained: the spec's own values with the proposal's
 * searched hyperparameters in their place, so a reader can retrain the served model without
 * replaying the search. `searched` names what the agent chose for this trial (λ aside), the rest
 * came from the spec.
 */
export const CardHyperparameters = z.object({
  learningRate: z.number().positive(),
  weightDecay: z.number().nonnegative(),
  /** On each task tower's input while training; the served model keeps every unit. */
  dropout: z.number().min(0).lt(1),
  /** The shared layers' widths (shared-bottom) or, with `experts`, each expert's: width × depth. */
  hidden: z.array(z.int().positive()),
  towerHidden: z.array(z.int().positive()),
  experts: z.int().positive().optional(),
  /** Early-stopping patience in epochs (0: no early stopping). */
  patience: z.int().nonnegative(),
  /** The most epochs the trial could train (a screening trial's cap when it was one). */
  epochs: z.int().positive(),
  batchSize: z.int().positive(),
  /** The base-model candidate the weights were trained on (`e0`, …) and, for a tabular one, its numeric encoding. */
  encoderId: z.string().min(1),
  /** `standard`, `quantile` or `ple` for every numeric column, or `mixed` (then `columnEncodings` says which). */
  numericEncoding: z.string().optional(),
  columnEncodings: z.record(z.string(), z.string()).optional(),
  /** A tabular encoder's embedded categorical columns: each one's table, levels × dimension. */
  categoryEmbeddings: z.record(z.string(), z.object({ levels: z.int().positive(), dimension: z.int().positive() })).optional(),
  /** What the agent chose for this trial: `learningRate`, `tuning.search` names, `encoder`, `architecture`. */
  searched: z.array(z.string()),
});
export type CardHyperparameters = z.infer<typeof CardHyperparameters>;

/** The card's hyperparameters as `name value` pairs in a fixed order, the searched ones marked, for the CLI and the report. */
export function hyperparameterEntries(h: CardHyperparameters): { name: string; value: string; searched: boolean }[] {
  const searched = new Set(h.searched);
  const entry = (name: string, value: string, searchedAs: string[] = [name]) => ({ name, value, searched: searchedAs.some((s) => searched.has(s)) });
  return [
    entry('learningRate', String(h.learningRate)),
    entry('weightDecay', String(h.weightDecay)),
    entry('dropout', String(h.dropout)),
    entry(h.experts === undefined ? 'hidden' : 'expertHidden', `[${h.hidden.join(', ')}]`, ['width', 'depth']),
    entry('towerHidden', `[${h.towerHidden.join(', ')}]`),
    ...(h.experts === undefined ? [] : [entry('experts', String(h.experts), ['architecture'])]),
    entry('patience', String(h.patience)),
    entry('epochs', String(h.epochs)),
    entry('batchSize', String(h.batchSize)),
    entry('encoder', h.encoderId, ['encoder']),
    ...(h.numericEncoding === undefined
      ? []
      : [
          entry(
            'numericEncoding',
            h.columnEncodings && h.numericEncoding === 'mixed'
              ? Object.entries(h.columnEncodings)
                  .map(([column, encoding]) => `${column}=${encoding}`)
                  .join(' ')
              : h.numericEncoding,
            ['encoder'],
          ),
        ]),
    ...(h.categoryEmbeddings === undefined
      ? []
      : [
          entry(
            'categoryEmbeddings',
            Object.entries(h.categoryEmbeddings)
              .map(([column, table]) => `${column}=${table.levels}×${table.dimension}`)
              .join(' '),
            ['encoder'],
          ),
        ]),
  ];
}

const latency = z.object({ single: z.number(), batch64: z.number() });
const metricTable = z.record(z.string(), z.record(z.string(), z.number()));

/**
 * The int8 file against its float original, both scored on the same holdout rows and timed on the
 * same machine. Changes are quantized − float. The float file stays beside the served one
 * (`model-float.onnx`), so the comparison can be rerun.
 */
export const ModelQuantization = z.object({
  scheme: z.string(),
  /** The weight matrices stored as int8 (the rest stays float32). */
  weights: z.array(z.object({ name: z.string(), shape: z.array(z.number()) })),
  /** `model-float.onnx`, the file quantized, and its holdout objective. */
  float: z.object({ uri: z.string(), sha256: z.string(), sizeBytes: z.number(), holdoutObjective: z.number() }),
  sizeBytes: z.object({ float: z.number(), quantized: z.number(), ratio: z.number() }),
  /** Both measured with the serving session options (`SERVING_SESSION_OPTIONS`: one thread, int8 weights dequantized once at load). */
  latencyMs: z.object({ float: latency, quantized: latency }),
  /** Per task, per holdout metric: quantized − float. */
  metricChange: metricTable,
  /** Holdout objective, quantized − float; the gate holds the model when −objectiveChange > `maxQuantizationLoss`. */
  objectiveChange: z.number(),
  maxQuantizationLoss: z.number(),
});
export type ModelQuantization = z.infer<typeof ModelQuantization>;

/**
 * `models/<project>/<version>/card.json`: what a person or the serving code needs to know about a
 * model file without opening it. The same facts are in the ONNX metadata (`agentflow.card`).
 */
export const ModelCard = z.object({
  cardVersion: z.literal(1),
  project: z.string().min(1),
  version: z.int().positive(),
  runId: z.string().min(1),
  createdAt: z.string(),
  tasks: z.array(CardTask).min(1),
  /** How to feed the model raw records: the merged model's inputs are the encoder's inputs. */
  encoder: CardEncoder,
  architecture: z.string(),
  lambda: z.record(z.string(), z.number()),
  learningRate: z.number().optional(),
  /** The winning trial's settings, searched or from the spec; absent on cards from before it was recorded. */
  hyperparameters: CardHyperparameters.optional(),
  metrics: z.object({ validation: metricTable, holdout: metricTable }),
  /** The objective (the agent's reward) on the holdout, with the per-task breakdown. */
  holdoutObjective: z.number(),
  lineage: z.object({
    specDigest: z.string(),
    datasetDigest: z.string(),
    baseModelDigest: z.string(),
    featuresDigest: z.string(),
    bestTrialId: z.string(),
  }),
  model: z.object({ uri: z.string(), sha256: z.string(), sizeBytes: z.number(), quantized: z.boolean() }),
  /** Single-record and 64-record latency of the exported file in ONNX Runtime on the exporting machine. */
  latencyMs: latency,
  /** Present when the spec asked for `deploy.quantize`: the served int8 file against the float file it came from. */
  quantization: ModelQuantization.optional(),
  /** Why a spec asking for `deploy.quantize` got its float model served instead (nothing worth quantizing). */
  quantizationSkipped: z.string().optional(),
  /** How served records are checked; absent on cards from before it existed (impute, categories unknown). */
  serving: CardServing.optional(),
});
export type ModelCard = z.infer<typeof ModelCard>;

/** The card's serving section, from the spec and the fitted encoder's summary (a tabular encoder lists its categories). */
export function cardServingOf(spec: Pick<Spec, 'serving'> & Partial<Pick<Spec, 'datasets' | 'tasks'>>, encoderSummary: Record<string, unknown>): CardServing {
  const categorical = Array.isArray(encoderSummary.categorical) ? (encoderSummary.categorical as { column?: unknown; categories?: unknown }[]) : [];
  const categories: Record<string, string[]> = {};
  for (const { column, categories: known } of categorical) {
    if (typeof column === 'string' && Array.isArray(known)) categories[column] = known.map(String);
  }
  const serving: CardServing = { unknownInputs: spec.serving?.unknownInputs ?? 'impute', categories };
  if (spec.datasets?.feedback === true && spec.tasks)
    serving.feedback = { tasks: spec.tasks.map(feedbackRuleOf), ...(spec.serving?.rewardIsLabel ? { rewardIsLabel: spec.serving.rewardIsLabel } : {}) };
  return serving;
}

type FeedbackRule = NonNullable<CardServing['feedback']>['tasks'][number];

function feedbackRuleOf(task: Spec['tasks'][number]): FeedbackRule {
  if (task.type === 'multiclass') return { name: task.name, type: 'multiclass', classes: task.classes };
  if (task.type === 'binary') return { name: task.name, type: 'binary', ...(task.positive ? { positive: task.positive } : {}) };
  return { name: task.name, type: 'regression' };
}

/** The ONNX output holding a task's prediction: `<task>.probability` [batch] for binary, `<task>.probabilities` [batch, C] for multiclass, `<task>.value` [batch] for regression. */
export function modelOutputName(task: { name: string; type: TaskType }): string {
  switch (task.type) {
    case 'binary':
      return `${task.name}.probability`;
    case 'multiclass':
      return `${task.name}.probabilities`;
    case 'regression':
      return `${task.name}.value`;
  }
}
