import { describe, expect, it } from 'vitest';
import {
  centeredRanks,
  createPgpeTuner,
  createRandomSearchTuner,
  createTuner,
  createUniformTuner,
  lambdaOf,
  learningRateOf,
  TuneError,
  type PgpeState,
  type Proposal,
  type TrialResult,
  type Tuner,
  type TunerStateBase,
} from '#lib/domain/tune/index.ts';
import { createRng } from '#lib/domain/random/index.ts';

const TASKS = ['churn', 'fraud', 'topic'];
const OPTIMUM: Record<string, number> = { churn: 1.5, fraud: 1.0, topic: 0.5 }; // sums to K = 3

/** A smooth reward over λ with an interior maximum at OPTIMUM, optionally with noise. */
function surrogate(noiseSd = 0, seed = 99): (proposal: Proposal) => number {
  const noise = createRng(seed);
  return (proposal) => {
    const distance = TASKS.reduce((sum, name) => sum + (proposal.lambda[name] - OPTIMUM[name]) ** 2, 0);
    return 1 - distance + noiseSd * noise.normal();
  };
}

function runGenerations<S extends TunerStateBase>(tuner: Tuner<S>, state: S, generations: number, reward: (proposal: Proposal) => number | null): S {
  let current = state;
  for (let g = 0; g < generations; g += 1) {
    const { state: proposed, proposals } = tuner.propose(current);
    current = tuner.update(
      proposed,
      proposals.map((proposal) => ({ trialId: proposal.trialId, reward: reward(proposal) })),
    );
  }
  return current;
}

function policyLambda(state: PgpeState): Record<string, number> {
  return lambdaOf(state.taskNames, state.mu, state.lambdaScale);
}

function maxError(lambda: Record<string, number>): number {
  return Math.max(...TASKS.map((name) => Math.abs(lambda[name] - OPTIMUM[name])));
}

