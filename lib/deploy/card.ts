import type { EncoderDescriptor } from '#lib/encoders/index.ts';
import type { Spec, TaskType } from '#lib/spec/index.ts';

/** A task as the served model reports it; output names follow `modelOutputName`. */
export interface CardTask {
  name: string;
  type: TaskType;
  classes?: string[];
  metric: string;
}

/**
 * `models/<project>/<version>/card.json`: what a person or the serving code needs to know about a
 * model file without opening it. The same facts are in the ONNX metadata (`agentflow.card`).
 */
export interface ModelCard {
  cardVersion: 1;
  project: string;
  version: number;
  runId: string;
  createdAt: string;
  tasks: CardTask[];
  /** How to feed the model raw records: the merged model's inputs are the encoder's inputs. */
  encoder: EncoderDescriptor;
  architecture: string;
  lambda: Record<string, number>;
  learningRate?: number;
  metrics: {
    validation: Record<string, Record<string, number>>;
    holdout: Record<string, Record<string, number>>;
  };
  /** The objective (the agent's reward) on the holdout, with the per-task breakdown. */
  holdoutObjective: number;
  lineage: {
    specDigest: string;
    datasetDigest: string;
    baseModelDigest: string;
    featuresDigest: string;
    bestTrialId: string;
  };
  model: { uri: string; sha256: string; sizeBytes: number; quantized: boolean };
  /** Single-record and 64-record latency of the exported file in ONNX Runtime on the exporting machine. */
  latencyMs: { single: number; batch64: number };
  /** Present when the spec asked for `deploy.quantize`: the served int8 file against the float file it came from. */
  quantization?: ModelQuantization;
  /** Why a spec asking for `deploy.quantize` got its float model served instead (nothing worth quantizing). */
  quantizationSkipped?: string;
  /** How served records are checked; absent on cards from before it existed (impute, categories unknown). */
  serving?: CardServing;
}

/**
 * What serving needs to tell an input the model has no value for: the spec's policy
 * (`serving.unknownInputs`) and, per categorical column, the categories the encoder one-hot
 * encodes (any other value is encoded as none of them, like a missing one).
 */
export interface CardServing {
  unknownInputs: 'impute' | 'reject';
  categories: Record<string, string[]>;
}

/** The card's serving section, from the spec and the fitted encoder's summary (a tabular encoder lists its categories). */
export function cardServingOf(spec: Pick<Spec, 'serving'>, encoderSummary: Record<string, unknown>): CardServing {
  const categorical = Array.isArray(encoderSummary.categorical) ? (encoderSummary.categorical as { column?: unknown; categories?: unknown }[]) : [];
  const categories: Record<string, string[]> = {};
  for (const { column, categories: known } of categorical) {
    if (typeof column === 'string' && Array.isArray(known)) categories[column] = known.map(String);
  }
  return { unknownInputs: spec.serving?.unknownInputs ?? 'impute', categories };
}

/**
 * The int8 file against its float original, both scored on the same holdout rows and timed on the
 * same machine. Changes are quantized − float. The float file stays beside the served one
 * (`model-float.onnx`), so the comparison can be rerun.
 */
export interface ModelQuantization {
  scheme: string;
  /** The weight matrices stored as int8 (the rest stays float32). */
  weights: { name: string; shape: number[] }[];
  /** `model-float.onnx`, the file quantized, and its holdout objective. */
  float: { uri: string; sha256: string; sizeBytes: number; holdoutObjective: number };
  sizeBytes: { float: number; quantized: number; ratio: number };
  /** Both measured with the serving session options (`SERVING_SESSION_OPTIONS`: one thread, int8 weights dequantized once at load). */
  latencyMs: { float: { single: number; batch64: number }; quantized: { single: number; batch64: number } };
  /** Per task, per holdout metric: quantized − float. */
  metricChange: Record<string, Record<string, number>>;
  /** Holdout objective, quantized − float; the gate holds the model when −objectiveChange > `maxQuantizationLoss`. */
  objectiveChange: number;
  maxQuantizationLoss: number;
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
