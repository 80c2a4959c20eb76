export type SplitName = 'train' | 'validation' | 'holdout';

export interface SplitOptions {
  validationFraction: number;
  holdoutFraction: number;
  seed: number;
}

/**
 * Which split a row belongs to, from a hash of (seed, key): the same row lands in the same split on
 * every run and every machine, whatever order the rows are read in, and adding rows never moves
 * existing ones. Keys are compared as strings, so row index 5 and key "5" agree.
 */
export function splitOf(key: number | string, options: SplitOptions): SplitName {
  const u = unitHash(`${options.seed}\u0000${key}`);
  if (u < options.holdoutFraction) return 'holdout';
  if (u < options.holdoutFraction + options.validationFraction) return 'validation';
  return 'train';
}

/** A uniform number in [0, 1) from a string: FNV-1a over UTF-16 code units, then murmur3's finalizer. */
function unitHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 4294967296;
}
