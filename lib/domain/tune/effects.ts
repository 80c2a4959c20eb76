import type { SearchDimension } from './space.ts';

/** One past trial as the effect estimate needs it: which generation it ran in, what it tried, what it earned. */
export interface EffectTrial {
  /** Trials of one group share everything but the proposal (a run's generation, e.g. `run-1/3`). */
  group: string;
  hyperparameters: Readonly<Record<string, number>>;
  reward: number;
}

/** A dimension's effect on the reward over past trials. */
export interface DimensionEffect {
  name: string;
  /** Trials whose group varied the dimension (the only ones that say anything about it). */
  trials: number;
  /** Reward change across the dimension's whole range (slope × range, on the scale it is searched on); null without evidence. */
  effect: number | null;
  /** The standard error of `effect`. */
  standardError: number | null;
  /** The dimension's value in the best of those trials. */
  bestValue: number | null;
  /** true: the effect is below its noise, so searching it further is wasted trials. */
  flat: boolean;
}

export interface EffectOptions {
  /** Fewer varied trials than this is no evidence either way. Default 8. */
  minTrials: number;
  /** |effect| / standard error under this counts as noise. Default 2. */
  tThreshold: number;
}

export const EFFECT_DEFAULTS: Readonly<EffectOptions> = { minTrials: 8, tThreshold: 2 };

/** The coordinate a dimension is searched on: log for a log range, the choice's index for choices. */
function coordinate(dimension: SearchDimension, value: number): number {
  if ('choices' in dimension) {
    const index = dimension.choices.indexOf(value);
    return index === -1 ? dimension.choices.filter((choice) => choice < value).length - 0.5 : index;
  }
  return dimension.scale === 'log' ? Math.log(value) : value;
}

function span(dimension: SearchDimension): number {
  if ('choices' in dimension) return Math.max(1, dimension.choices.length - 1);
  return dimension.scale === 'log' ? Math.log(dimension.max) - Math.log(dimension.min) : dimension.max - dimension.min;
}

/**
 * Each dimension's effect: the least-squares slope of reward on the dimension within groups (each
 * group's means removed, so a generation that did better overall, or a policy that moved λ
 * meanwhile, does not pass for an effect), with its standard error from the residuals. Several
 * dimensions vary at once; the other dimensions' effects land in the residual, which makes a
 * dimension look flatter only when the others dominate, and those stay searched. A dimension whose
 * reward peaks inside its range has a small slope too; freezing it at the best value seen keeps
 * that peak.
 */
export function dimensionEffects(space: readonly SearchDimension[], trials: readonly EffectTrial[], overrides: Partial<EffectOptions> = {}): DimensionEffect[] {
  const options = { ...EFFECT_DEFAULTS, ...overrides };
  return space.map((dimension) => {
    const byGroup = new Map<string, { x: number; y: number; value: number }[]>();
    for (const trial of trials) {
      const value = trial.hyperparameters[dimension.name];
      if (value === undefined || !Number.isFinite(value) || !Number.isFinite(trial.reward)) continue;
      const group = byGroup.get(trial.group) ?? [];
      group.push({ x: coordinate(dimension, value), y: trial.reward, value });
      byGroup.set(trial.group, group);
    }
    const centred: { x: number; y: number; value: number; reward: number }[] = [];
    let groups = 0;
    for (const points of byGroup.values()) {
      const meanX = points.reduce((s, p) => s + p.x, 0) / points.length;
      if (points.every((p) => p.x === meanX)) continue;
      const meanY = points.reduce((s, p) => s + p.y, 0) / points.length;
      groups += 1;
      for (const p of points) centred.push({ x: p.x - meanX, y: p.y - meanY, value: p.value, reward: p.y });
    }
    const best = centred.reduce<(typeof centred)[number] | undefined>((top, p) => (top === undefined || p.reward > top.reward ? p : top), undefined);
    const bestValue = best?.value ?? null;
    const freedom = centred.length - groups - 1;
    if (centred.length < options.minTrials || freedom < 1)
      return { name: dimension.name, trials: centred.length, effect: null, standardError: null, bestValue, flat: false };
    const sxx = centred.reduce((s, p) => s + p.x * p.x, 0);
    const slope = centred.reduce((s, p) => s + p.x * p.y, 0) / sxx;
    const residual = centred.reduce((s, p) => s + (p.y - slope * p.x) ** 2, 0) / freedom;
    const scale = span(dimension);
    const effect = slope * scale;
    const standardError = Math.sqrt(residual / sxx) * scale;
    return { name: dimension.name, trials: centred.length, effect, standardError, bestValue, flat: Math.abs(effect) < options.tThreshold * standardError };
  });
}
