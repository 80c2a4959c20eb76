import { describe, expect, it } from 'vitest';
import { createTuner, dimensionEffects, dimensionValue, validateSpace, type PgpeState, type Proposal, type SearchDimension } from '#lib/domain/tune/index.ts';
import { createRng } from '#lib/domain/random/index.ts';

const TASKS = ['a', 'b'];
const SPACE: SearchDimension[] = [
  { name: 'weightDecay', scale: 'log', min: 1e-6, max: 1e-2 },
  { name: 'width', choices: [16, 32, 64, 128] },
  { name: 'dropout', scale: 'linear', min: 0, max: 0.5 },
];

/** Best at weight decay 1e-4, width 64, dropout 0.1; λ and lr do not matter. */
function reward(proposal: Proposal): number {
  const h = proposal.hyperparameters!;
  return -((Math.log10(h.weightDecay) + 4) ** 2) - Math.abs(Math.log2(h.width) - 6) - 4 * (h.dropout - 0.1) ** 2;
}

describe('search space', () => {
  it('maps a coordinate to each dimension: log and linear ranges end to end, choices in equal bins', () => {
    expect(dimensionValue(SPACE[0], -1)).toBeCloseTo(1e-6, 15);
    expect(dimensionValue(SPACE[0], 0)).toBeCloseTo(1e-4, 12);
    expect(dimensionValue(SPACE[0], 5)).toBeCloseTo(1e-2, 12);
    expect(dimensionValue(SPACE[2], 0)).toBeCloseTo(0.25, 12);
    expect([-1, -0.6, -0.4, 0.1, 0.6, 1].map((z) => dimensionValue(SPACE[1], z))).toEqual([16, 16, 32, 64, 128, 128]);
  });

  it('rejects unknown, repeated and malformed dimensions with the fix in the message', () => {
    expect(() => validateSpace([{ name: 'momentum' as never, scale: 'log', min: 1, max: 2 }])).toThrow(/"momentum" is not one of weightDecay, width/);
    expect(() => validateSpace([SPACE[1], SPACE[1]])).toThrow(/listed twice/);
    expect(() => validateSpace([{ name: 'depth', choices: [3, 2] }])).toThrow(/increasing finite numbers/);
    expect(() => validateSpace([{ name: 'weightDecay', scale: 'log', min: 0, max: 1 }])).toThrow(/min > 0 on a log scale/);
    expect(() =>
      createTuner({ kind: 'pgpe' }).init({ taskNames: TASKS, population: 2, seed: 1, space: [{ name: 'dropout', scale: 'linear', min: 1, max: 0 }] }),
    ).toThrow(/range \[1, 0\] must be finite with min ≤ max/);
  });

  it('PGPE searches the named dimensions as Gaussian coordinates and climbs to the best values', () => {
    const tuner = createTuner({ kind: 'pgpe' });
    let state: PgpeState = tuner.init({ taskNames: TASKS, tuneLearningRate: true, space: SPACE, population: 8, seed: 3 });
    expect(state.dims).toEqual(['a', 'b', 'learningRate', 'weightDecay', 'width', 'dropout']);
    let first: number | undefined;
    for (let g = 0; g < 40; g += 1) {
      const { state: pending, proposals } = tuner.propose(state);
      for (const p of proposals) {
        expect(p.hyperparameters!.weightDecay >= 1e-6 && p.hyperparameters!.weightDecay <= 1e-2).toBe(true);
        expect([16, 32, 64, 128]).toContain(p.hyperparameters!.width);
        expect(p.hyperparameters!.dropout >= 0 && p.hyperparameters!.dropout <= 0.5).toBe(true);
      }
      const rewards = proposals.map(reward);
      first ??= rewards.reduce((a, b) => a + b, 0) / rewards.length;
      state = tuner.update(
        pending,
        proposals.map((p, i) => ({ trialId: p.trialId, reward: rewards[i] })),
      );
    }
    const mean = tuner.propose({ ...state, sigma: state.sigma.map(() => 1e-9) }).proposals[0];
    expect(mean.hyperparameters!.width).toBe(64);
    expect(Math.log10(mean.hyperparameters!.weightDecay)).toBeCloseTo(-4, 0);
    expect(Math.abs(mean.hyperparameters!.dropout - 0.1)).toBeLessThan(0.08);
    expect(state.best!.hyperparameters).toBeDefined();
    expect(state.history.at(-1)!.hyperparameters).toBeDefined();
    expect(state.best!.reward).toBeGreaterThan(first!);
  });

  it('random search draws every dimension inside its range; fixed uniform proposes each middle', () => {
    const random = createTuner({ kind: 'random' });
    const { proposals } = random.propose(random.init({ taskNames: TASKS, space: SPACE, population: 50, seed: 5 }));
    expect(new Set(proposals.map((p) => p.hyperparameters!.width)).size).toBe(4);
    for (const p of proposals) expect(p.hyperparameters!.dropout >= 0 && p.hyperparameters!.dropout <= 0.5).toBe(true);
    const uniform = createTuner({ kind: 'uniform' });
    const [middle] = uniform.propose(uniform.init({ taskNames: TASKS, space: SPACE, population: 1, seed: 5 })).proposals;
    expect(middle.hyperparameters!.weightDecay).toBeCloseTo(1e-4, 12);
    expect(middle.hyperparameters!.width).toBe(64);
  });

  it('a warm start keeps a dimension the new space still searches and starts an added one at its middle', () => {
    const tuner = createTuner({ kind: 'pgpe' });
    const stored = { ...tuner.init({ taskNames: TASKS, space: [SPACE[0]], population: 2, seed: 1 }) };
    stored.mu = [0.3, -0.3, 0.7];
    stored.sigma = [0.6, 0.6, 0.2];
    const resumed = tuner.init({ taskNames: TASKS, space: [SPACE[2], SPACE[0]], population: 2, seed: 1, warmStart: stored });
    expect(resumed.dims).toEqual(['a', 'b', 'dropout', 'weightDecay']);
    expect(resumed.mu).toEqual([0.3, -0.3, 0, 0.7]);
    expect(resumed.sigma).toEqual([0.6, 0.6, 0.6, 0.2]);
  });
});

