import type { Spec } from '#lib/domain/spec/index.ts';
import type { ObjectiveTask } from '#lib/domain/tune/index.ts';

/**
 * The objective over a trial's validation metrics, as the tuner (Reward), the trainer's early
 * stopping and the promotion gate all score it. rmse and mae need a reference error (what a
 * constant prediction scores) to be comparable across tasks; the trial reports it per task as
 * `labelStd` (for rmse) and `labelMad` (for mae).
 */
export function objectiveTasks(spec: Spec, metrics: Record<string, Record<string, number>>): ObjectiveTask[] {
  return spec.tasks.map((task) => {
    const reference = task.metric === 'rmse' ? metrics[task.name]?.labelStd : task.metric === 'mae' ? metrics[task.name]?.labelMad : undefined;
    return {
      name: task.name,
      metric: task.metric,
      weight: task.weight,
      ...(task.floor === undefined ? {} : { floor: task.floor }),
      ...(reference === undefined ? {} : { reference }),
    };
  });
}
