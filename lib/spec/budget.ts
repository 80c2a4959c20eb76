import type { SpecProblem } from '#lib/spec/errors.ts';
import type { Spec } from '#lib/spec/schema.ts';
import { historyBudgetProblem, screeningBudget, type LoopBudget } from '#lib/workflow/history.ts';

/**
 * What a spec asks of the tuning loop: its generations of trials, and the screening rounds before
 * them when it offers several candidates (every base model with every architecture, the same
 * candidates Plan screens). `candidates` overrides the count when the encoders are known (Plan).
 */
export function loopBudgetOf(spec: Pick<Spec, 'tuning' | 'baseModels' | 'model'>, options: { candidates?: number } = {}): LoopBudget {
  const candidates = options.candidates ?? spec.baseModels.length * spec.model.architectures.length;
  const population = spec.tuning.strategy === 'uniform' ? 1 : spec.tuning.population;
  const screens = spec.tuning.screening.enabled !== false && candidates > 1;
  return { generations: spec.tuning.generations, population, ...(screens ? screeningBudget(candidates) : {}) };
}

/** The run would outgrow Step Functions' execution history (see lib/workflow/history.ts): the problem, naming the largest budget that fits. */
export function executionHistoryProblems(spec: Pick<Spec, 'tuning' | 'baseModels' | 'model'>): SpecProblem[] {
  const message = historyBudgetProblem(loopBudgetOf(spec), { populationStep: spec.tuning.strategy === 'pgpe' ? 2 : 1 });
  return message ? [{ path: 'tuning', value: { generations: spec.tuning.generations, population: spec.tuning.population }, message }] : [];
}
