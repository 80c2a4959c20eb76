/**
 * Validation and holdout metrics for every task type, over the labelled rows only (`mask`).
 * Inputs are the arrays the trainer already holds (Float32Array) or plain arrays from JSON.
 */
export { MetricsError, type MetricsErrorCode } from '#lib/domain/metrics/errors.ts';
export type { MaskArray, NumericArray } from '#lib/domain/metrics/inputs.ts';
export { accuracy, auc, logLoss, macroF1, LOG_LOSS_EPS, type ClassificationOptions } from '#lib/domain/metrics/classification.ts';
export { labelSpread, mae, rmse } from '#lib/domain/metrics/regression.ts';
export { evaluateTask, HIGHER_IS_BETTER, METRICS_BY_TYPE, type MetricName, type TaskEvaluation, type TaskType } from '#lib/domain/metrics/evaluate.ts';
