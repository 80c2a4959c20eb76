import type { Rng } from '#lib/domain/random/index.ts';
import { RouteError } from './errors.ts';

/**
 * Thompson sampling over the serving set: each request draws one plausible mean reward per version
 * from its posterior and goes to the highest draw, so traffic flows to a version in proportion to the
 * probability that it is the best. Posteriors come from counters that the feedback path updates
 * atomically (DynamoDB ADD), so a version's whole state is five numbers.
 *
 * - bernoulli (0/1 rewards: clicked, accepted): Beta(1 + successes, 1 + failures), a uniform prior.
 * - gaussian (real-valued rewards): Normal-Gamma over (mean, precision). Unless a prior is given, it
 *   is fitted to the pooled rewards of all arms (empirical Bayes): mean = the pooled mean, κ = 1
 *   pseudo-observation, α = 1, β = the pooled variance. The prior thus has the rewards' location and
 *   scale (no unit assumptions) yet weighs as one observation, and with α = 1 the marginal of a new
 *   version's mean is a heavy-tailed Student t (2 degrees of freedom): it gets explored, then judged
 *   on its own data.
 * - minShare (canary floor): with probability Σ minShare the request goes to an arm drawn in
 *   proportion to the floors, otherwise to the Thompson winner; so each arm gets at least its floor.
 */

export type RewardKind = 'bernoulli' | 'gaussian';

export interface ArmStats {
  /** Feedback events. */
  count: number;
  /** Σ reward and Σ reward² (gaussian). */
  sum: number;
  sumSquares: number;
  /** Rewards of 1 and of 0 (bernoulli). */
  successes: number;
  failures: number;
}

export interface Arm {
  version: string;
  kind: RewardKind;
  stats: ArmStats;
  /** The least share of traffic this version gets (a canary), in [0, 1]; floors sum to at most 1. */
  minShare?: number;
}

/** Normal-Gamma prior: mean ~ N(mean, 1/(kappa·τ)), precision τ ~ Gamma(alpha, rate beta). */
export interface GaussianPrior {
  mean: number;
  kappa: number;
  alpha: number;
  beta: number;
}

export interface RouteOptions {
  /** Overrides the pooled empirical-Bayes prior of gaussian arms. */
  gaussianPrior?: GaussianPrior;
}

export function emptyStats(): ArmStats {
  return { count: 0, sum: 0, sumSquares: 0, successes: 0, failures: 0 };
}

/** The counters after one feedback reward (the same increments the feedback path ADDs in DynamoDB). */
export function recordReward(stats: ArmStats, kind: RewardKind, reward: number): ArmStats {
  if (!Number.isFinite(reward)) {
    throw new RouteError(`reward ${reward} is not a finite number`, { code: 'ROUTE_REWARD_INVALID', context: { reward, kind } });
  }
  if (kind === 'bernoulli' && reward !== 0 && reward !== 1) {
    throw new RouteError(`reward ${reward} is not 0 or 1, as a bernoulli arm needs; send 0/1 or use a gaussian arm`, {
      code: 'ROUTE_REWARD_INVALID',
      context: { reward, kind },
    });
  }
  return {
    count: stats.count + 1,
    sum: stats.sum + reward,
    sumSquares: stats.sumSquares + reward * reward,
    successes: stats.successes + (kind === 'bernoulli' && reward === 1 ? 1 : 0),
    failures: stats.failures + (kind === 'bernoulli' && reward === 0 ? 1 : 0),
  };
}

function validateArms(arms: readonly Arm[]): void {
  if (arms.length === 0) {
    throw new RouteError('the serving set is empty; register at least one version to route to', { code: 'ROUTE_ARMS_INVALID' });
  }
  const versions = new Set<string>();
  let floors = 0;
  for (const arm of arms) {
    const context = { version: arm.version };
    if (versions.has(arm.version)) {
      throw new RouteError(`version "${arm.version}" appears twice in the serving set`, { code: 'ROUTE_ARMS_INVALID', context });
    }
    versions.add(arm.version);
    if (arm.kind !== arms[0].kind) {
      throw new RouteError(
        `version "${arm.version}" has ${arm.kind} rewards but "${arms[0].version}" has ${arms[0].kind}; one serving set routes on one kind of reward`,
        { code: 'ROUTE_ARMS_INVALID', context: { ...context, kind: arm.kind } },
      );
    }
    const { count, sum, sumSquares, successes, failures } = arm.stats;
    const counters = { count, sumSquares, successes, failures };
    for (const [name, value] of Object.entries(counters)) {
      if (!Number.isFinite(value) || value < 0) {
        throw new RouteError(`version "${arm.version}": counter ${name} is ${value}; counters are finite and ≥ 0`, {
          code: 'ROUTE_ARMS_INVALID',
          context: { ...context, [name]: value },
        });
      }
    }
    if (!Number.isFinite(sum)) {
      throw new RouteError(`version "${arm.version}": counter sum is ${sum}`, { code: 'ROUTE_ARMS_INVALID', context: { ...context, sum } });
    }
    const minShare = arm.minShare ?? 0;
    if (!(minShare >= 0 && minShare <= 1)) {
      throw new RouteError(`version "${arm.version}": minShare ${arm.minShare} must lie in [0, 1]`, {
        code: 'ROUTE_ARMS_INVALID',
        context: { ...context, minShare: arm.minShare },
      });
    }
    floors += minShare;
  }
  if (floors > 1 + 1e-12) {
    throw new RouteError(`the minShare floors sum to ${Number(floors.toFixed(6))}, more than all traffic; lower them to sum to at most 1`, {
      code: 'ROUTE_ARMS_INVALID',
      context: { floors },
    });
  }
}

