/** Model management: export of the best trial, the promotion gate, production moves and rollback. */
export { cardServingOf, modelOutputName, type CardServing, type CardTask, type ModelCard, type ModelQuantization } from '#lib/run/index.ts';
export { DeployError, type DeployErrorCode } from './errors.ts';
export { evaluateOnSplit, MODEL_SESSION_OPTIONS, SERVING_SESSION_OPTIONS, type TaskMetrics } from './evaluate.ts';
export { exportBestTrial } from './export.ts';
export { cardHyperparametersOf } from './hyperparameters.ts';
export { readLiveModel, writeLiveModel } from './liveModel.ts';
export { decidePromotion, type GateDecision, type GateScore } from './gate.ts';
export {
  DEFAULT_MIN_QUANTIZED_ELEMENTS,
  MIN_QUANTIZE_OPSET,
  QUANTIZATION_METADATA_KEY,
  QUANTIZED_SESSION_CONFIG,
  quantizePerChannel,
  quantizeWeights,
  quantizedWeights,
  type QuantizeOptions,
  type QuantizedWeight,
} from './quantize.ts';
export { PRODUCTION, loadVerifiedModel, moveProduction, promoteCandidate, rollbackProduction, type DeployDependencies } from './promote.ts';
