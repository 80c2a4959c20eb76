import { AgentflowError } from '#lib/domain/errors/index.ts';

/**
 * Codes raised by the graph builder, the autodiff pass, the training-step builder and the
 * training session. Shape and dtype problems are caught while the graph is built, not when
 * ONNX Runtime first runs it.
 */
export type GraphErrorCode = 'GRAPH_SHAPE' | 'GRAPH_DTYPE' | 'GRAPH_INVALID' | 'GRAPH_NO_GRADIENT_RULE' | 'GRAPH_GRADIENT' | 'GRAPH_MODEL' | 'GRAPH_TRAINING';

export class GraphError extends AgentflowError {
  constructor(message: string, options: { code: GraphErrorCode; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, options);
    this.name = 'GraphError';
  }
}
