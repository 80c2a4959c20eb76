import * as z from 'zod';
import { RunManifest, objectiveTasks } from '#lib/domain/run/index.ts';
import { StoreError } from '#lib/adapters/store/index.ts';
import { createTuner, rewardOf, type AnyTunerState, type RewardBreakdown, type TrialResult } from '#lib/domain/tune/index.ts';
import { TrialJobResult, type RewardInput, type RewardOutput, type TrialOutcome } from '#lib/pipeline/contracts.ts';
import { FAILURE_NAMES } from '#lib/pipeline/errors.ts';
import { gpuCapacityFix } from '#lib/pipeline/gpuCapacity.ts';
import { AgentError } from '#lib/pipeline/plan/errors.ts';
import type { AgentDependencies } from '#lib/pipeline/plan/plan.ts';
import { toContractProposal } from '#lib/pipeline/plan/plan.ts';
import { advanceScreening, screeningProposals, screeningTrialId, uniformLambda, type Candidate, type ScreeningState } from '#lib/pipeline/plan/screening.ts';
import {
  GenerationStateDocument,
  TuningOutcomeDocument,
  agentKeys,
  type GenerationState,
  type StoredPolicy,
  type TuningOutcome,
} from '#lib/pipeline/plan/state.ts';

/** One row of the reward log: what a trial was asked to do and how it did. */
export interface TrialRow {
  generation: number;
  status: 'succeeded' | 'failed';
  /** `screening` for a candidate's short trial, `tuning` for the tuner's (absent in older rows: tuning). */
  phase?: 'screening' | 'tuning';
  lambda: Record<string, number>;
  learningRate?: number;
  /** The searched hyperparameters the trial trained with (`tuning.search`). */
  hyperparameters?: Record<string, number>;
  /** The encoder and architecture the proposal named (screening candidates and tuning after screening). */
  encoderId?: string;
  architecture?: string;
  maxEpochs?: number;
  metrics?: Record<string, Record<string, number>>;
  reward: number | null;
  breakdown?: RewardBreakdown;
  error?: string;
  durationMs?: number;
}

/**
 * The Reward stage: scores every trial of the generation, logs each exactly once, folds the
 * results into the policy (stored with optimistic locking for the next run), and either proposes
 * the next generation or ends tuning with the best trial. A screening generation instead halves
 * the candidates (see plan/screening.ts) and, once one is left, hands over to the tuner. Retried, it returns what it decided the
 * first time: the next generation's state file is written before the policy and is the marker.
 */
