/**
 * Graphs as data: a typed ONNX graph builder, reverse-mode autodiff over the op subset the
 * heads use, masked task losses, and the one-`session.run`-per-step training graph with AdamW.
 */
export { GraphError, type GraphErrorCode } from './errors.ts';
export { broadcastShapes, formatShape, sameShape, staticSize, type Dim, type Shape } from './shape.ts';
export {
  DEFAULT_OPSETS,
  FLOAT_DTYPES,
  Graph,
  Value,
  attr,
  dtypeCode,
  dtypeFromCode,
  tensorLiteral,
  type Attribute,
  type DType,
  type Node,
  type OpOptions,
  type TensorLiteral,
  type TensorValues,
} from './builder.ts';
export { IR_VERSION, bakeInitializers, decodeModel, modelMetadata, onnx, type ModelOptions, type ModelProto } from './model.ts';
export { GRADIENT_RULES, differentiableOps, gradients, sumToShape, type GradientRule } from './autodiff.ts';
export { binaryCrossEntropyWithLogits, huber, maskedMean, mse, softmaxCrossEntropy } from './losses.ts';
export {
  DEFAULT_ADAMW,
  UNCERTAINTY_PARAMETER,
  buildTrainingStep,
  stepNames,
  type AdamWOptions,
  type BatchInputSpec,
  type ForwardResult,
  type ParameterSpec,
  type TrainingStep,
  type TrainingStepSpec,
} from './train.ts';
export { TrainingSession, type BatchFeed, type StepResult, type TrainingSessionOptions, type TrainingState } from './session.ts';
