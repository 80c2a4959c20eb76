import { accuracy, auc, logLoss, macroF1 } from '#lib/domain/metrics/classification.ts';
import { MetricsError } from '#lib/domain/metrics/errors.ts';
import type { MaskArray, NumericArray } from '#lib/domain/metrics/inputs.ts';
import { mae, rmse } from '#lib/domain/metrics/regression.ts';

export type TaskType = 'binary' | 'multiclass' | 'regression';
export type MetricName = 'auc' | 'accuracy' | 'logLoss' | 'macroF1' | 'rmse' | 'mae';

/** The metrics `evaluateTask` reports for each task type, in a stable order. */
export const METRICS_BY_TYPE: Readonly<Record<TaskType, readonly MetricName[]>> = {
  binary: ['auc', 'accuracy', 'logLoss'],
  multiclass: ['accuracy', 'macroF1', 'logLoss'],
  regression: ['rmse', 'mae'],
};

/** Whether a larger value is better; objectives and promotion gates need the direction. */
export const HIGHER_IS_BETTER: Readonly<Record<MetricName, boolean>> = {
  auc: true,
  accuracy: true,
  macroF1: true,
  logLoss: false,
  rmse: false,
  mae: false,
};

export interface TaskEvaluation {
  type: TaskType;
  /** Required for multiclass: `predictions` is then row-major rows × numClasses probabilities. */
  numClasses?: number;
  /** Binary: P(positive) per row. Multiclass: class probabilities. Regression: predicted values. */
  predictions: NumericArray;
  /** Binary: 0/1. Multiclass: class index. Regression: target value. */
  labels: NumericArray;
  mask?: MaskArray;
}

/**
 * Every metric of the task's type over its labelled rows. Errors from single metrics propagate
 * (for example `METRIC_UNDEFINED` when a binary split holds a single class).
 */
export function evaluateTask(task: TaskEvaluation): Partial<Record<MetricName, number>> {
  const { type, numClasses, predictions, labels, mask } = task;
  switch (type) {
    case 'binary':
      return {
        auc: auc(predictions, labels, mask),
        accuracy: accuracy(predictions, labels, { mask }),
        logLoss: logLoss(predictions, labels, { mask }),
      };
    case 'multiclass': {
      if (numClasses === undefined) {
        throw new MetricsError('evaluateTask: a multiclass task needs numClasses (the length of its class list)', {
          code: 'METRIC_INPUT_INVALID',
          context: { type },
        });
      }
      return {
        accuracy: accuracy(predictions, labels, { mask, numClasses }),
        macroF1: macroF1(predictions, labels, { mask, numClasses }),
        logLoss: logLoss(predictions, labels, { mask, numClasses }),
      };
    }
    case 'regression':
      return { rmse: rmse(predictions, labels, mask), mae: mae(predictions, labels, mask) };
    default:
      throw new MetricsError(`evaluateTask: task type ${JSON.stringify(type)} is not binary, multiclass or regression`, {
        code: 'METRIC_INPUT_INVALID',
        context: { type },
      });
  }
}
