/**
 * The tests' one seeded PRNG: lib/domain/random's mulberry32, so test data is reproducible and drawn the
 * way generated datasets are.
 */
import { mulberry32 } from '#lib/domain/random/index.ts';

/** Uniform doubles in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  return mulberry32(seed);
}

/** Uniform doubles in [-1, 1), the same sequence for the same seed. */
export function seededNoise(seed: number): () => number {
  const random = mulberry32(seed);
  return () => random() * 2 - 1;
}
