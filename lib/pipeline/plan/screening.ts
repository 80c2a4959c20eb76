import type { EncoderEntry } from '#lib/domain/run/index.ts';
import type { Architecture, Spec } from '#lib/domain/spec/index.ts';
import type { Proposal } from '#lib/pipeline/contracts.ts';
import { AgentError } from './errors.ts';

/**
 * Screening: when the spec offers several base encoders or architectures, the agent first picks
 * one by successive halving (Jamieson & Talwalkar 2016) over short trials, then tunes λ for the
 * winner only. Every round trains each surviving candidate once with uniform λ for
 * `trialEpochs · 2^(round − 1)` epochs (capped at `training.epochs`) and keeps the better half by
 * reward, until one is left: ⌈log₂ n⌉ rounds, about n·trialEpochs·⌈log₂ n⌉ epochs in all, instead
 * of tuning every candidate's λ. Training is seeded, so a candidate is trained once per round:
 * a second trial with the same λ and epochs would repeat the first.
 *
 * Everything here is pure; Plan and Reward store the state and record the evidence.
 */

/** One thing screening chooses between: an encoder of the manifest with a head architecture. */
export interface Candidate {
  encoderId: string;
  architecture: Architecture;
}

/** How one candidate did in one round. `reward: null` marks a failed trial, which ranks last. */
export interface CandidateResult {
  candidate: Candidate;
  trialId: string;
  reward: number | null;
}

export interface ScreeningRound {
  round: number;
  maxEpochs: number;
  results: CandidateResult[];
  /** The candidates that went on (or the winner, after the last round). */
  kept: Candidate[];
}

/** Stored with each screening generation's state. */
export interface ScreeningState {
  /** 1-based round of this generation. */
  round: number;
  /** The candidates trained this round, in proposal order. */
  candidates: Candidate[];
  trialEpochs: number;
  /** `training.epochs`: no round trains longer. */
  maxEpochs: number;
  /** The rounds before this one. */
  history: ScreeningRound[];
}

/** What screening decided, as recorded on the run (`screening` event) and shown by `runs show`. */
export interface ScreeningOutcome {
  winner: Candidate;
  rounds: ScreeningRound[];
  reason: string;
}

export const candidateKey = (candidate: Candidate): string => `${candidate.encoderId}/${candidate.architecture}`;

/** Every encoder with every architecture, encoders first (the spec's order is its preference). */
export function screeningCandidates(spec: Pick<Spec, 'model'>, encoders: readonly Pick<EncoderEntry, 'id'>[]): Candidate[] {
  return encoders.flatMap((encoder) => spec.model.architectures.map((architecture) => ({ encoderId: encoder.id, architecture })));
}

/** Whether this run screens, and why (for Plan's decisions). */
export function screeningDecision(enabled: 'auto' | boolean, candidates: readonly Candidate[]): { screen: boolean; reason: string } {
  const first = candidates[0];
  const firstText = first ? `${first.encoderId} with ${first.architecture}` : 'no candidate';
  if (candidates.length <= 1) {
    return { screen: false, reason: `one candidate (${firstText}): nothing to screen` };
  }
  if (enabled === false) {
    return { screen: false, reason: `tuning.screening.enabled is false: ${candidates.length} candidates, tuning the first (${firstText}) without screening` };
  }
  const rounds = screeningRoundCount(candidates.length);
  return {
    screen: true,
    reason: `${candidates.length} candidates (${candidates.map(candidateKey).join(', ')}): ${rounds} round${rounds === 1 ? '' : 's'} of successive halving with uniform λ before tuning λ for the winner`,
  };
}

/** ⌈log₂ n⌉: the rounds halving needs to leave one of n candidates. */
export function screeningRoundCount(candidates: number): number {
  if (!Number.isSafeInteger(candidates) || candidates < 1) {
    throw new AgentError(`screening needs a positive whole number of candidates, got ${candidates}`, { code: 'SCREENING_INVALID', context: { candidates } });
  }
  return Math.ceil(Math.log2(candidates));
}

