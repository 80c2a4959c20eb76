import { describe, expect, it } from 'vitest';
import { chooseArm, emptyStats, gaussianPosterior, recordReward, RouteError, trafficShares, type Arm, type RewardKind } from '#lib/domain/route/index.ts';
import { createRng, type Rng } from '#lib/domain/random/index.ts';

function armsOf(kind: RewardKind, versions: readonly string[]): Arm[] {
  return versions.map((version) => ({ version, kind, stats: emptyStats() }));
}

/**
 * Serves `events` requests through the router, feeds back a reward drawn from each version's true
 * distribution, and returns the arms, the expected regret against always serving the best version,
 * and the regret a uniform split would have had.
 */
function simulate(options: { arms: Arm[]; trueMeans: Record<string, number>; draw: (version: string, rng: Rng) => number; events: number; seed: number }): {
  arms: Arm[];
  regret: number;
  uniformRegret: number;
} {
  const router = createRng(options.seed);
  const world = createRng(options.seed + 1);
  const means = Object.values(options.trueMeans);
  const best = Math.max(...means);
  let arms = options.arms;
  let regret = 0;
  for (let i = 0; i < options.events; i += 1) {
    const version = chooseArm(arms, router);
    regret += best - options.trueMeans[version];
    const reward = options.draw(version, world);
    arms = arms.map((arm) => (arm.version === version ? { ...arm, stats: recordReward(arm.stats, arm.kind, reward) } : arm));
  }
  const uniformRegret = options.events * (best - means.reduce((a, b) => a + b, 0) / means.length);
  return { arms, regret, uniformRegret };
}

