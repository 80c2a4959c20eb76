import { baseState, coordinateNames, pendingProposals, recordResults, resumeBase, trialIdOf } from './common.ts';
import { TuneError } from './errors.ts';
import { normalQuantile, shiftedHalton } from './quasi.ts';
import { createRng } from '#lib/domain/random/index.ts';
import type { PendingTrial, Proposal, TrialResult, Tuner, TunerInit, TunerStateBase } from './types.ts';

/**
 * PGPE (Sehnke et al. 2010, "Parameter-exploring policy gradients") over the task logits θ, plus the
 * lr coordinate when the learning rate is tuned. Each generation draws population/2 perturbations
 * ε ~ N(0, diag σ²) and evaluates the symmetric pair μ + ε, μ − ε. Rewards are replaced by centered
 * ranks in [−0.5, 0.5] (robust to the reward's scale and to outliers such as floor penalties), whose
 * mean is the baseline. Then
 *   g_μ = mean over pairs of (f⁺ − f⁻)/2 · ε                      (the baseline cancels in the pair)
 *   g_σ = mean over pairs of ((f⁺ + f⁻)/2 − b) · (ε² − σ²)/σ
 * μ takes an Adam ascent step on g_μ of about `stepSize`·σ_i/`sigmaInit` per dimension, whatever the
 * reward's scale: the step starts at `stepSize` and contracts with σ, so the policy settles on an
 * optimum instead of jittering around it at Adam's constant step. σ takes a plain step of `sigmaStepSize`·g_σ, limited to ±`sigmaMaxChange`·σ per
 * generation and clipped to [sigmaMin, sigmaMax]. A failed trial drops its whole pair: a lone half of
 * a pair has no partner to difference against.
 */
export interface PgpeHyperparameters {
  /** Initial exploration σ per coordinate (logits; the lr coordinate spans [−1, 1]). */
  sigmaInit: number;
  sigmaMin: number;
  sigmaMax: number;
  /** The largest relative change of σ in one generation. */
  sigmaMaxChange: number;
  /**
   * Adam step size for μ. Large enough that μ crosses from uniform λ to a corner of the simplex
   * within a few generations (on `bench tune`'s three-task section a smaller step lost to random
   * search), small enough not to overshoot a narrow optimum (its four-task and surrogate sections).
   */
  stepSize: number;
  sigmaStepSize: number;
  beta1: number;
  beta2: number;
  /**
   * How a fresh policy draws its first generation's perturbations: `quasi` maps shifted Halton
   * points through Φ⁻¹ (still N(0, σ²) per coordinate, but spread evenly, so the first few trials
   * cover more of a wide good region); `gaussian` draws them independently. Default `gaussian`:
   * on the tune bench's surrogate the quasi start did not reach the targets in fewer trials.
   */
  firstGeneration: 'quasi' | 'gaussian';
}

export const PGPE_DEFAULTS: Readonly<PgpeHyperparameters> = {
  sigmaInit: 0.6,
  sigmaMin: 0.05,
  sigmaMax: 2,
  sigmaMaxChange: 0.2,
  stepSize: 0.5,
  sigmaStepSize: 0.3,
  beta1: 0.8,
  beta2: 0.99,
  firstGeneration: 'gaussian',
};

export interface PgpeState extends TunerStateBase<'pgpe'> {
  hyper: PgpeHyperparameters;
  /** Coordinate names: the task names, then `learningRate` when it is tuned, then the space's dimensions. */
  dims: string[];
  mu: number[];
  sigma: number[];
  adam: { m: number[]; v: number[]; step: number };
  /** The mean reward of the last generation's successful trials (for progress reports). */
  lastMeanReward: number | null;
}

/** Centered ranks in [−0.5, 0.5]; tied rewards share their average rank. */
export function centeredRanks(values: readonly number[]): number[] {
  const n = values.length;
  if (n === 1) return [0];
  const order = values.map((value, index) => ({ value, index })).sort((a, b) => a.value - b.value);
  const ranks = new Array<number>(n);
  for (let start = 0; start < n;) {
    let end = start;
    while (end + 1 < n && order[end + 1].value === order[start].value) end += 1;
    const rank = (start + end) / 2;
    for (let k = start; k <= end; k += 1) ranks[order[k].index] = rank / (n - 1) - 0.5;
    start = end + 1;
  }
  return ranks;
}

