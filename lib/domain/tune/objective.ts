import { HIGHER_IS_BETTER as METRIC_DIRECTIONS } from '#lib/domain/metrics/index.ts';
import { TuneError } from './errors.ts';

/**
 * The tuner's reward: one number per trial from its per-task validation metrics.
 *
 * Every metric is first turned into a score where higher is better and 1 is perfect:
 * - auc, accuracy, macroF1: the value itself (in [0, 1]).
 * - logLoss: exp(−logLoss), the geometric mean of the probability the model gives the true label;
 *   in (0, 1], scale-free, so it needs no reference.
 * - rmse, mae: the skill score 1 − value / reference, where `reference` is the error of the trivial
 *   predictor on the same split (the label standard deviation for rmse, the mean absolute deviation
 *   from the median for mae). 0 means "no better than predicting a constant", 1 is perfect. Raw errors
 *   are in label units, so without a reference a regression task's weight would silently depend on
 *   whether its labels are in dollars or cents; that is why the reference is required.
 * Scores are clipped below at −1 (twice as bad as trivial is as bad as it gets), so every score lies
 * in [−1, 1] and so does the weighted mean.
 *
 * A floor is a bound in the metric's own units: a minimum for higher-is-better metrics, a maximum for
 * lower-is-better ones. Each violated floor costs its shortfall in score units, and any violation
 * costs a further VIOLATION_PENALTY = 3, more than the width (2) of the score range; so any trial that
 * violates a floor ranks strictly below every trial on the same tasks that violates none, and among violators the one
 * further below its floors ranks lower.
 */

export type ObjectiveMetric = 'auc' | 'accuracy' | 'macroF1' | 'logLoss' | 'rmse' | 'mae';

export interface ObjectiveTask {
  name: string;
  metric: ObjectiveMetric;
  /** The task's weight in the objective (not λ): ≥ 0, at least one task > 0. */
  weight: number;
  /** The bound the metric must meet, in its own units (minimum for auc, maximum for rmse, …). */
  floor?: number;
  /** For rmse and mae: the trivial predictor's error on the same split (required there). */
  reference?: number;
}

export interface FloorViolation {
  task: string;
  metric: ObjectiveMetric;
  value: number;
  floor: number;
}

export interface RewardBreakdown {
  reward: number;
  perTask: Record<string, { metric: ObjectiveMetric; value: number; score: number }>;
  violations: FloorViolation[];
}

/** Taken off the reward when any floor is violated; more than the width of the score range [−1, 1]. */
export const VIOLATION_PENALTY = 3;

const SCORE_MIN = -1;

/** Whether a larger value is better, from the metrics module (the one table of directions). */
export const HIGHER_IS_BETTER: Readonly<Record<ObjectiveMetric, boolean>> = METRIC_DIRECTIONS;

/** The score in [−1, 1] of one metric value (see the module comment for each transform). */
export function scoreOf(metric: ObjectiveMetric, value: number, reference?: number): number {
  switch (metric) {
    case 'auc':
    case 'accuracy':
    case 'macroF1':
      return Math.max(SCORE_MIN, Math.min(1, value));
    case 'logLoss':
      return Math.exp(-Math.max(0, value));
    case 'rmse':
    case 'mae':
      if (reference === undefined || !(reference > 0) || !Number.isFinite(reference)) {
        throw new TuneError(`metric ${metric} needs a positive reference (the trivial predictor's ${metric} on the same split), got ${String(reference)}`, {
          code: 'TUNE_OBJECTIVE_INVALID',
          context: { metric, reference },
        });
      }
      return Math.max(SCORE_MIN, 1 - Math.max(0, value) / reference);
  }
}

function validateTasks(tasks: readonly ObjectiveTask[]): void {
  if (tasks.length === 0) {
    throw new TuneError('the objective has no tasks; list at least one { name, metric, weight }', { code: 'TUNE_OBJECTIVE_INVALID' });
  }
  const seen = new Set<string>();
  let totalWeight = 0;
  for (const task of tasks) {
    const context = { task: task.name, metric: task.metric };
    if (seen.has(task.name)) {
      throw new TuneError(`task "${task.name}" appears twice in the objective; list each task once`, { code: 'TUNE_OBJECTIVE_INVALID', context });
    }
    seen.add(task.name);
    if (!(task.metric in HIGHER_IS_BETTER)) {
      throw new TuneError(`task "${task.name}": metric "${String(task.metric)}" is not one of ${Object.keys(HIGHER_IS_BETTER).join(', ')}`, {
        code: 'TUNE_OBJECTIVE_INVALID',
        context,
      });
    }
    if (!Number.isFinite(task.weight) || task.weight < 0) {
      throw new TuneError(`task "${task.name}": weight ${task.weight} must be a finite number ≥ 0`, {
        code: 'TUNE_OBJECTIVE_INVALID',
        context: { ...context, weight: task.weight },
      });
    }
    if (task.floor !== undefined && !Number.isFinite(task.floor)) {
      throw new TuneError(`task "${task.name}": floor ${task.floor} must be a finite number`, {
        code: 'TUNE_OBJECTIVE_INVALID',
        context: { ...context, floor: task.floor },
      });
    }
    totalWeight += task.weight;
  }
  if (!(totalWeight > 0)) {
    throw new TuneError('the objective weights sum to 0; give at least one task a positive weight', { code: 'TUNE_OBJECTIVE_INVALID' });
  }
}

/**
 * The reward of one trial: the weighted mean of task scores, minus the floor penalties.
 * `metrics[task][metric]` must be a finite number for every task of the objective.
 */
export function rewardOf(metrics: Readonly<Record<string, Readonly<Record<string, number>>>>, tasks: readonly ObjectiveTask[]): RewardBreakdown {
  validateTasks(tasks);
  const perTask: RewardBreakdown['perTask'] = {};
  const violations: FloorViolation[] = [];
  let weighted = 0;
  let totalWeight = 0;
  let shortfall = 0;
  for (const task of tasks) {
    const taskMetrics = metrics[task.name];
    const value = taskMetrics?.[task.metric];
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      const available = taskMetrics ? Object.keys(taskMetrics).join(', ') || 'none' : `none (no metrics for task "${task.name}")`;
      throw new TuneError(
        `task "${task.name}": metric ${task.metric} is ${value === undefined ? 'missing' : String(value)}; ` +
          `the trial must report a finite ${task.metric} for every task (reported: ${available}), or be marked failed (reward null)`,
        { code: 'TUNE_METRIC_MISSING', context: { task: task.name, metric: task.metric, value } },
      );
    }
    const score = scoreOf(task.metric, value, task.reference);
    perTask[task.name] = { metric: task.metric, value, score };
    weighted += task.weight * score;
    totalWeight += task.weight;
    if (task.floor !== undefined) {
      const violated = HIGHER_IS_BETTER[task.metric] ? value < task.floor : value > task.floor;
      if (violated) {
        violations.push({ task: task.name, metric: task.metric, value, floor: task.floor });
        shortfall += Math.max(0, scoreOf(task.metric, task.floor, task.reference) - score);
      }
    }
  }
  const penalty = violations.length > 0 ? VIOLATION_PENALTY + shortfall : 0;
  return { reward: weighted / totalWeight - penalty, perTask, violations };
}