export async function rewardGeneration(input: RewardInput, deps: AgentDependencies): Promise<RewardOutput> {
  const { store, runLog, rewards } = deps;
  const generationKey = agentKeys.generation(input.runId, input.generation);
  const current = await store.findJson(generationKey, GenerationStateDocument);
  if (!current) {
    throw new AgentError(`no agent state for generation ${input.generation} of run ${input.runId} at ${store.uri(generationKey)}: Plan must run first`, {
      code: 'AGENT_STATE_MISSING',
      context: { runId: input.runId, generation: input.generation },
    });
  }
  const manifest = await store.getJson(input.manifestUri, RunManifest);
  const { spec } = manifest;

  const rows = await Promise.all(input.trials.map((outcome) => scoreTrial(outcome, current, deps, spec)));
  for (const [index, row] of rows.entries()) {
    await rewards.recordTrial(input.project, input.runId, input.trials[index].trialId, row);
  }
  const results: TrialResult[] = rows.map((row, index) => ({ trialId: input.trials[index].trialId, reward: row.reward }));
  if (results.every((result) => result.reward === null)) {
    const reasons = rows.map((row, index) => `${input.trials[index].trialId}: ${row.error ?? 'failed'}`);
    throw new AgentError(`every trial of generation ${input.generation} failed, so the policy cannot learn from it:\n  ${reasons.join('\n  ')}`, {
      code: 'GENERATION_FAILED',
      context: { runId: input.runId, generation: input.generation },
    });
  }

  if (current.screening) return advanceScreeningGeneration(input, current, current.screening, results, deps, spec);

  // The update is pure and seeded, so a retry recomputes exactly what the first attempt stored.
  const tuner = createTuner({ kind: current.tuner.kind });
  const updated = tuner.update(current.tuner as never, results) as AnyTunerState;
  const done = input.generation - (current.screeningRounds ?? 0) >= spec.tuning.generations;
  const finished = done ? await store.findJson(agentKeys.outcome(input.runId), TuningOutcomeDocument) : undefined;
  const next = done ? undefined : await store.findJson(agentKeys.generation(input.runId, input.generation + 1), GenerationStateDocument);
  if (finished || next) {
    await savePolicy(deps, input, updated);
    return finished ? doneOutput(finished, current.maxConcurrency) : nextOutput(next!);
  }
  if (done) {
    const best = bestOfRun(await rewards.listTrials<TrialRow>(input.project, input.runId), current.candidate);
    const outcome: TuningOutcome = { generation: input.generation, bestTrialId: best.trialId, bestReward: best.reward, tuner: updated };
    await store.putJson(agentKeys.outcome(input.runId), outcome);
    await savePolicy(deps, input, updated);
    await runLog.recordRunEvent(input.project, input.runId, 'tuning-done', {
      bestTrialId: best.trialId,
      bestReward: best.reward,
      generations: input.generation,
    });
    await runLog.updateRunStatus(input.project, input.runId, 'running', { stage: 'Export' });
    return doneOutput(outcome, current.maxConcurrency);
  }
  const proposed = tuner.propose(updated as never);
  const nextState: GenerationState = {
    generation: input.generation + 1,
    tuner: proposed.state as AnyTunerState,
    proposals: proposed.proposals.map((proposal) => toContractProposal(proposal, current.candidate)),
    maxConcurrency: current.maxConcurrency,
    ...(current.candidate ? { candidate: current.candidate } : {}),
    ...(current.screeningRounds ? { screeningRounds: current.screeningRounds } : {}),
  };
  await store.putJson(agentKeys.generation(input.runId, nextState.generation), nextState);
  await savePolicy(deps, input, updated);
  return nextOutput(nextState);
}

async function scoreTrial(outcome: TrialOutcome, generation: GenerationState, deps: AgentDependencies, spec: RunManifest['spec']): Promise<TrialRow> {
  const proposal = generation.proposals.find((p) => p.trialId === outcome.trialId);
  if (!proposal) {
    throw new AgentError(`trial ${outcome.trialId} was not proposed in generation ${generation.generation}`, {
      code: 'TRIAL_RESULT_INVALID',
      context: { trialId: outcome.trialId },
    });
  }
  const base = {
    generation: generation.generation,
    phase: generation.screening ? ('screening' as const) : ('tuning' as const),
    lambda: proposal.lambda,
    ...(proposal.learningRate === undefined ? {} : { learningRate: proposal.learningRate }),
    ...(proposal.hyperparameters === undefined ? {} : { hyperparameters: proposal.hyperparameters }),
    ...(proposal.encoderId === undefined ? {} : { encoderId: proposal.encoderId }),
    ...(proposal.architecture === undefined ? {} : { architecture: proposal.architecture }),
    ...(proposal.maxEpochs === undefined ? {} : { maxEpochs: proposal.maxEpochs }),
  };
  const result = await readTrialResult(outcome.resultUri, deps);
  if (outcome.status === 'failed' || !result || result.status === 'failed') {
    const reason =
      result?.status === 'failed'
        ? result.reason
        : outcome.status === 'failed' && outcome.error === FAILURE_NAMES.gpuCapacity
          ? `${FAILURE_NAMES.gpuCapacity}: its GPU job waited in RUNNABLE past the job queue's limit without starting and was cancelled: ${gpuCapacityFix()}`
          : `${outcome.status === 'failed' ? outcome.error : 'the job succeeded'}: the trial job ended without writing its result (crashed or killed; its log says why)`;
    return { ...base, status: 'failed', reward: null, error: reason, ...(result?.durationMs === undefined ? {} : { durationMs: result.durationMs }) };
  }
  const breakdown = rewardOf(result.metrics, objectiveTasks(spec, result.metrics));
  return {
    ...base,
    status: 'succeeded',
    metrics: result.metrics,
    reward: breakdown.reward,
    breakdown,
    ...(result.durationMs === undefined ? {} : { durationMs: result.durationMs }),
  };
}