function validateHyper(hyper: PgpeHyperparameters): PgpeHyperparameters {
  const positive = ['sigmaInit', 'sigmaMin', 'sigmaMax', 'sigmaMaxChange', 'stepSize'] as const;
  for (const key of positive) {
    if (!(hyper[key] > 0) || !Number.isFinite(hyper[key])) {
      throw new TuneError(`PGPE ${key} ${hyper[key]} must be a finite number > 0`, { code: 'TUNE_CONFIG_INVALID', context: { [key]: hyper[key] } });
    }
  }
  if (!(hyper.sigmaStepSize >= 0) || !(hyper.sigmaMin <= hyper.sigmaInit && hyper.sigmaInit <= hyper.sigmaMax)) {
    throw new TuneError(
      `PGPE needs sigmaStepSize ≥ 0 and sigmaMin ≤ sigmaInit ≤ sigmaMax, got ${hyper.sigmaStepSize}, ${hyper.sigmaMin} ≤ ${hyper.sigmaInit} ≤ ${hyper.sigmaMax}`,
      { code: 'TUNE_CONFIG_INVALID', context: { ...hyper } },
    );
  }
  if (hyper.firstGeneration !== 'quasi' && hyper.firstGeneration !== 'gaussian') {
    throw new TuneError(`PGPE firstGeneration "${String(hyper.firstGeneration)}" is not "quasi" or "gaussian"`, {
      code: 'TUNE_CONFIG_INVALID',
      context: { firstGeneration: hyper.firstGeneration },
    });
  }
  for (const key of ['beta1', 'beta2'] as const) {
    if (!(hyper[key] >= 0 && hyper[key] < 1)) {
      throw new TuneError(`PGPE ${key} ${hyper[key]} must lie in [0, 1)`, { code: 'TUNE_CONFIG_INVALID', context: { [key]: hyper[key] } });
    }
  }
  return { ...hyper };
}

/** Softmax ignores a common shift of the logits; removing it keeps μ bounded and readable. */
function centerLogits(mu: number[], taskCount: number): number[] {
  const mean = mu.slice(0, taskCount).reduce((a, b) => a + b, 0) / taskCount;
  return mu.map((value, i) => (i < taskCount ? value - mean : value));
}

