import * as z from 'zod';
import { keys } from '#lib/adapters/store/index.ts';
import type { AnyTunerState } from '#lib/domain/tune/index.ts';
import type { Proposal } from '#lib/pipeline/contracts.ts';
import type { Candidate, ScreeningState } from './screening.ts';

/**
 * The agent's state for one generation of a run, written once to
 * `runs/<runId>/agent/generation-<n>.json` before the generation's trials start. A retried Plan or
 * Reward finds the file of the generation it would create and returns it instead of proposing again,
 * so retries never change what the trials were asked to do.
 */
export interface GenerationState {
  generation: number;
  /** On a screening generation: the tuner as initialised, proposing nothing until screening ends. */
  tuner: AnyTunerState;
  proposals: Proposal[];
  maxConcurrency: number;
  /** Present on screening generations: the round and the candidates it trains. */
  screening?: ScreeningState;
  /** On tuning generations after screening: the winner every proposal trains. */
  candidate?: Candidate;
  /** How many generations of the run screened before tuning began (absent: none). */
  screeningRounds?: number;
}

/** Written once when tuning ends; a retried final Reward step returns it. */
export interface TuningOutcome {
  generation: number;
  bestTrialId: string;
  bestReward: number;
  tuner: AnyTunerState;
}

/** What the project's policy item holds between runs. */
export interface StoredPolicy {
  tuner: AnyTunerState;
  /** The run and generation whose update produced this policy, so a retried update is recognised. */
  runId: string;
  generation: number;
}

export const agentKeys = {
  generation: (runId: string, generation: number) => keys.runFile(runId, `agent/generation-${generation}.json`),
  outcome: (runId: string) => keys.runFile(runId, 'agent/outcome.json'),
};

/**
 * The agent's documents, checked on the fields that say which document it is; the tuner states
 * inside are the tuners' own (lib/domain/tune) and go back to them as they were written.
 */
function agentDocument<T>(what: string, fields: readonly string[]) {
  return z.custom<T>((value) => typeof value === 'object' && value !== null && fields.every((field) => field in value), {
    error: `not ${what}: expected an object with ${fields.join(', ')}`,
  });
}

export const GenerationStateDocument = agentDocument<GenerationState>('a generation state', ['generation', 'tuner', 'proposals', 'maxConcurrency']);
export const TuningOutcomeDocument = agentDocument<TuningOutcome>('a tuning outcome', ['generation', 'bestTrialId', 'bestReward', 'tuner']);