async function readTrialResult(uri: string, deps: AgentDependencies): Promise<TrialJobResult | undefined> {
  try {
    const parsed = TrialJobResult.safeParse(await deps.store.getJson(uri, z.unknown()));
    if (!parsed.success) {
      throw new AgentError(`${uri} is not a trial result: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, {
        code: 'TRIAL_RESULT_INVALID',
        context: { uri },
      });
    }
    return parsed.data;
  } catch (error) {
    // A trial that crashed before writing its result is a failed trial, not a failed stage.
    if (error instanceof StoreError && error.code === 'NOT_FOUND') return undefined;
    throw error;
  }
}

/**
 * The best trial over every generation of this run (the tuner's own best is per session). After
 * screening, only the winner's trials count: the run's model is the candidate it chose.
 */
function bestOfRun(trials: { trialId: string; row: TrialRow }[], candidate?: Candidate): { trialId: string; reward: number } {
  let best: { trialId: string; reward: number } | undefined;
  for (const { trialId, row } of trials) {
    if (row.reward === null) continue;
    if (candidate && (row.encoderId !== candidate.encoderId || row.architecture !== candidate.architecture)) continue;
    if (!best || row.reward > best.reward) best = { trialId, reward: row.reward };
  }
  if (!best) throw new AgentError('no trial of this run succeeded', { code: 'GENERATION_FAILED' });
  return best;
}

/**
 * The end of a screening round: the next round with the better half of the candidates, or, when
 * one is left, the screening record on the run (every candidate's reward per round) and the
 * tuner's first generation for the winner. The tuner is untouched until then, and the policy is
 * not stored: screening trials say nothing about λ. Retried, it returns the generation it wrote.
 */
async function advanceScreeningGeneration(
  input: RewardInput,
  current: GenerationState,
  screening: ScreeningState,
  results: readonly TrialResult[],
  deps: AgentDependencies,
  spec: RunManifest['spec'],
): Promise<RewardOutput> {
  const { store, runLog } = deps;
  const nextKey = agentKeys.generation(input.runId, input.generation + 1);
  const written = await store.findJson(nextKey, GenerationStateDocument);
  if (written) return nextOutput(written);

  const rewardById = new Map(results.map((result) => [result.trialId, result.reward]));
  const round = screening.candidates.map((candidate) => {
    const trialId = screeningTrialId(screening.round, candidate);
    return { candidate, trialId, reward: rewardById.get(trialId) ?? null };
  });
  const step = advanceScreening(screening, round);
  let nextState: GenerationState;
  if (step.next) {
    nextState = {
      generation: input.generation + 1,
      tuner: current.tuner,
      proposals: screeningProposals(step.next, uniformLambda(current.tuner.taskNames, current.tuner.lambdaScale)),
      maxConcurrency: Math.min(spec.tuning.maxConcurrency, step.next.candidates.length),
      screening: step.next,
    };
  } else {
    const { winner, rounds, reason } = step.outcome;
    await runLog.recordRunEvent(input.project, input.runId, 'screening', { winner, rounds, reason });
    const proposed = createTuner({ kind: current.tuner.kind }).propose(current.tuner as never);
    nextState = {
      generation: input.generation + 1,
      tuner: proposed.state as AnyTunerState,
      proposals: proposed.proposals.map((proposal) => toContractProposal(proposal, winner)),
      maxConcurrency: Math.min(spec.tuning.maxConcurrency, proposed.proposals.length),
      candidate: winner,
      screeningRounds: input.generation,
    };
  }
  await store.putJson(nextKey, nextState);
  return nextOutput(nextState);
}

/** Stores the updated policy for the next run; a retry that finds its own update already stored writes nothing. */
async function savePolicy(deps: AgentDependencies, input: RewardInput, tuner: AnyTunerState): Promise<void> {
  const stored = await deps.rewards.getPolicy<StoredPolicy>(input.project);
  if (stored && stored.state.runId === input.runId && stored.state.generation >= input.generation) return;
  await deps.rewards.putPolicy<StoredPolicy>(input.project, { tuner, runId: input.runId, generation: input.generation }, stored?.revision);
}

function nextOutput(state: GenerationState): RewardOutput {
  return { done: false, generation: state.generation, proposals: state.proposals, maxConcurrency: state.maxConcurrency, bestTrialId: null };
}

function doneOutput(outcome: TuningOutcome, maxConcurrency: number): RewardOutput {
  return { done: true, generation: outcome.generation, proposals: [], maxConcurrency, bestTrialId: outcome.bestTrialId };
}