/** The pooled empirical-Bayes prior for gaussian arms (see the module comment). */
export function pooledGaussianPrior(arms: readonly Arm[]): GaussianPrior {
  let n = 0;
  let sum = 0;
  let sumSquares = 0;
  for (const arm of arms) {
    n += arm.stats.count;
    sum += arm.stats.sum;
    sumSquares += arm.stats.sumSquares;
  }
  const mean = n > 0 ? sum / n : 0;
  const variance = n >= 2 ? Math.max(0, sumSquares / n - mean * mean) : 1;
  // All-equal rewards would give a zero-variance prior and a posterior that never moves again.
  return { mean, kappa: 1, alpha: 1, beta: Math.max(variance, 1e-6 * Math.max(1, mean * mean)) };
}

/** Normal-Gamma posterior update from the arm's count, sum and sum of squares. */
export function gaussianPosterior(stats: ArmStats, prior: GaussianPrior): GaussianPrior {
  const n = stats.count;
  if (n === 0) return { ...prior };
  const mean = stats.sum / n;
  const squaredDeviations = Math.max(0, stats.sumSquares - n * mean * mean);
  const kappa = prior.kappa + n;
  return {
    mean: (prior.kappa * prior.mean + n * mean) / kappa,
    kappa,
    alpha: prior.alpha + n / 2,
    beta: prior.beta + squaredDeviations / 2 + (prior.kappa * n * (mean - prior.mean) ** 2) / (2 * kappa),
  };
}

function sampleMean(arm: Arm, rng: Rng, prior: GaussianPrior): number {
  if (arm.kind === 'bernoulli') return rng.beta(1 + arm.stats.successes, 1 + arm.stats.failures);
  const posterior = gaussianPosterior(arm.stats, prior);
  const precision = rng.gamma(posterior.alpha) / posterior.beta;
  return posterior.mean + rng.normal() / Math.sqrt(posterior.kappa * precision);
}

function choose(arms: readonly Arm[], rng: Rng, prior: GaussianPrior): string {
  const floors = arms.reduce((sum, arm) => sum + (arm.minShare ?? 0), 0);
  if (floors > 0) {
    let u = rng.uniform();
    if (u < floors) {
      for (const arm of arms) {
        u -= arm.minShare ?? 0;
        if (u < 0) return arm.version;
      }
    }
  }
  let best = arms[0].version;
  let bestDraw = -Infinity;
  for (const arm of arms) {
    const draw = sampleMean(arm, rng, prior);
    if (draw > bestDraw) {
      bestDraw = draw;
      best = arm.version;
    }
  }
  return best;
}

function priorFor(arms: readonly Arm[], options: RouteOptions): GaussianPrior {
  const prior = options.gaussianPrior ?? pooledGaussianPrior(arms);
  if (!Number.isFinite(prior.mean) || !(prior.kappa > 0) || !(prior.alpha > 0) || !(prior.beta > 0)) {
    throw new RouteError(`gaussian prior ${JSON.stringify(prior)} needs a finite mean and kappa, alpha, beta > 0`, {
      code: 'ROUTE_ARMS_INVALID',
      context: { prior },
    });
  }
  return prior;
}

/** The version that serves one request. */
export function chooseArm(arms: readonly Arm[], rng: Rng, options: RouteOptions = {}): string {
  validateArms(arms);
  return choose(arms, rng, priorFor(arms, options));
}

/** Each version's share of traffic under the current posteriors, estimated from `samples` choices. */
export function trafficShares(arms: readonly Arm[], rng: Rng, samples: number, options: RouteOptions = {}): Record<string, number> {
  validateArms(arms);
  if (!Number.isSafeInteger(samples) || samples < 1) {
    throw new RouteError(`samples ${samples} must be a positive integer (Monte Carlo draws)`, { code: 'ROUTE_ARMS_INVALID', context: { samples } });
  }
  const prior = priorFor(arms, options);
  const counts = new Map(arms.map((arm) => [arm.version, 0]));
  for (let i = 0; i < samples; i += 1) {
    const version = choose(arms, rng, prior);
    counts.set(version, counts.get(version)! + 1);
  }
  return Object.fromEntries(arms.map((arm) => [arm.version, counts.get(arm.version)! / samples]));
}