describe('PGPE tuner', () => {
  const tuner = createPgpeTuner();
  const init = (seed = 1): PgpeState => tuner.init({ taskNames: TASKS, population: 8, seed });

  it('starts at uniform λ summing to K and proposes symmetric pairs', () => {
    const { proposals } = tuner.propose(init());
    expect(proposals).toHaveLength(8);
    for (const proposal of proposals) {
      expect(Object.values(proposal.lambda).reduce((a, b) => a + b, 0)).toBeCloseTo(3, 12);
      expect(proposal.learningRate).toBeUndefined();
    }
    expect(proposals[1].noise).toEqual(proposals[0].noise!.map((e) => -e + 0));
    expect(new Set(proposals.map((p) => p.trialId)).size).toBe(8);
  });

  it('finds the interior optimum of a smooth reward', () => {
    const final = runGenerations(tuner, init(), 40, surrogate());
    expect(maxError(policyLambda(final))).toBeLessThan(0.06);
    expect(maxError(tuner.best(final)!.lambda)).toBeLessThan(0.15);
  });

  it('finds it under noisy rewards too', () => {
    const final = runGenerations(tuner, init(2), 60, surrogate(0.05));
    expect(maxError(policyLambda(final))).toBeLessThan(0.08);
  });

  it('tunes the learning rate on a log scale when asked', () => {
    const tunerLr = createPgpeTuner();
    const best = 1e-3;
    const start = tunerLr.init({ taskNames: TASKS, population: 8, seed: 3, tuneLearningRate: true, lrRange: [1e-5, 1e-1] });
    const lrReward = surrogate();
    const final = runGenerations(tunerLr, start, 60, (p) => lrReward(p) - 0.1 * Math.log10(p.learningRate! / best) ** 2);
    const lr = learningRateOf(final.learningRate, final.mu[3]);
    expect(final.dims).toEqual([...TASKS, 'learningRate']);
    expect(Math.abs(Math.log10(lr / best))).toBeLessThan(0.2);
    expect(maxError(policyLambda(final))).toBeLessThan(0.08);
  });

  it('repeats a seeded run exactly, and another seed differs', () => {
    const a = runGenerations(tuner, init(5), 6, surrogate(0.05, 1));
    const b = runGenerations(tuner, init(5), 6, surrogate(0.05, 1));
    const c = runGenerations(tuner, init(6), 6, surrogate(0.05, 1));
    expect(a).toEqual(b);
    expect(c.mu).not.toEqual(a.mu);
  });

  it('keeps a state that survives a JSON roundtrip and continues identically from it', () => {
    const state = runGenerations(tuner, init(7), 3, surrogate(0.05));
    const stored = JSON.parse(JSON.stringify(state)) as PgpeState;
    expect(stored).toEqual(state);
    const reward = surrogate(0.05, 5);
    const rewardAgain = surrogate(0.05, 5);
    expect(runGenerations(tuner, stored, 3, rewardAgain)).toEqual(runGenerations(tuner, state, 3, reward));
  });

  it('returns the pending generation again when propose is retried', () => {
    const first = tuner.propose(init());
    const again = tuner.propose(first.state);
    expect(again.proposals).toEqual(first.proposals);
    expect(again.state).toEqual(first.state);
  });

  it('drops a pair whose partner failed: the surviving half does not move the policy', () => {
    const { state, proposals } = tuner.propose(init(8));
    const rewards = surrogate();
    const results = (survivor: number): TrialResult[] =>
      proposals.map((p, i) => ({ trialId: p.trialId, reward: i === 0 ? survivor : i === 1 ? null : rewards(p) }));
    const high = tuner.update(state, results(1e6));
    const low = tuner.update(state, results(-1e6));
    expect(high.mu).toEqual(low.mu);
    expect(high.sigma).toEqual(low.sigma);
    expect(high.mu).not.toEqual(state.mu); // the other pairs still moved it
    expect(high.history[1].reward).toBeNull();
    expect(high.best!.reward).toBe(1e6);
  });

  it('leaves the policy unchanged when every trial failed, and still advances the generation', () => {
    const { state, proposals } = tuner.propose(init(9));
    const after = tuner.update(
      state,
      proposals.map((p) => ({ trialId: p.trialId, reward: null })),
    );
    expect(after.mu).toEqual(state.mu);
    expect(after.sigma).toEqual(state.sigma);
    expect(after.generation).toBe(1);
    expect(after.best).toBeNull();
    expect(after.history.every((record) => record.reward === null)).toBe(true);
  });

  it('treats a pending trial without a result as failed', () => {
    const { state, proposals } = tuner.propose(init(10));
    const after = tuner.update(state, [{ trialId: proposals[2].trialId, reward: 0.4 }]);
    expect(after.history.filter((r) => r.reward !== null)).toHaveLength(1);
    expect(after.mu).toEqual(state.mu); // no complete pair
  });

  it('warm-starts from a stored state: same policy, new session, history kept, best restarted', () => {
    const first = runGenerations(tuner, init(11), 15, surrogate());
    const stored = JSON.parse(JSON.stringify(first)) as PgpeState;
    const resumed = tuner.init({ taskNames: TASKS, population: 8, seed: 1234, warmStart: stored });
    expect(resumed.mu).toEqual(first.mu);
    expect(resumed.sigma).toEqual(first.sigma);
    expect(resumed.adam).toEqual(first.adam);
    expect(resumed.session).toBe(1);
    expect(resumed.generation).toBe(15);
    expect(resumed.history).toEqual(first.history);
    expect(resumed.best).toBeNull();
    const fresh = init(11);
    expect(maxError(policyLambda(resumed))).toBeLessThan(maxError(policyLambda(fresh)) / 2);
    const { proposals } = tuner.propose(resumed);
    expect(proposals[0].trialId).toBe('s1-g15-t0');
    const continued = runGenerations(tuner, resumed, 15, surrogate());
    expect(maxError(policyLambda(continued))).toBeLessThan(0.05);
  });

  it('warm-starts onto a changed task list: kept tasks keep their logits, a new one starts at their mean', () => {
    const first = runGenerations(tuner, init(12), 15, surrogate());
    const resumed = tuner.init({ taskNames: ['churn', 'fraud', 'spam'], population: 4, seed: 1, warmStart: first });
    const oldLogit = (name: string): number => first.mu[first.dims.indexOf(name)];
    const newLogit = (name: string): number => resumed.mu[resumed.dims.indexOf(name)];
    expect(newLogit('churn') - newLogit('fraud')).toBeCloseTo(oldLogit('churn') - oldLogit('fraud'), 12);
    expect(newLogit('spam')).toBeCloseTo((newLogit('churn') + newLogit('fraud')) / 2, 12);
    expect(resumed.population).toBe(4);
  });

  it('rejects a warm start from another tuner kind', () => {
    const randomState = createRandomSearchTuner().init({ taskNames: TASKS, population: 4, seed: 1 });
    expect(() => tuner.init({ taskNames: TASKS, population: 4, seed: 1, warmStart: randomState as unknown as PgpeState })).toThrow(
      /not a stored pgpe tuner state/,
    );
  });

  it.each([
    { options: { taskNames: TASKS, population: 7, seed: 1 }, message: /even/ },
    { options: { taskNames: [], population: 8, seed: 1 }, message: /taskNames is empty/ },
    { options: { taskNames: ['a', 'a'], population: 8, seed: 1 }, message: /distinct/ },
    { options: { taskNames: TASKS, population: 8, seed: 1, lrRange: [1e-2, 1e-4] as const }, message: /lrRange/ },
    { options: { taskNames: TASKS, population: 8, seed: 1, lambdaScale: 0 }, message: /lambdaScale/ },
  ])('rejects invalid options: $message', ({ options, message }) => {
    expect(() => tuner.init(options)).toThrow(message);
  });

  it('rejects results that do not match the pending generation', () => {
    const start = init();
    expect(() => tuner.update(start, [])).toThrow(/no generation is pending/);
    const { state, proposals } = tuner.propose(start);
    const id = proposals[0].trialId;
    const codeOf = (results: TrialResult[]): string => {
      try {
        tuner.update(state, results);
      } catch (error) {
        return (error as TuneError).code;
      }
      return 'none';
    };
    expect(codeOf([{ trialId: 'other', reward: 1 }])).toBe('TUNE_RESULTS_INVALID');
    expect(
      codeOf([
        { trialId: id, reward: 1 },
        { trialId: id, reward: 2 },
      ]),
    ).toBe('TUNE_RESULTS_INVALID');
    expect(codeOf([{ trialId: id, reward: Number.NaN }])).toBe('TUNE_RESULTS_INVALID');
    const updated = tuner.update(
      state,
      proposals.map((p) => ({ trialId: p.trialId, reward: 1 })),
    );
    expect(() =>
      tuner.update(
        updated,
        proposals.map((p) => ({ trialId: p.trialId, reward: 1 })),
      ),
    ).toThrow(/same results twice/);
  });

  it('rejects invalid hyperparameters', () => {
    expect(() => createPgpeTuner({ sigmaInit: 5 })).toThrow(/sigmaInit ≤ sigmaMax/);
    expect(() => createPgpeTuner({ beta1: 1 })).toThrow(TuneError);
  });
});

