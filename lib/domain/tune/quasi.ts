import { TuneError } from './errors.ts';
import type { Rng } from '#lib/domain/random/index.ts';

/**
 * Quasi-random points for a tuner's first generation: a Halton sequence (one prime base per
 * coordinate) with a random shift per coordinate (Cranley–Patterson rotation), so each seed gets
 * its own well-spread set. A handful of independent draws clump and leave holes; these fill the
 * cube evenly, so a small first generation sees more of a wide good region.
 */

const PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113];

/** The radical inverse of `index` in `base`: its digits mirrored behind the point. */
function radicalInverse(index: number, base: number): number {
  let result = 0;
  let fraction = 1 / base;
  for (let i = index; i > 0; i = Math.floor(i / base)) {
    result += (i % base) * fraction;
    fraction /= base;
  }
  return result;
}

/** `count` points in [0, 1)^dims, shifted by uniform draws from `rng` (one per coordinate). */
export function shiftedHalton(count: number, dims: number, rng: Rng): number[][] {
  if (dims > PRIMES.length) {
    throw new TuneError(`a quasi-random generation spans at most ${PRIMES.length} coordinates, got ${dims}; search fewer tasks and dimensions`, {
      code: 'TUNE_CONFIG_INVALID',
      context: { dims },
    });
  }
  const shift = Array.from({ length: dims }, () => rng.uniform());
  // From index 0 (the origin, moved off the corner by the shift): the first 2^m points in base 2 are then exactly the multiples of 2^−m, one per stratum.
  return Array.from({ length: count }, (_, k) => shift.map((s, d) => (radicalInverse(k, PRIMES[d]) + s) % 1));
}

/**
 * The standard normal quantile Φ⁻¹(p) for p in (0, 1) (Acklam's rational approximation, relative
 * error under 1.2e-9, ample for sampling).
 */
export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  // Keep the tails finite: a shifted point can land on 0.
  const q = Math.min(1 - 1e-12, Math.max(1e-12, p));
  if (q < 0.02425) {
    const t = Math.sqrt(-2 * Math.log(q));
    return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1);
  }
  if (q > 1 - 0.02425) return -normalQuantile(1 - q);
  const t = q - 0.5;
  const r = t * t;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * t) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}
