/**
 * Training inside ONNX Runtime: multi-task heads (shared-bottom, MMoE) built once as a parameter
 * list and a forward function, the trial trainer (streamed epochs, warm-up and decay, fixed /
 * uncertainty / DWA task weighting, early stopping on the agent's objective, divergence guard),
 * the heads export with a parity check.
 */
export { TrainError, type TrainErrorCode } from '#lib/domain/train/errors.ts';
export {
  FEATURES_INPUT,
  batchNames,
  batchSpec,
  buildHeads,
  buildHeadsTrainingStep,
  buildInferenceGraph,
  embedCategories,
  embeddingParameter,
  forwardFlopsPerRow,
  sparseLayerOptimizer,
  type HeadTask,
  type HeadTaskInput,
  type HeadTaskType,
  type Heads,
  type HeadsModel,
  type HeadsOptions,
  type TargetScale,
  type HeadsTrainingStepOptions,
} from '#lib/domain/train/heads.ts';
export { specWithHyperparameters, headsModelOf, type TrialHyperparameters } from '#lib/domain/train/hyperparameters.ts';
export { DWA_TEMPERATURE, dwaWeights, learningRateAt, type LearningRateOptions } from '#lib/domain/train/schedule.ts';
export {
  batchFeeds,
  featureFeeds,
  featureLayoutOf,
  evaluateSplit,
  objectiveOf,
  regressionTargetScales,
  onDevice,
  trainTrial,
  type EpochRecord,
  type ExecutionProviders,
  type TaskMetrics,
  type TrainProgress,
  type TrainResult,
  type TrainTrialOptions,
  type TrainWeighting,
  type TrialWeights,
} from '#lib/domain/train/trainer.ts';
export {
  HEADS_METADATA_KEYS,
  PARITY_TOLERANCE,
  checkParity,
  evaluateWeights,
  parityDifference,
  exportHeads,
  exportedTasks,
  headsForWeights,
  predictExported,
  trainingForward,
  type ExportedTask,
  type FeatureRows,
  type HeadsExportMetadata,
  type ParityReport,
  type Predictions,
} from '#lib/domain/train/export.ts';