describe('PGPE first generation', () => {
  const bin = (e: number, sigma: number, bins: number): number => Math.floor(bins * normalCdf(e / sigma));
  // Φ by erf's Abramowitz–Stegun 7.1.26 (error below 1.5e-7): enough to bin a quantile.
  function normalCdf(x: number): number {
    const t = 1 / (1 + 0.3275911 * (Math.abs(x) / Math.SQRT2));
    const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-(x * x) / 2);
    return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
  }

  it("spreads a fresh policy's perturbations over the quantiles: one pair in each of population/2 equal-probability bins", () => {
    const tuner = createTuner({ kind: 'pgpe', hyperparameters: { firstGeneration: 'quasi' } });
    for (const seed of [1, 2, 3]) {
      const { proposals } = tuner.propose(tuner.init({ taskNames: ['a', 'b', 'c'], population: 16, seed }));
      const plus = proposals.filter((_, i) => i % 2 === 0);
      // Halton's base-2 coordinate puts one of 8 points in each eighth of [0, 1), a shift keeps that.
      expect(new Set(plus.map((p) => bin(p.noise![0], 0.6, 8))).size).toBe(8);
    }
    const gaussian = createTuner({ kind: 'pgpe', hyperparameters: { firstGeneration: 'gaussian' } });
    const draws = [1, 2, 3].map(
      (seed) =>
        new Set(
          gaussian
            .propose(gaussian.init({ taskNames: ['a', 'b', 'c'], population: 16, seed }))
            .proposals.filter((_, i) => i % 2 === 0)
            .map((p) => bin(p.noise![0], 0.6, 8)),
        ).size,
    );
    expect(Math.min(...draws)).toBeLessThan(8);
  });

  it("draws later generations, and a warm start's first, independently", () => {
    const tuner = createTuner({ kind: 'pgpe', hyperparameters: { firstGeneration: 'quasi' } });
    const fresh = tuner.init({ taskNames: ['a', 'b'], population: 4, seed: 9 });
    const first = tuner.propose(fresh);
    const next = tuner.update(
      first.state,
      first.proposals.map((p, i) => ({ trialId: p.trialId, reward: i })),
    );
    const gaussian = createTuner({ kind: 'pgpe', hyperparameters: { firstGeneration: 'gaussian' } });
    const same = gaussian.update(
      gaussian.propose(gaussian.init({ taskNames: ['a', 'b'], population: 4, seed: 9 })).state,
      first.proposals.map((p, i) => ({ trialId: p.trialId, reward: i })),
    );
    // Generation 1 draws N(0, σ²) as the gaussian tuner does; only the stream position differs.
    expect(tuner.propose(next).proposals).toHaveLength(4);
    expect(tuner.propose({ ...next, rng: same.rng, mu: same.mu, sigma: same.sigma }).proposals).toEqual(gaussian.propose(same).proposals);
    const warm = tuner.init({ taskNames: ['a', 'b'], population: 4, seed: 9, warmStart: next });
    expect(tuner.propose(warm).proposals).toEqual(gaussian.propose({ ...warm, hyper: { ...warm.hyper, firstGeneration: 'gaussian' } }).proposals);
    expect(() => createTuner({ kind: 'pgpe', hyperparameters: { firstGeneration: 'sobol' as never } })).toThrow(
      /firstGeneration "sobol" is not "quasi" or "gaussian"/,
    );
  });
});

