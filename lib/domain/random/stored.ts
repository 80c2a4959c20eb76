/**
 * A small seeded PRNG whose whole state is plain JSON, so a tuner (or a router, or a trainer) can
 * store it in DynamoDB and resume the exact same stream later. xoshiro128** (Blackman & Vigna) with
 * the seed expanded by splitmix32; normals by Box–Muller; Gamma by Marsaglia–Tsang.
 */

import { RandomError } from './errors.ts';

/** The generator's state: four uint32 words and the cached second Box–Muller normal. */
export interface RngState {
  words: [number, number, number, number];
  spareNormal: number | null;
}

/** A generator over a copy of a state; `snapshot()` returns the state to store. */
export interface Rng {
  /** Uniform on [0, 1) with 53 random bits. */
  uniform(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal. */
  normal(): number;
  /** Gamma(shape, scale 1), shape > 0. */
  gamma(shape: number): number;
  /** Beta(a, b), a > 0, b > 0. */
  beta(a: number, b: number): number;
  snapshot(): RngState;
}

function splitmix32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x9e3779b9) | 0;
    let t = a ^ (a >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
}

/** Hashes strings and numbers into a seed (FNV-1a), e.g. `hashSeed(runId, trialId)` for a trial's init. */
export function hashSeed(...parts: readonly (string | number)[]): number {
  let hash = 0x811c9dc5;
  for (const part of parts) {
    const text = `${typeof part}:${String(part)}\u0000`;
    for (let i = 0; i < text.length; i += 1) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193);
    }
  }
  return hash >>> 0;
}

/** The state for a seed; any safe integer (negative and > 2^32 included) gives its own stream. */
export function seedRng(seed: number): RngState {
  if (!Number.isSafeInteger(seed)) {
    throw new RandomError(`seed ${String(seed)} is not a safe integer; pass an integer such as 42 (or hashSeed("run-1"))`, {
      code: 'RANDOM_SEED_INVALID',
      context: { seed },
    });
  }
  const low = seed >>> 0;
  const high = Math.floor(seed / 2 ** 32) >>> 0;
  const next = splitmix32(low ^ Math.imul(high, 0x85ebca6b) ^ (seed < 0 ? 0x5bd1e995 : 0));
  const words: [number, number, number, number] = [next(), next(), next(), next()];
  if (words.every((word) => word === 0)) words[0] = 1; // xoshiro's one forbidden state
  return { words, spareNormal: null };
}

function isRngState(value: unknown): value is RngState {
  if (typeof value !== 'object' || value === null) return false;
  const { words, spareNormal } = value as Partial<RngState>;
  return (
    Array.isArray(words) &&
    words.length === 4 &&
    words.every((word) => Number.isInteger(word) && word >= 0 && word <= 0xffffffff) &&
    words.some((word) => word !== 0) &&
    (spareNormal === null || (typeof spareNormal === 'number' && Number.isFinite(spareNormal)))
  );
}

/** A generator from a seed or a stored state; the state passed in is copied, never mutated. */
export function createRng(seedOrState: number | RngState): Rng {
  let state: RngState;
  if (typeof seedOrState === 'number') state = seedRng(seedOrState);
  else if (isRngState(seedOrState)) state = { words: [...seedOrState.words], spareNormal: seedOrState.spareNormal };
  else {
    throw new RandomError(`not a generator state: ${JSON.stringify(seedOrState)}; pass a seed or a state from snapshot()`, {
      code: 'RANDOM_STATE_INVALID',
      context: { state: seedOrState },
    });
  }
  const s = state.words;
  let spare = state.spareNormal;

  const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));
  const nextWord = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    for (let i = 0; i < 4; i += 1) s[i] >>>= 0;
    return result;
  };
  const uniform = (): number => ((nextWord() >>> 5) * 67108864 + (nextWord() >>> 6)) / 9007199254740992;
  const normal = (): number => {
    if (spare !== null) {
      const value = spare;
      spare = null;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - uniform())); // 1 - u lies in (0, 1], so the log is finite
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
  const gamma = (shape: number): number => {
    if (!(shape > 0) || !Number.isFinite(shape)) {
      throw new RandomError(`gamma shape ${shape} must be a finite number > 0`, { code: 'RANDOM_ARGUMENT_INVALID', context: { shape } });
    }
    if (shape < 1) {
      // Boost: Gamma(a) = Gamma(a + 1) · U^(1/a) (Marsaglia & Tsang 2000, section 6).
      return gamma(shape + 1) * Math.pow(1 - uniform(), 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = 1 - uniform();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  };
  return {
    uniform,
    int(n: number): number {
      if (!Number.isSafeInteger(n) || n <= 0) {
        throw new RandomError(`int(n) needs a positive integer n, got ${n}`, { code: 'RANDOM_ARGUMENT_INVALID', context: { n } });
      }
      return Math.floor(uniform() * n);
    },
    normal,
    gamma,
    beta(a: number, b: number): number {
      const x = gamma(a);
      const y = gamma(b);
      return x / (x + y);
    },
    snapshot: (): RngState => ({ words: [s[0], s[1], s[2], s[3]], spareNormal: spare }),
  };
}
