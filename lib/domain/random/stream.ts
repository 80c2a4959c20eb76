/** The stream that is never stored: generated datasets, shuffles, initial weights, dropout masks. */

/** mulberry32: 32-bit state, period 2^32, uniform doubles in [0, 1) with 32 bits of entropy. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seed for an independent stream derived from a parent seed and a label (FNV-1a over the label,
 * mixed with the seed), so that, say, the mask stream does not shift when a label option changes.
 */
export function deriveSeed(seed: number, label: string): number {
  let hash = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < label.length; i++) {
    hash ^= label.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return hash >>> 0;
}

export class Random {
  readonly uniform: () => number;
  private spareNormal: number | undefined;

  constructor(seed: number) {
    this.uniform = mulberry32(seed);
  }

  /** Standard normal by Box–Muller; the second value of each pair is kept for the next call. */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const value = this.spareNormal;
      this.spareNormal = undefined;
      return value;
    }
    // 1 − u lies in (0, 1], so the log is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Standard Gumbel: argmax(logits + gumbel) samples from softmax(logits). */
  gumbel(): number {
    const u = Math.min(Math.max(this.uniform(), 1e-12), 1 - 1e-12);
    return -Math.log(-Math.log(u));
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
}