describe('random search and fixed uniform λ', () => {
  it('samples λ on the simplex scaled by K, and lr inside its range', () => {
    const tuner = createRandomSearchTuner();
    const state = tuner.init({ taskNames: TASKS, population: 50, seed: 1, lambdaScale: 6, tuneLearningRate: true, lrRange: [1e-4, 1e-2] });
    const { proposals } = tuner.propose(state);
    for (const p of proposals) {
      expect(Object.values(p.lambda).reduce((a, b) => a + b, 0)).toBeCloseTo(6, 10);
      expect(Object.values(p.lambda).every((l) => l >= 0)).toBe(true);
      expect(p.learningRate! >= 1e-4 && p.learningRate! <= 1e-2).toBe(true);
    }
    // Uniform on the simplex: each λ_i / K has mean 1/n.
    const meanShare = proposals.reduce((sum, p) => sum + p.lambda.churn / 6, 0) / proposals.length;
    expect(meanShare).toBeGreaterThan(0.2);
    expect(meanShare).toBeLessThan(0.47);
  });

  it('repeats a seeded run exactly and keeps the best trial', () => {
    const tuner = createRandomSearchTuner({ distribution: 'logitNormal', logitSd: 1 });
    const run = (): ReturnType<typeof tuner.init> => runGenerations(tuner, tuner.init({ taskNames: TASKS, population: 6, seed: 4 }), 5, surrogate(0.01, 3));
    const a = run();
    expect(a).toEqual(run());
    const bestReward = Math.max(...a.history.map((r) => r.reward ?? -Infinity));
    expect(tuner.best(a)!.reward).toBe(bestReward);
    expect(a.history).toHaveLength(30);
  });

  it('fixed uniform proposes λ = K/n per task, one trial per generation', () => {
    const tuner = createUniformTuner();
    const { proposals } = tuner.propose(tuner.init({ taskNames: TASKS, population: 8, seed: 1, tuneLearningRate: true, lrRange: [1e-4, 1e-2] }));
    expect(proposals).toHaveLength(1);
    expect(proposals[0].lambda).toEqual({ churn: 1, fraud: 1, topic: 1 });
    expect(proposals[0].learningRate).toBeCloseTo(1e-3, 12);
  });

  it('is picked by kind', () => {
    expect(createTuner({ kind: 'pgpe' }).kind).toBe('pgpe');
    expect(createTuner({ kind: 'random', search: { distribution: 'simplex' } }).kind).toBe('random');
    expect(createTuner({ kind: 'uniform' }).kind).toBe('uniform');
    expect(() => createTuner({ kind: 'cmaes' } as never)).toThrow(/not one of/);
  });
});

describe('centeredRanks', () => {
  it('maps rewards to ranks in [−0.5, 0.5], ties sharing their mean rank', () => {
    expect(centeredRanks([3, 1, 2])).toEqual([0.5, -0.5, 0]);
    expect(centeredRanks([5, 5, 1, 9])).toEqual([0, 0, -0.5, 0.5]);
    expect(centeredRanks([1e9, -1e9])).toEqual([0.5, -0.5]);
  });
});
