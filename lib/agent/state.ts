import type { Spec } from '#lib/spec/index.ts';
import { keys, type ArtifactStore } from '#lib/store/index.ts';
import type { AnyTunerState, ObjectiveTask } from '#lib/tune/index.ts';
import type { Proposal } from '#lib/workflow/contracts.ts';
import type { Candidate, ScreeningState } from './screening.ts';

/**
 * The agent's state for one generation of a run, written once to
 * `runs/<runId>/agent/generation-<n>.json` before the generation's trials start. A retried Plan or
 * Reward finds the file of the generation it would create and returns it instead of proposing again,
 * so retries never change what the trials were asked to do.
 */
export interface GenerationState {
  generation: number;
  /** On a screening generation: the tuner as initialised, proposing nothing until screening ends. */
  tuner: AnyTunerState;
  proposals: Proposal[];
  maxConcurrency: number;
  /** Present on screening generations: the round and the candidates it trains. */
  screening?: ScreeningState;
  /** On tuning generations after screening: the winner every proposal trains. */
  candidate?: Candidate;
  /** How many generations of the run screened before tuning began (absent: none). */
  screeningRounds?: number;
}

/** Written once when tuning ends; a retried final Reward step returns it. */
export interface TuningOutcome {
  generation: number;
  bestTrialId: string;
  bestReward: number;
  tuner: AnyTunerState;
}

/** What the project's policy item holds between runs. */
export interface StoredPolicy {
  tuner: AnyTunerState;
  /** The run and generation whose update produced this policy, so a retried update is recognised. */
  runId: string;
  generation: number;
}

export const agentKeys = {
  generation: (runId: string, generation: number) => keys.runFile(runId, `agent/generation-${generation}.json`),
  outcome: (runId: string) => keys.runFile(runId, 'agent/outcome.json'),
};

export async function readIfExists<T>(store: ArtifactStore, key: string): Promise<T | undefined> {
  return (await store.exists(key)) ? store.getJson<T>(key) : undefined;
}

/**
 * The objective over a trial's validation metrics. rmse and mae need a reference error (what a
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