export function createPgpeTuner(overrides: Partial<PgpeHyperparameters> = {}): Tuner<PgpeState> {
  const hyper = validateHyper({ ...PGPE_DEFAULTS, ...overrides });

  const init = (options: TunerInit<PgpeState>): PgpeState => {
    if (options.population % 2 !== 0 || options.population < 2) {
      throw new TuneError(
        `PGPE samples symmetric pairs, so population must be even and ≥ 2, got ${options.population}; use ${Math.max(2, options.population + 1)}`,
        {
          code: 'TUNE_CONFIG_INVALID',
          context: { population: options.population },
        },
      );
    }
    if (options.warmStart === undefined) {
      const base = baseState('pgpe', options);
      const dims = coordinateNames(base);
      return {
        ...base,
        hyper,
        dims,
        mu: dims.map(() => 0),
        sigma: dims.map(() => hyper.sigmaInit),
        adam: { m: dims.map(() => 0), v: dims.map(() => 0), step: 0 },
        lastMeanReward: null,
      };
    }
    const base = resumeBase('pgpe', options, options.warmStart);
    const warm = options.warmStart;
    createRng(warm.rng); // throws on a corrupt stored generator
    // Coordinates carried over (by name) keep their μ, σ and Adam moments; a new task starts at the
    // mean logit, a new bounded coordinate at the middle of its range.
    const dims = coordinateNames(base);
    const taskCount = base.taskNames.length;
    const oldTaskCount = warm.taskNames.length;
    const oldIndex = new Map(warm.dims.map((name, i) => [`${i < oldTaskCount ? 'task' : 'dim'}:${name}`, i]));
    const keyOf = (name: string, i: number): string => `${i < taskCount ? 'task' : 'dim'}:${name}`;
    const keptTasks = warm.taskNames.filter((name) => base.taskNames.includes(name));
    const meanLogit = keptTasks.length > 0 ? keptTasks.reduce((sum, name) => sum + warm.mu[oldIndex.get(`task:${name}`)!], 0) / keptTasks.length : 0;
    const carry = (name: string, at: number, values: number[], fallback: number): number => {
      const i = oldIndex.get(keyOf(name, at));
      return i === undefined ? fallback : values[i];
    };
    const mu = dims.map((name, i) => carry(name, i, warm.mu, i < taskCount ? meanLogit : 0));
    const sameTasks = oldTaskCount === taskCount && warm.taskNames.every((name, i) => base.taskNames[i] === name);
    return {
      ...base,
      hyper,
      dims,
      // Recentering only when the task list changed keeps an unchanged policy bit-for-bit.
      mu: sameTasks ? mu : centerLogits(mu, base.taskNames.length),
      sigma: dims.map((name, i) => Math.min(hyper.sigmaMax, Math.max(hyper.sigmaMin, carry(name, i, warm.sigma, hyper.sigmaInit)))),
      adam: { m: dims.map((name, i) => carry(name, i, warm.adam.m, 0)), v: dims.map((name, i) => carry(name, i, warm.adam.v, 0)), step: warm.adam.step },
      lastMeanReward: warm.lastMeanReward,
    };
  };

  const propose = (state: PgpeState): { state: PgpeState; proposals: Proposal[] } => {
    const again = pendingProposals(state);
    if (again) return again;
    const rng = createRng(state.rng);
    const pending: PendingTrial[] = [];
    // Only a fresh policy's first generation: a warm start continues a policy that has already narrowed.
    const quasi =
      state.hyper.firstGeneration === 'quasi' && state.session === 0 && state.generation === 0
        ? shiftedHalton(state.population / 2, state.sigma.length, rng)
        : undefined;
    for (let pair = 0; pair < state.population / 2; pair += 1) {
      const epsilon = state.sigma.map((sigma, i) => sigma * (quasi ? normalQuantile(quasi[pair][i]) : rng.normal()));
      for (const sign of [1, -1]) {
        const noise = epsilon.map((e) => sign * e + 0); // + 0 turns −0 into 0 for stable JSON
        pending.push({
          trialId: trialIdOf(state.session, state.generation, pending.length),
          point: state.mu.map((mu, i) => mu + noise[i]),
          noise,
          pair,
        });
      }
    }
    const next: PgpeState = { ...state, rng: rng.snapshot(), pending };
    return pendingProposals(next)!;
  };

  const update = (state: PgpeState, results: readonly TrialResult[]): PgpeState => {
    const { state: recorded, rewards } = recordResults(state, results);
    const pairs: { epsilon: number[]; plus: number; minus: number }[] = [];
    // propose lays each pair out as μ + ε at index 2k, μ − ε at 2k + 1.
    for (let k = 0; 2 * k + 1 < state.pending.length; k += 1) {
      const plus = rewards[2 * k];
      const minus = rewards[2 * k + 1];
      const epsilon = state.pending[2 * k].noise;
      if (plus !== null && minus !== null && epsilon !== undefined) pairs.push({ epsilon, plus, minus });
    }
    const succeeded = rewards.filter((reward): reward is number => reward !== null);
    const lastMeanReward = succeeded.length > 0 ? succeeded.reduce((a, b) => a + b, 0) / succeeded.length : state.lastMeanReward;
    if (pairs.length === 0) return { ...recorded, lastMeanReward };

    const shaped = centeredRanks(pairs.flatMap((p) => [p.plus, p.minus]));
    const baseline = shaped.reduce((a, b) => a + b, 0) / shaped.length;
    const d = state.mu.length;
    const gradMu = new Array<number>(d).fill(0);
    const gradSigma = new Array<number>(d).fill(0);
    pairs.forEach((p, k) => {
      const fPlus = shaped[2 * k];
      const fMinus = shaped[2 * k + 1];
      const fSymmetric = (fPlus + fMinus) / 2 - baseline;
      for (let i = 0; i < d; i += 1) {
        const e = p.epsilon[i];
        const s = state.sigma[i];
        gradMu[i] += (((fPlus - fMinus) / 2) * e) / pairs.length;
        gradSigma[i] += (fSymmetric * (e * e - s * s)) / s / pairs.length;
      }
    });

    const { beta1, beta2, stepSize, sigmaStepSize, sigmaMaxChange, sigmaMin, sigmaMax } = state.hyper;
    const step = state.adam.step + 1;
    const m = state.adam.m.map((mi, i) => beta1 * mi + (1 - beta1) * gradMu[i]);
    const v = state.adam.v.map((vi, i) => beta2 * vi + (1 - beta2) * gradMu[i] * gradMu[i]);
    const mu = state.mu.map((mui, i) => {
      const mHat = m[i] / (1 - beta1 ** step);
      const vHat = v[i] / (1 - beta2 ** step);
      // The step shrinks with σ: as exploration contracts around an optimum, so do the moves (no Adam jitter).
      const moved = mui + (stepSize * (state.sigma[i] / state.hyper.sigmaInit) * mHat) / (Math.sqrt(vHat) + 1e-8);
      // The lr and space coordinates live in [−1, 1]; beyond it every sample clips to the same value.
      return i >= state.taskNames.length ? Math.max(-1, Math.min(1, moved)) : moved;
    });
    const sigma = state.sigma.map((s, i) => {
      const change = Math.max(-sigmaMaxChange * s, Math.min(sigmaMaxChange * s, sigmaStepSize * gradSigma[i]));
      return Math.max(sigmaMin, Math.min(sigmaMax, s + change));
    });
    return {
      ...recorded,
      mu: centerLogits(mu, state.taskNames.length),
      sigma,
      adam: { m, v, step },
      lastMeanReward,
    };
  };

  return { kind: 'pgpe', init, propose, update, best: (state) => state.best };
}
