import { TuneError } from './errors.ts';

/**
 * The hyperparameters a tuner can search beside λ and the learning rate. Each is one coordinate
 * z ∈ [−1, 1] of the tuner's point, so PGPE treats it as one more Gaussian coordinate and random
 * search draws it uniformly:
 * - `log`: value = exp of the log range's point at z (weight decay spans decades);
 * - `linear`: value linear from min to max (head dropout);
 * - `choices`: ordered discrete values (width, depth, patience), z split into equal bins. The
 *   choices are ordered (wider, deeper, more patient), so an ordinal relaxation keeps the reward
 *   smooth in z and PGPE's Gaussian gradient still points the right way; a softmax over unordered
 *   choices would add one coordinate per choice and throw that order away.
 */
export type SearchDimension =
  { name: SearchDimensionName; scale: 'log' | 'linear'; min: number; max: number } | { name: SearchDimensionName; choices: number[] };

/** The hyperparameters a trial knows how to apply; the learning rate keeps its own coordinate. */
export const SEARCH_DIMENSION_NAMES = ['weightDecay', 'width', 'depth', 'dropout', 'patience'] as const;
export type SearchDimensionName = (typeof SEARCH_DIMENSION_NAMES)[number];

function invalid(message: string, dimension: unknown): TuneError {
  return new TuneError(message, { code: 'TUNE_CONFIG_INVALID', context: { dimension } });
}

/** Checks a search space: known, distinct names; finite ranges with min ≤ max (> 0 on a log scale); sorted distinct choices. */
export function validateSpace(space: readonly SearchDimension[]): SearchDimension[] {
  const seen = new Set<string>();
  return space.map((dimension) => {
    const { name } = dimension;
    if (!(SEARCH_DIMENSION_NAMES as readonly string[]).includes(name)) {
      throw invalid(
        `search dimension "${String(name)}" is not one of ${SEARCH_DIMENSION_NAMES.join(', ')} (λ and learningRate have their own options)`,
        dimension,
      );
    }
    if (seen.has(name)) throw invalid(`search dimension "${name}" is listed twice; list each once`, dimension);
    seen.add(name);
    if ('choices' in dimension) {
      const { choices } = dimension;
      const sorted = Array.isArray(choices) && choices.length > 0 && choices.every((c, i) => Number.isFinite(c) && (i === 0 || c > choices[i - 1]));
      if (!sorted)
        throw invalid(`search dimension "${name}": choices ${JSON.stringify(choices)} must be a non-empty list of increasing finite numbers`, dimension);
      return { name, choices: [...choices] };
    }
    const { scale, min, max } = dimension;
    if (scale !== 'log' && scale !== 'linear') throw invalid(`search dimension "${name}": scale "${String(scale)}" is not "log" or "linear"`, dimension);
    if (!Number.isFinite(min) || !Number.isFinite(max) || !(min <= max) || (scale === 'log' && !(min > 0))) {
      throw invalid(
        `search dimension "${name}": range [${min}, ${max}] must be finite with min ≤ max${scale === 'log' ? ' and min > 0 on a log scale' : ''}`,
        dimension,
      );
    }
    return { name, scale, min, max };
  });
}

/** The value of a dimension at coordinate z, clipped to [−1, 1]. */
export function dimensionValue(dimension: SearchDimension, z: number): number {
  const t = (Math.max(-1, Math.min(1, z)) + 1) / 2;
  if ('choices' in dimension) {
    const { choices } = dimension;
    return choices[Math.min(choices.length - 1, Math.floor(t * choices.length))];
  }
  const { min, max } = dimension;
  const value = dimension.scale === 'log' ? Math.exp(Math.log(min) + t * (Math.log(max) - Math.log(min))) : min + t * (max - min);
  // exp∘log can land an ulp outside the range at its ends.
  return Math.min(max, Math.max(min, value));
}

/** The hyperparameters at the space's coordinates (the tail of a tuner's point). */
export function hyperparametersOf(space: readonly SearchDimension[], coordinates: readonly number[]): Record<string, number> {
  return Object.fromEntries(space.map((dimension, i) => [dimension.name, dimensionValue(dimension, coordinates[i])]));
}
