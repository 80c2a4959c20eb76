/**
 * Serving: Infer (route a request to a version by Thompson sampling, run its ONNX model, record
 * the predictions), Feedback (credit a reward exactly once), the Function URL handlers and a
 * local HTTP server that runs the same handlers, and the scheduled Monitor (online reward, input
 * drift, one retraining run per window).
 */
export { ServeError, STATUS_BY_CODE, type ServeErrorCode } from './errors.ts';
export { createServeBase, type ServeBase } from './base.ts';
export {
  createServeContext,
  DEFAULT_LIMITS,
  type ServeContext,
  type ServeDependencies,
  type ServeLimits,
  type ServeLogger,
  type ServeOptions,
} from './context.ts';
export { handleInferEvent, infer, inferRequestSchema, type InferRequest, type InferResponse, type Prediction, type TaskOutput } from './infer.ts';
export { feedback, feedbackRequestSchema, handleFeedbackEvent, type FeedbackRequest, type FeedbackResponse } from './feedback.ts';
export { handleFunctionUrl, functionUrlEventSchema, type ErrorBody, type FunctionUrlEvent, type FunctionUrlResult } from './http.ts';
export { startServer, type RunningServer, type StartServerOptions } from './server.ts';
export { recordChecker, inputFields, type CheckedRecords, type RecordChecker, type RecordProblem } from './records.ts';
export { PredictionIds } from './predictionIds.ts';
export { ModelCache, servingSessionOptions, type LoadedModel, type ModelCacheOptions } from './models.ts';
export { RoutingCache, armsOf, routeRequest, servingVersions, type ProjectRouting, type RoutingCacheOptions } from './router.ts';
export { DEFAULT_SERVE_SETTINGS, ServeSettingsStore, type ServeSettings } from './settings.ts';
export {
  METRICS_NAMESPACE,
  SERVE_METRICS,
  ServeMetrics,
  emfRecord,
  stdoutSink,
  type MetricDefinition,
  type MetricUnit,
  type MetricValue,
  type MetricsSink,
  type MonitorPassValues,
} from './metrics.ts';
export {
  DRIFT_BINS,
  DRIFT_PROJECTIONS,
  DriftSampler,
  MIN_REFERENCE_ROWS,
  REFERENCE_ROWS,
  referenceFromEmbeddings,
  buildReference,
  driftOf,
  driftProjection,
  histogram,
  hourKey,
  levelIndexFeatures,
  populationStabilityIndex,
  projectRows,
  projectionDirections,
  samplePrefix,
  type DriftLayout,
  type DriftProjection,
  type DriftReference,
  DriftReferenceSchema,
  type DriftSamplerOptions,
  SampleBatch,
} from './drift.ts';
export {
  runMonitor,
  type DriftHealth,
  type MonitorDependencies,
  type MonitorOptions,
  type MonitorReport,
  type ProjectHealth,
  type RetrainOutcome,
  type RetrainRequest,
  type RewardHealth,
  type StartRun,
  type VersionHealth,
} from './monitor.ts';