describe('dimension effects', () => {
  const space: SearchDimension[] = [
    { name: 'weightDecay', scale: 'log', min: 1e-6, max: 1e-2 },
    { name: 'width', choices: [16, 32, 64, 128] },
  ];
  // Drawn independently, as a tuner draws its coordinates.
  const draw = createRng(4);
  const trials = Array.from({ length: 32 }, (_, k) => {
    const generation = Math.floor(k / 8);
    const weightDecay = 10 ** (-6 + 4 * draw.uniform());
    const width = [16, 32, 64, 128][draw.int(4)];
    // Later generations do better overall, and they happen to try wider layers: only centring per generation tells the two apart.
    const drift = 0.05 * generation;
    const noise = 0.002 * draw.normal();
    return {
      group: `r/${generation}`,
      hyperparameters: { weightDecay, width: generation >= 2 ? Math.max(width, 64) : width },
      reward: 0.5 + drift - 0.01 * Math.log10(weightDecay) + noise,
    };
  });

  it('measures each effect across the range within generations, and calls flat what is below twice its standard error', () => {
    const [decay, width] = dimensionEffects(space, trials);
    expect(decay.effect!).toBeCloseTo(-0.04, 2);
    expect(decay.flat).toBe(false);
    expect(Math.abs(width.effect!)).toBeLessThan(2 * width.standardError!);
    expect(width.flat).toBe(true);
    // A generation that tried a single width says nothing about width, so its trials do not count.
    const variedGroups = new Set(
      trials.map((t) => t.group).filter((g) => new Set(trials.filter((t) => t.group === g).map((t) => t.hyperparameters.width)).size > 1),
    );
    expect(width.trials).toBe(8 * variedGroups.size);
    const best = trials.reduce((top, t) => (t.reward > top.reward ? t : top));
    expect(width.bestValue).toBe(best.hyperparameters.width);
  });

  it('judges nothing on too few varied trials', () => {
    const [decay] = dimensionEffects(space, trials.slice(0, 5));
    expect(decay).toMatchObject({ effect: null, standardError: null, flat: false, trials: 5 });
    expect(
      dimensionEffects(
        space,
        trials.map((t) => ({ ...t, hyperparameters: { ...t.hyperparameters, weightDecay: 1e-4 } })),
      )[0],
    ).toMatchObject({ trials: 0, flat: false });
  });

  it('proposals carry the fixed values beside the searched ones', () => {
    const tuner = createTuner({ kind: 'pgpe' });
    const { proposals } = tuner.propose(tuner.init({ taskNames: TASKS, space: [space[0]], fixed: { width: 64 }, population: 2, seed: 1 }));
    expect(proposals.every((p) => p.hyperparameters!.width === 64 && p.hyperparameters!.weightDecay > 0)).toBe(true);
    expect(() => tuner.init({ taskNames: TASKS, space, fixed: { width: 64 }, population: 2, seed: 1 })).toThrow(/"width" is both searched and fixed/);
  });
});
