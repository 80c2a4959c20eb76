/**
 * Step Functions Standard caps one execution at 25,000 history events, and the tuning loop adds
 * events with every generation and every trial: a spec that asks for too many fails in AWS
 * hours in, with GPU time paid for. The budget below is what the definition (definition.ts)
 * costs per run, per generation and per trial; `historyEventsOf` counts it from any definition,
 * and the workflow tests check that the two agree and match the events the local runner emits.
 *
 * This module has no runtime imports, so lib/domain/spec can check a spec against it without loading
 * the workflow (whose contracts import lib/domain/spec).
 */
import type { State, StateMachineDefinition } from '#lib/pipeline/asl.ts';

export const EXECUTION_HISTORY = {
  /** Events one Standard execution may have. */
  limit: 25_000,
  /**
   * Kept free for what a plan cannot foresee: each retried task adds 3 events (failed, scheduled,
   * started again), a Lambda stage may be retried 7 times, and a failure adds the label, RecordFailure
   * and the Fail state. 10% covers a retry for every third trial.
   */
  reserve: 2_500,
  /** Events of a successful run outside the tuning loop: start, Prepare, Embed, Plan, Export, Promote, Succeed, end. */
  fixed: 30,
  /** Events of one generation besides its trials: the Map state, Reward, IsTuningDone. */
  perGeneration: 11,
  /** Events of one trial: its Map iteration, the RunTrial Batch job, TrialSucceeded or TrialFailed. */
  perTrial: 10,
} as const;

/** What one run asks of the loop. Screening rounds are generations of their own, before tuning's. */
export interface LoopBudget {
  generations: number;
  population: number;
  /** Generations spent screening candidates before tuning (0 without screening). */
  screeningRounds?: number;
  /** Trials over every screening round. */
  screeningTrials?: number;
}

/** Events a successful run with this budget writes to its history. */
export function historyEventsFor(budget: LoopBudget): number {
  const { fixed, perGeneration, perTrial } = EXECUTION_HISTORY;
  const generations = budget.generations + (budget.screeningRounds ?? 0);
  const trials = budget.generations * budget.population + (budget.screeningTrials ?? 0);
  return fixed + generations * perGeneration + trials * perTrial;
}

/** Screening by successive halving: rounds and trials for `candidates` candidates (see lib/pipeline/plan/screening.ts). */
export function screeningBudget(candidates: number): { screeningRounds: number; screeningTrials: number } {
  let left = candidates;
  let screeningRounds = 0;
  let screeningTrials = 0;
  while (left > 1) {
    screeningRounds += 1;
    screeningTrials += left;
    left = Math.ceil(left / 2);
  }
  return { screeningRounds, screeningTrials };
}

/**
 * Why a budget does not fit in the execution history, naming the largest that does; undefined
 * when it fits. `populationStep` is 2 for PGPE, whose population must be even.
 */
export function historyBudgetProblem(budget: LoopBudget, options: { populationStep?: number } = {}): string | undefined {
  const { limit, reserve, fixed, perGeneration, perTrial } = EXECUTION_HISTORY;
  const usable = limit - reserve;
  const events = historyEventsFor(budget);
  if (events <= usable) return undefined;
  const screening = (budget.screeningRounds ?? 0) * perGeneration + (budget.screeningTrials ?? 0) * perTrial;
  const room = usable - fixed - screening;
  const maxGenerations = Math.max(0, Math.floor(room / (perGeneration + budget.population * perTrial)));
  const step = options.populationStep ?? 1;
  const perGenerationRoom = Math.floor(room / budget.generations) - perGeneration;
  const maxPopulation = Math.max(0, Math.floor(perGenerationRoom / perTrial / step) * step);
  const screeningText = budget.screeningRounds ? ` after ${budget.screeningRounds} screening rounds of ${budget.screeningTrials} trials` : '';
  const fits = [
    maxGenerations > 0 ? `at most ${maxGenerations} generations of ${budget.population}` : `not one generation of ${budget.population}`,
    ...(maxPopulation > 0 ? [`or ${budget.generations} generations of at most ${maxPopulation},`] : []),
  ].join(', ');
  return (
    `generations × population = ${budget.generations} × ${budget.population} needs ~${events.toLocaleString('en-US')} Step Functions history events${screeningText}; ` +
    `${fits} fit in the ${limit.toLocaleString('en-US')}-event execution history (${reserve.toLocaleString('en-US')} kept for retries): ` +
    `lower tuning.generations or tuning.population, or run fewer, longer trials (more training.epochs)`
  );
}

/**
 * Counts the history events of a successful run of `definition`, by walking it the way a run
 * goes: every state's events by type (a Lambda task 5, a `.sync` task 6 with TaskSubmitted, a
 * Pass or Choice 2, a Map 4 and 2 per iteration, Succeed 2, the execution's start and end 2).
 * A Choice takes its Default (another generation) until it has been entered `generations` times,
 * then its first rule; a Map runs `population` iterations.
 */
export function historyEventsOf(definition: StateMachineDefinition, budget: { generations: number; population: number }): number {
  const choiceVisits = new Map<string, number>();
  const walk = (states: Record<string, State>, startAt: string): number => {
    let events = 0;
    let name: string | undefined = startAt;
    for (let steps = 0; name !== undefined; steps += 1) {
      if (steps > 1_000_000) throw new Error(`the walk of the definition does not end (at ${name}); a Choice loop must exit`);
      const state: State = states[name];
      switch (state.Type) {
        case 'Task':
          events += state.Resource.endsWith('.sync') ? 6 : 5;
          name = state.Next;
          break;
        case 'Pass':
          events += 2;
          name = state.Next;
          break;
        case 'Map':
          events += 4 + budget.population * (2 + walk(state.ItemProcessor.States, state.ItemProcessor.StartAt));
          name = state.Next;
          break;
        case 'Choice': {
          events += 2;
          const visits = (choiceVisits.get(name) ?? 0) + 1;
          choiceVisits.set(name, visits);
          name = visits < budget.generations ? state.Default : state.Choices[0].Next;
          break;
        }
        case 'Succeed':
          events += 2;
          name = undefined;
          break;
        case 'Fail':
          events += 1;
          name = undefined;
          break;
      }
    }
    return events;
  };
  return 2 + walk(definition.States, definition.StartAt);
}