describe('Thompson sampling router', () => {
  it('sends at least 90% of traffic to the best of three bernoulli versions after 5000 events', () => {
    const trueMeans = { v1: 0.3, v2: 0.5, v3: 0.6 };
    const { arms, regret, uniformRegret } = simulate({
      arms: armsOf('bernoulli', ['v1', 'v2', 'v3']),
      trueMeans,
      draw: (version, rng) => (rng.uniform() < trueMeans[version as keyof typeof trueMeans] ? 1 : 0),
      events: 5000,
      seed: 2024,
    });
    const shares = trafficShares(arms, createRng(1), 20_000);
    const ratio = regret / uniformRegret;
    console.log(`bernoulli: shares ${JSON.stringify(shares)}, regret ${regret.toFixed(1)} vs uniform ${uniformRegret.toFixed(1)} (ratio ${ratio.toFixed(3)})`);
    expect(shares.v3).toBeGreaterThanOrEqual(0.9);
    expect(ratio).toBeLessThanOrEqual(0.3);
    expect(arms.reduce((sum, arm) => sum + arm.stats.count, 0)).toBe(5000);
  });

  it('sends at least 90% of traffic to the best of three gaussian versions after 5000 events', () => {
    const trueMeans = { a: 1.0, b: 1.3, c: 1.6 };
    const { arms, regret, uniformRegret } = simulate({
      arms: armsOf('gaussian', ['a', 'b', 'c']),
      trueMeans,
      draw: (version, rng) => trueMeans[version as keyof typeof trueMeans] + rng.normal(),
      events: 5000,
      seed: 7,
    });
    const shares = trafficShares(arms, createRng(2), 20_000);
    const ratio = regret / uniformRegret;
    console.log(`gaussian: shares ${JSON.stringify(shares)}, regret ${regret.toFixed(1)} vs uniform ${uniformRegret.toFixed(1)} (ratio ${ratio.toFixed(3)})`);
    expect(shares.c).toBeGreaterThanOrEqual(0.9);
    expect(ratio).toBeLessThanOrEqual(0.3);
  });

  it('does not depend on the reward unit for gaussian arms', () => {
    const stats = (mean: number, scale: number): Arm['stats'] => {
      let s = emptyStats();
      const rng = createRng(3);
      for (let i = 0; i < 200; i += 1) s = recordReward(s, 'gaussian', scale * (mean + rng.normal()));
      return s;
    };
    const arms = (scale: number): Arm[] => [
      { version: 'a', kind: 'gaussian', stats: stats(1, scale) },
      { version: 'b', kind: 'gaussian', stats: stats(1.2, scale) },
    ];
    const unit = trafficShares(arms(1), createRng(4), 5000);
    const cents = trafficShares(arms(100), createRng(4), 5000);
    expect(cents.b).toBeCloseTo(unit.b, 1);
  });

  it('splits traffic evenly between versions without feedback', () => {
    const shares = trafficShares(armsOf('bernoulli', ['a', 'b', 'c', 'd']), createRng(5), 20_000);
    for (const share of Object.values(shares)) expect(Math.abs(share - 0.25)).toBeLessThan(0.02);
  });

  it('honours a canary floor for a clearly worse version', () => {
    const arms: Arm[] = [
      { version: 'prod', kind: 'bernoulli', stats: { ...emptyStats(), count: 4000, successes: 2400, failures: 1600 } },
      { version: 'canary', kind: 'bernoulli', stats: { ...emptyStats(), count: 1000, successes: 300, failures: 700 }, minShare: 0.1 },
    ];
    const shares = trafficShares(arms, createRng(6), 20_000);
    expect(shares.canary).toBeGreaterThan(0.1 - 3 * Math.sqrt((0.1 * 0.9) / 20_000));
    expect(shares.canary).toBeLessThan(0.12);
    const withoutFloor = trafficShares(
      arms.map((arm) => ({ ...arm, minShare: undefined })),
      createRng(6),
      20_000,
    );
    expect(withoutFloor.canary).toBeLessThan(0.01);
  });

  it('chooses the same versions for the same seed', () => {
    const arms = armsOf('bernoulli', ['a', 'b', 'c']);
    const run = (): string[] => {
      const rng = createRng(8);
      return Array.from({ length: 50 }, () => chooseArm(arms, rng));
    };
    expect(run()).toEqual(run());
  });

  it('updates the Normal-Gamma posterior towards the data', () => {
    let stats = emptyStats();
    for (const reward of [2, 4, 6]) stats = recordReward(stats, 'gaussian', reward);
    const posterior = gaussianPosterior(stats, { mean: 0, kappa: 1, alpha: 1, beta: 1 });
    expect(posterior.kappa).toBe(4);
    expect(posterior.mean).toBeCloseTo(3, 12); // (1·0 + 3·4) / 4
    expect(posterior.alpha).toBe(2.5);
    expect(posterior.beta).toBeCloseTo(1 + 8 / 2 + (1 * 3 * 16) / (2 * 4), 12);
  });

  it('counts rewards the way the feedback path adds them', () => {
    const after = recordReward(recordReward(emptyStats(), 'bernoulli', 1), 'bernoulli', 0);
    expect(after).toEqual({ count: 2, sum: 1, sumSquares: 1, successes: 1, failures: 1 });
  });

  it.each([
    { arms: [], message: /serving set is empty/ },
    { arms: [...armsOf('bernoulli', ['a']), ...armsOf('bernoulli', ['a'])], message: /appears twice/ },
    { arms: [...armsOf('bernoulli', ['a']), ...armsOf('gaussian', ['b'])], message: /one kind of reward/ },
    { arms: [{ version: 'a', kind: 'bernoulli', stats: { ...emptyStats(), failures: -1 } }], message: /counter failures is -1/ },
    {
      arms: [
        { ...armsOf('bernoulli', ['a'])[0], minShare: 0.7 },
        { ...armsOf('bernoulli', ['b'])[0], minShare: 0.6 },
      ],
      message: /sum to 1.3/,
    },
  ] as { arms: Arm[]; message: RegExp }[])('rejects an invalid serving set: $message', ({ arms, message }) => {
    expect(() => chooseArm(arms, createRng(1))).toThrow(message);
  });

  it('rejects a reward its arm cannot count', () => {
    expect(() => recordReward(emptyStats(), 'bernoulli', 0.5)).toThrow(RouteError);
    expect(() => recordReward(emptyStats(), 'gaussian', Number.NaN)).toThrow(/not a finite number/);
  });
});
