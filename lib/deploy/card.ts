import type { EncoderDescriptor } from '#lib/encoders/index.ts';
import type { TaskType } from '#lib/spec/index.ts';

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
