import { baseState, coordinateNames, pendingProposals, recordResults, resumeBase, trialIdOf } from './common.ts';
import { TuneError } from './errors.ts';
import { createRng } from '#lib/domain/random/index.ts';
import type { PendingTrial, Proposal, TrialResult, Tuner, TunerInit, TunerStateBase } from './types.ts';

/**
 * The baselines. Random search draws λ independently per trial:
 * - `simplex`: uniform on the simplex (Dirichlet(1, …, 1)) scaled by K, drawn as softmax of
 *   log-exponential logits, so every mix of task weights is equally likely;
 * - `logitNormal`: softmax of N(0, logitSd²) logits, concentrated around uniform λ.
 * The lr coordinate, when tuned, and each space dimension's coordinate are uniform in [−1, 1].
 * Fixed uniform proposes λ = K/n per task (1 at the default K) and the middle of the lr range and of every space dimension,
 * one trial per generation: repeating it would only re-roll training noise.
 */
export interface RandomSearchOptions {
  distribution: 'simplex' | 'logitNormal';
  /** Standard deviation of the logits for `logitNormal`. */
  logitSd: number;
}

export const RANDOM_SEARCH_DEFAULTS: Readonly<RandomSearchOptions> = { distribution: 'simplex', logitSd: 1 };

export interface RandomSearchState extends TunerStateBase<'random'> {
  search: RandomSearchOptions;
}

export type UniformState = TunerStateBase<'uniform'>;

export function createRandomSearchTuner(overrides: Partial<RandomSearchOptions> = {}): Tuner<RandomSearchState> {
  const search: RandomSearchOptions = { ...RANDOM_SEARCH_DEFAULTS, ...overrides };
  if (search.distribution !== 'simplex' && search.distribution !== 'logitNormal') {
    throw new TuneError(`random search distribution "${String(search.distribution)}" is not "simplex" or "logitNormal"`, {
      code: 'TUNE_CONFIG_INVALID',
      context: { distribution: search.distribution },
    });
  }
  if (!(search.logitSd > 0) || !Number.isFinite(search.logitSd)) {
    throw new TuneError(`random search logitSd ${search.logitSd} must be a finite number > 0`, {
      code: 'TUNE_CONFIG_INVALID',
      context: { logitSd: search.logitSd },
    });
  }
  const init = (options: TunerInit<RandomSearchState>): RandomSearchState => {
    const base = options.warmStart === undefined ? baseState('random', options) : resumeBase('random', options, options.warmStart);
    createRng(base.rng);
    return { ...base, search };
  };
  const propose = (state: RandomSearchState): { state: RandomSearchState; proposals: Proposal[] } => {
    const again = pendingProposals(state);
    if (again) return again;
    const rng = createRng(state.rng);
    const pending: PendingTrial[] = [];
    for (let index = 0; index < state.population; index += 1) {
      const logits = state.taskNames.map(() =>
        state.search.distribution === 'simplex' ? Math.log(-Math.log(1 - rng.uniform()) + Number.MIN_VALUE) : state.search.logitSd * rng.normal(),
      );
      const bounded = [...(state.learningRate.tune ? [0] : []), ...(state.space ?? [])].map(() => 2 * rng.uniform() - 1);
      pending.push({ trialId: trialIdOf(state.session, state.generation, index), point: [...logits, ...bounded] });
    }
    return pendingProposals({ ...state, rng: rng.snapshot(), pending })!;
  };
  const update = (state: RandomSearchState, results: readonly TrialResult[]): RandomSearchState => recordResults(state, results).state;
  return { kind: 'random', init, propose, update, best: (state) => state.best };
}

export function createUniformTuner(): Tuner<UniformState> {
  const init = (options: TunerInit<UniformState>): UniformState =>
    options.warmStart === undefined ? baseState('uniform', options) : resumeBase('uniform', options, options.warmStart);
  const propose = (state: UniformState): { state: UniformState; proposals: Proposal[] } => {
    const again = pendingProposals(state);
    if (again) return again;
    const point = coordinateNames(state).map(() => 0);
    return pendingProposals({ ...state, pending: [{ trialId: trialIdOf(state.session, state.generation, 0), point }] })!;
  };
  const update = (state: UniformState, results: readonly TrialResult[]): UniformState => recordResults(state, results).state;
  return { kind: 'uniform', init, propose, update, best: (state) => state.best };
}
