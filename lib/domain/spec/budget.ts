import type { SpecProblem } from '#lib/domain/spec/errors.ts';
import type { Spec } from '#lib/domain/spec/schema.ts';
import { historyBudgetProblem, screeningBudget, type LoopBudget } from '#lib/pipeline/history.ts';

/**
 * What a spec asks of the tuning loop: its generations of trials, and the screening rounds before
 * them when it offers several candidates (every base model with every architecture, the same
 * candidates Plan screens). `candidates` overrides the count when the encoders are known (Plan).
 */
export function loopBudgetOf(spec: Pick<Spec, 'tuning' | 'baseModels' | 'model'>, options: { candidates?: number } = {}): LoopBudget {
  // A tabular model with numericEncoding "auto" is fitted as three encoders (standard, quantile, ple).
  const encoders = spec.baseModels.reduce((sum, model) => sum + (model.kind === 'tabular' && model.numericEncoding === 'auto' ? 3 : 1), 0);
  const candidates = options.candidates ?? encoders * spec.model.architectures.length;
  const population = spec.tuning.strategy === 'uniform' ? 1 : spec.tuning.population;
  const screens = spec.tuning.screening.enabled !== false && candidates > 1;
  return { generations: spec.tuning.generations, population, ...(screens ? screeningBudget(candidates) : {}) };
}

/** The run would outgrow Step Functions' execution history (see lib/pipeline/history.ts): the problem, naming the largest budget that fits. */
export function executionHistoryProblems(spec: Pick<Spec, 'tuning' | 'baseModels' | 'model'>): SpecProblem[] {
  const message = historyBudgetProblem(loopBudgetOf(spec), { populationStep: spec.tuning.strategy === 'pgpe' ? 2 : 1 });
  return message ? [{ path: 'tuning', value: { generations: spec.tuning.generations, population: spec.tuning.population }, message }] : [];
}
