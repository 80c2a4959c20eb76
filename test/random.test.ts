import { describe, expect, it } from 'vitest';
import { createRng, hashSeed, RandomError, seedRng } from '#lib/domain/random/index.ts';

function moments(draw: () => number, n: number): { mean: number; variance: number } {
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < n; i += 1) {
    const x = draw();
    sum += x;
    sumSquares += x * x;
  }
  const mean = sum / n;
  return { mean, variance: sumSquares / n - mean * mean };
}

describe('seeded generator', () => {
  it('repeats the same stream for the same seed and differs between seeds', () => {
    const draw = (seed: number): number[] => {
      const rng = createRng(seed);
      return Array.from({ length: 8 }, () => rng.uniform());
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    expect(draw(2 ** 40)).not.toEqual(draw(0));
    expect(draw(-1)).not.toEqual(draw(1));
  });

  it('resumes exactly from a snapshot that went through JSON', () => {
    const rng = createRng(7);
    rng.normal(); // leaves a cached Box–Muller spare in the state
    const stored = JSON.parse(JSON.stringify(rng.snapshot()));
    const continued = Array.from({ length: 5 }, () => rng.normal());
    const resumed = createRng(stored);
    expect(Array.from({ length: 5 }, () => resumed.normal())).toEqual(continued);
  });

  it('does not mutate the state it was created from', () => {
    const state = seedRng(3);
    const copy = structuredClone(state);
    createRng(state).uniform();
    expect(state).toEqual(copy);
  });

  it('draws uniforms in [0, 1) and integers in [0, n)', () => {
    const rng = createRng(11);
    for (let i = 0; i < 10_000; i += 1) {
      const u = rng.uniform();
      expect(u >= 0 && u < 1).toBe(true);
      const k = rng.int(6);
      expect(Number.isInteger(k) && k >= 0 && k < 6).toBe(true);
    }
    const { mean, variance } = moments(() => rng.uniform(), 50_000);
    expect(mean).toBeCloseTo(0.5, 2);
    expect(variance).toBeCloseTo(1 / 12, 2);
  });

  it('draws standard normals', () => {
    const rng = createRng(5);
    const { mean, variance } = moments(() => rng.normal(), 100_000);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
  });

  it.each([0.3, 1, 2.5, 40])('draws Gamma(%d) with mean and variance equal to the shape', (shape) => {
    const rng = createRng(hashSeed('gamma', shape));
    const { mean, variance } = moments(() => rng.gamma(shape), 60_000);
    expect(Math.abs(mean - shape) / shape).toBeLessThan(0.02);
    expect(Math.abs(variance - shape) / shape).toBeLessThan(0.05);
  });

  it('draws Beta(a, b) with mean a / (a + b)', () => {
    const rng = createRng(9);
    const { mean, variance } = moments(() => rng.beta(3, 7), 60_000);
    expect(mean).toBeCloseTo(0.3, 2);
    expect(variance).toBeCloseTo((3 * 7) / (10 * 10 * 11), 3);
  });

  it('hashes parts into distinct seeds', () => {
    expect(hashSeed('run-1', 't0')).toBe(hashSeed('run-1', 't0'));
    expect(hashSeed('run-1', 't0')).not.toBe(hashSeed('run-1', 't1'));
    expect(hashSeed('1')).not.toBe(hashSeed(1));
  });

  it('rejects seeds that are not safe integers and corrupt states', () => {
    expect(() => seedRng(1.5)).toThrow(RandomError);
    expect(() => createRng({ words: [0, 0, 0, 0], spareNormal: null })).toThrow(/not a generator state/);
    expect(() => createRng(1).gamma(0)).toThrow(/shape 0/);
  });
});