/** The epochs of a round: `trialEpochs` doubled per round after the first, never above `maxEpochs`. */
export function roundEpochs(round: number, trialEpochs: number, maxEpochs: number): number {
  if (!Number.isSafeInteger(round) || round < 1) {
    throw new AgentError(`screening round ${round} must be a whole number ≥ 1`, { code: 'SCREENING_INVALID', context: { round } });
  }
  return Math.max(1, Math.min(maxEpochs, trialEpochs * 2 ** (round - 1)));
}

/**
 * Keeps the better half (⌈n/2⌉) of a round's candidates by reward, best first. Ties keep the
 * earlier candidate (the spec's preference); a failed candidate never goes on. Throws when every
 * candidate failed: there is nothing to choose from.
 */
export function halve(results: readonly CandidateResult[]): Candidate[] {
  const ranked = results
    .map((result, index) => ({ result, index }))
    .filter((entry): entry is { result: CandidateResult & { reward: number }; index: number } => entry.result.reward !== null)
    .sort((a, b) => b.result.reward - a.result.reward || a.index - b.index);
  if (ranked.length === 0) {
    throw new AgentError(`every screening trial failed (${results.map((r) => r.trialId).join(', ')}), so no candidate can be chosen`, {
      code: 'GENERATION_FAILED',
      context: { trials: results.map((r) => r.trialId) },
    });
  }
  return ranked.slice(0, Math.ceil(results.length / 2)).map((entry) => entry.result.candidate);
}

/** Uniform λ: K/n per task, as the uniform tuner proposes it. */
export function uniformLambda(taskNames: readonly string[], lambdaScale: number): Record<string, number> {
  return Object.fromEntries(taskNames.map((name) => [name, lambdaScale / taskNames.length]));
}

/** A trial id that says what it screens: `screen-r1-e0-mmoe` (valid as a Batch job name part and S3 key). */
export function screeningTrialId(round: number, candidate: Candidate): string {
  return `screen-r${round}-${candidate.encoderId}-${candidate.architecture}`;
}

/** One proposal per candidate: uniform λ, the round's epochs. */
export function screeningProposals(
  state: Pick<ScreeningState, 'round' | 'candidates' | 'trialEpochs' | 'maxEpochs'>,
  lambda: Record<string, number>,
): Proposal[] {
  const maxEpochs = roundEpochs(state.round, state.trialEpochs, state.maxEpochs);
  return state.candidates.map((candidate) => ({
    trialId: screeningTrialId(state.round, candidate),
    lambda: { ...lambda },
    encoderId: candidate.encoderId,
    architecture: candidate.architecture,
    maxEpochs,
  }));
}

/**
 * Folds a round's results in: either the next round's state, or (one candidate left) the outcome
 * with every round's evidence. `results` are in the order of `state.candidates`.
 */
export function advanceScreening(
  state: ScreeningState,
  results: readonly CandidateResult[],
): { next: ScreeningState; outcome?: undefined } | { next?: undefined; outcome: ScreeningOutcome } {
  const known = new Set(state.candidates.map(candidateKey));
  if (results.length !== state.candidates.length || results.some((r) => !known.has(candidateKey(r.candidate)))) {
    throw new AgentError(
      `screening round ${state.round} expects one result for each of ${[...known].join(', ')}, got ${results.map((r) => candidateKey(r.candidate)).join(', ') || 'none'}`,
      {
        code: 'SCREENING_INVALID',
        context: { round: state.round },
      },
    );
  }
  const kept = halve(results);
  const round: ScreeningRound = { round: state.round, maxEpochs: roundEpochs(state.round, state.trialEpochs, state.maxEpochs), results: [...results], kept };
  const history = [...state.history, round];
  if (kept.length > 1) return { next: { ...state, round: state.round + 1, candidates: kept, history } };
  const winner = kept[0];
  const last = results.find((r) => candidateKey(r.candidate) === candidateKey(winner))!;
  const others = results.filter((r) => r !== last).map((r) => `${candidateKey(r.candidate)} ${formatReward(r.reward)}`);
  const reason =
    `${candidateKey(winner)} won ${history.length} round${history.length === 1 ? '' : 's'} of halving over ${history[0].results.length} candidates: ` +
    `reward ${formatReward(last.reward)} after ${round.maxEpochs} epochs in the last round, against ${others.join(', ')}`;
  return { outcome: { winner, rounds: history, reason } };
}

function formatReward(reward: number | null): string {
  return reward === null ? 'a failed trial' : reward.toFixed(4);
}
