import { TuneError } from './errors.ts';
import { seedRng } from '#lib/domain/random/index.ts';
import { hyperparametersOf, validateSpace } from './space.ts';
import type { BestTrial, PendingTrial, Proposal, TrialRecord, TrialResult, TunerInit, TunerKind, TunerStateBase } from './types.ts';

/** Trial records kept per state: few enough that a stored state stays well under DynamoDB's 400 KB item limit. */
export const HISTORY_LIMIT = 500;
export const DEFAULT_LR_RANGE: readonly [number, number] = [1e-4, 1e-2];

/**
 * The learning rates a tuner searches around a spec's `training.learningRate`: a decade either
 * side, log-centred on it, so the policy starts at the rate the user gave (z = 0). The default
 * learning rate gives the default range.
 */
export function learningRateRange(learningRate: number): readonly [number, number] {
  return [learningRate / 10, learningRate * 10];
}

function fixedOf(fixed: Readonly<Record<string, number>>, space: readonly { name: string }[]): Record<string, number> {
  for (const [name, value] of Object.entries(fixed)) {
    if (space.some((dimension) => dimension.name === name)) {
      throw new TuneError(`hyperparameter "${name}" is both searched and fixed; leave it out of the space or out of fixed`, {
        code: 'TUNE_CONFIG_INVALID',
        context: { name },
      });
    }
    if (!Number.isFinite(value))
      throw new TuneError(`fixed hyperparameter ${name} = ${value} is not a finite number`, { code: 'TUNE_CONFIG_INVALID', context: { name, value } });
  }
  return { ...fixed };
}

/** Validates the options and builds the fields every fresh state shares. */
export function baseState<K extends TunerKind>(kind: K, options: TunerInit<unknown>): TunerStateBase<K> {
  const { taskNames, population, seed } = options;
  if (!Array.isArray(taskNames) || taskNames.length === 0) {
    throw new TuneError('taskNames is empty; the tuner needs at least one task to weight', { code: 'TUNE_CONFIG_INVALID', context: { taskNames } });
  }
  const unique = new Set(taskNames);
  if (unique.size !== taskNames.length || taskNames.some((name) => typeof name !== 'string' || name === '')) {
    throw new TuneError(`taskNames ${JSON.stringify(taskNames)} must be distinct non-empty strings`, {
      code: 'TUNE_CONFIG_INVALID',
      context: { taskNames },
    });
  }
  const lambdaScale = options.lambdaScale ?? taskNames.length;
  if (!Number.isFinite(lambdaScale) || lambdaScale <= 0) {
    throw new TuneError(`lambdaScale ${lambdaScale} must be a finite number > 0 (the sum of λ; default: the task count)`, {
      code: 'TUNE_CONFIG_INVALID',
      context: { lambdaScale },
    });
  }
  if (!Number.isSafeInteger(population) || population < 1) {
    throw new TuneError(`population ${population} must be a positive integer (trials per generation)`, {
      code: 'TUNE_CONFIG_INVALID',
      context: { population },
    });
  }
  const [min, max] = options.lrRange ?? DEFAULT_LR_RANGE;
  if (!(min > 0) || !(max >= min) || !Number.isFinite(max)) {
    throw new TuneError(`lrRange [${min}, ${max}] must satisfy 0 < min ≤ max`, { code: 'TUNE_CONFIG_INVALID', context: { lrRange: [min, max] } });
  }
  return {
    kind,
    schemaVersion: 1,
    taskNames: [...taskNames],
    lambdaScale,
    learningRate: { tune: options.tuneLearningRate ?? false, min, max },
    space: validateSpace(options.space ?? []),
    ...(options.fixed && Object.keys(options.fixed).length > 0 ? { fixed: fixedOf(options.fixed, options.space ?? []) } : {}),
    population,
    rng: seedRng(seed),
    session: 0,
    generation: 0,
    pending: [],
    history: [],
    maxHistory: HISTORY_LIMIT,
    best: null,
  };
}

/**
 * The shared part of a warm start: the new options' configuration, the stored generator, history and
 * counters, a new session (so `best` restarts: earlier sessions' weights belong to earlier runs), and
 * no pending trials (an unfinished generation of the earlier run is abandoned).
 */
export function resumeBase<K extends TunerKind>(kind: K, options: TunerInit<unknown>, warm: unknown): TunerStateBase<K> {
  const fresh = baseState(kind, options);
  if (typeof warm !== 'object' || warm === null || (warm as { kind?: unknown }).kind !== kind || (warm as { schemaVersion?: unknown }).schemaVersion !== 1) {
    throw new TuneError(
      `warmStart is not a stored ${kind} tuner state (kind ${JSON.stringify((warm as { kind?: unknown } | null)?.kind)}); ` +
        `pass the state this tuner kind saved, or start without warmStart`,
      { code: 'TUNE_STATE_INVALID', context: { expectedKind: kind } },
    );
  }
  const stored = warm as TunerStateBase<K>;
  return {
    ...fresh,
    rng: stored.rng,
    session: stored.session + 1,
    generation: stored.generation,
    history: stored.history.slice(-fresh.maxHistory),
  };
}

