import type { RngState } from '#lib/domain/random/index.ts';
import type { SearchDimension } from './space.ts';

export type TunerKind = 'pgpe' | 'random' | 'uniform';

/** What every tuner starts from. A warm start continues a stored state instead of starting afresh. */
export interface TunerInit<S> {
  taskNames: readonly string[];
  /** K in λ = K·softmax(θ): the λ sum. Default: the number of tasks, so uniform λ is 1 per task. */
  lambdaScale?: number;
  /** Also propose a learning rate per trial, log-uniformly inside `lrRange`. Default false. */
  tuneLearningRate?: boolean;
  /** [min, max] learning rate, both > 0. Default [1e-4, 1e-2]. */
  lrRange?: readonly [number, number];
  /** More hyperparameters to search, one coordinate each after λ and the lr. Default none. */
  space?: readonly SearchDimension[];
  /** Hyperparameters held at one value (dimensions frozen from the history): every proposal carries them. */
  fixed?: Readonly<Record<string, number>>;
  /** Trials per generation (one Map iteration each). PGPE needs an even number: it samples in pairs. */
  population: number;
  seed: number;
  /** A state from an earlier run of the same tuner kind: its policy, generator and history carry over. */
  warmStart?: S;
}

/** One training trial to run. */
export interface Proposal {
  trialId: string;
  lambda: Record<string, number>;
  /** Present only when the tuner tunes the learning rate. */
  learningRate?: number;
  /** Present only when the tuner searches more dimensions: each dimension's value, by name. */
  hyperparameters?: Record<string, number>;
  /** PGPE's signed perturbation of the policy mean (task logits, then the lr coordinate). */
  noise?: number[];
}

/** The outcome of one trial; `reward: null` marks a failed trial, which the update leaves out. */
export interface TrialResult {
  trialId: string;
  reward: number | null;
}

/** A trial as kept in the state's history. */
export interface TrialRecord {
  trialId: string;
  /** Which run of the tuner (0 for the first, +1 per warm start) proposed it. */
  session: number;
  generation: number;
  lambda: Record<string, number>;
  learningRate?: number;
  hyperparameters?: Record<string, number>;
  reward: number | null;
}

/** The best trial of the current session (its weights belong to the current run): a record that earned a reward. */
export type BestTrial = TrialRecord & { reward: number };

/** A proposed trial awaiting its result, as a point of the search space. */
export interface PendingTrial {
  trialId: string;
  /** Task logits θ, then (when tuning it) the lr coordinate z ∈ [−1, 1] (log-lr from min to max), then one z ∈ [−1, 1] per space dimension. */
  point: number[];
  /** PGPE only: the signed perturbation and which symmetric pair the trial belongs to. */
  noise?: number[];
  pair?: number;
}

/** Fields every tuner state has; the whole state is plain JSON (stored in DynamoDB between runs). */
export interface TunerStateBase<K extends TunerKind = TunerKind> {
  kind: K;
  schemaVersion: 1;
  taskNames: string[];
  lambdaScale: number;
  learningRate: { tune: boolean; min: number; max: number };
  /** The searched dimensions beyond λ and lr (absent in states stored before they existed: none). */
  space?: SearchDimension[];
  fixed?: Record<string, number>;
  population: number;
  rng: RngState;
  session: number;
  /** The generation the next `propose` creates (or the one pending). */
  generation: number;
  pending: PendingTrial[];
  /** The most recent trials, oldest first, capped at `maxHistory` so the item stays under DynamoDB's 400 KB. */
  history: TrialRecord[];
  maxHistory: number;
  best: BestTrial | null;
}

export interface Tuner<S extends TunerStateBase> {
  readonly kind: S['kind'];
  init(options: TunerInit<S>): S;
  /** The next generation's trials. While a generation is pending it returns that one again (retries are safe). */
  propose(state: S): { state: S; proposals: Proposal[] };
  /** Folds in the pending generation's results; pending trials without a result count as failed. */
  update(state: S, results: readonly TrialResult[]): S;
  best(state: S): BestTrial | null;
}