/** λ = K·softmax(θ), computed stably. */
export function lambdaOf(taskNames: readonly string[], logits: readonly number[], lambdaScale: number): Record<string, number> {
  const top = Math.max(...logits.slice(0, taskNames.length));
  const exps = taskNames.map((_, i) => Math.exp(logits[i] - top));
  const total = exps.reduce((a, b) => a + b, 0);
  return Object.fromEntries(taskNames.map((name, i) => [name, (lambdaScale * exps[i]) / total]));
}

/** The learning rate at coordinate z: log-linear from min (z = −1) to max (z = 1), clipped to the range. */
export function learningRateOf(range: { min: number; max: number }, z: number): number {
  const clipped = Math.max(-1, Math.min(1, z));
  const mid = (Math.log(range.min) + Math.log(range.max)) / 2;
  const half = (Math.log(range.max) - Math.log(range.min)) / 2;
  return Math.exp(mid + half * clipped);
}

export function trialIdOf(session: number, generation: number, index: number): string {
  return `s${session}-g${generation}-t${index}`;
}

/** The names of a state's point coordinates: the task names, `learningRate` when tuned, then the space's dimensions. */
export function coordinateNames(state: Pick<TunerStateBase, 'taskNames' | 'learningRate' | 'space'>): string[] {
  return [...state.taskNames, ...(state.learningRate.tune ? ['learningRate'] : []), ...(state.space ?? []).map((d) => d.name)];
}

export function proposalOf(state: TunerStateBase, pending: PendingTrial): Proposal {
  const n = state.taskNames.length;
  const space = state.space ?? [];
  const first = n + (state.learningRate.tune ? 1 : 0);
  const hyperparameters = { ...state.fixed, ...hyperparametersOf(space, pending.point.slice(first)) };
  return {
    trialId: pending.trialId,
    lambda: lambdaOf(state.taskNames, pending.point, state.lambdaScale),
    ...(state.learningRate.tune ? { learningRate: learningRateOf(state.learningRate, pending.point[n]) } : {}),
    ...(Object.keys(hyperparameters).length > 0 ? { hyperparameters } : {}),
    ...(pending.noise ? { noise: [...pending.noise] } : {}),
  };
}

/** Returns the pending generation again if there is one (a retried Plan/Reward stage), else undefined. */
export function pendingProposals<S extends TunerStateBase>(state: S): { state: S; proposals: Proposal[] } | undefined {
  if (state.pending.length === 0) return undefined;
  return { state, proposals: state.pending.map((pending) => proposalOf(state, pending)) };
}

/**
 * Checks the results against the pending generation and records them: history, best, next generation.
 * Returns the new base fields and each pending trial's reward (null when failed or absent).
 */
export function recordResults<S extends TunerStateBase>(state: S, results: readonly TrialResult[]): { state: S; rewards: (number | null)[] } {
  if (state.pending.length === 0) {
    throw new TuneError(`no generation is pending (generation ${state.generation}); call propose before update, and do not apply the same results twice`, {
      code: 'TUNE_RESULTS_INVALID',
      context: { generation: state.generation },
    });
  }
  const byId = new Map<string, number | null>();
  for (const result of results) {
    if (!state.pending.some((pending) => pending.trialId === result.trialId)) {
      throw new TuneError(
        `result for trial "${result.trialId}" does not belong to the pending generation ${state.generation} (${state.pending.map((p) => p.trialId).join(', ')})`,
        { code: 'TUNE_RESULTS_INVALID', context: { trialId: result.trialId, generation: state.generation } },
      );
    }
    if (byId.has(result.trialId)) {
      throw new TuneError(`trial "${result.trialId}" has two results; send one per trial`, {
        code: 'TUNE_RESULTS_INVALID',
        context: { trialId: result.trialId },
      });
    }
    if (result.reward !== null && (typeof result.reward !== 'number' || !Number.isFinite(result.reward))) {
      throw new TuneError(`trial "${result.trialId}": reward ${String(result.reward)} is not a finite number; report a failed trial as reward null`, {
        code: 'TUNE_RESULTS_INVALID',
        context: { trialId: result.trialId, reward: result.reward },
      });
    }
    byId.set(result.trialId, result.reward);
  }
  const rewards = state.pending.map((pending) => byId.get(pending.trialId) ?? null);
  const records: TrialRecord[] = state.pending.map((pending, i) => {
    const proposal = proposalOf(state, pending);
    return {
      trialId: pending.trialId,
      session: state.session,
      generation: state.generation,
      lambda: proposal.lambda,
      ...(proposal.learningRate !== undefined ? { learningRate: proposal.learningRate } : {}),
      ...(proposal.hyperparameters !== undefined ? { hyperparameters: proposal.hyperparameters } : {}),
      reward: rewards[i],
    };
  });
  let best: BestTrial | null = state.best;
  for (const record of records) {
    if (record.reward !== null && (best === null || record.reward > best.reward)) {
      best = { ...record, reward: record.reward };
    }
  }
  return {
    state: {
      ...state,
      pending: [],
      generation: state.generation + 1,
      history: [...state.history, ...records].slice(-state.maxHistory),
      best,
    },
    rewards,
  };
}
