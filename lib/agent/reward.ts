import type { RunManifest } from '#lib/prepare/index.ts';
import { StoreError } from '#lib/store/index.ts';
import { createTuner, rewardOf, type AnyTunerState, type RewardBreakdown, type TrialResult } from '#lib/tune/index.ts';
import { TrialJobResult, type RewardInput, type RewardOutput, type TrialOutcome } from '#lib/workflow/contracts.ts';
import { AgentError } from './errors.ts';
import type { AgentDependencies } from './plan.ts';
import { toContractProposal } from './plan.ts';
import { agentKeys, objectiveTasks, readIfExists, type GenerationState, type StoredPolicy, type TuningOutcome } from './state.ts';

/** One row of the reward log: what a trial was asked to do and how it did. */
export interface TrialRow {
  generation: number;
  status: 'succeeded' | 'failed';
  lambda: Record<string, number>;
  learningRate?: number;
  metrics?: Record<string, Record<string, number>>;
  reward: number | null;
  breakdown?: RewardBreakdown;
  error?: string;
  durationMs?: number;
}

/**
 * The Reward stage: scores every trial of the generation, logs each exactly once, folds the
 * results into the policy (stored with optimistic locking for the next run), and either proposes
 * the next generation or ends tuning with the best trial. Retried, it returns what it decided the
 * first time: the next generation's state file is written before the policy and is the marker.
 */
export async function rewardGeneration(input: RewardInput, deps: AgentDependencies): Promise<RewardOutput> {
  const { store, registry, rewards } = deps;
  const generationKey = agentKeys.generation(input.runId, input.generation);
  const current = await readIfExists<GenerationState>(store, generationKey);
  if (!current) {
    throw new AgentError(`no agent state for generation ${input.generation} of run ${input.runId} at ${store.uri(generationKey)}: Plan must run first`, {
      code: 'AGENT_STATE_MISSING',
      context: { runId: input.runId, generation: input.generation },
    });
  }
  const manifest = await store.getJson<RunManifest>(input.manifestUri);
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

  // The update is pure and seeded, so a retry recomputes exactly what the first attempt stored.
  const tuner = createTuner({ kind: current.tuner.kind });
  const updated = tuner.update(current.tuner as never, results) as AnyTunerState;
  const done = input.generation >= spec.tuning.generations;
  const finished = done ? await readIfExists<TuningOutcome>(store, agentKeys.outcome(input.runId)) : undefined;
  const next = done ? undefined : await readIfExists<GenerationState>(store, agentKeys.generation(input.runId, input.generation + 1));
  if (finished || next) {
    await savePolicy(deps, input, updated);
    return finished ? doneOutput(finished, current.maxConcurrency) : nextOutput(next!);
  }
  if (done) {
    const best = bestOfRun(await rewards.listTrials<TrialRow>(input.project, input.runId));
    const outcome: TuningOutcome = { generation: input.generation, bestTrialId: best.trialId, bestReward: best.reward, tuner: updated };
    await store.putJson(agentKeys.outcome(input.runId), outcome);
    await savePolicy(deps, input, updated);
    await registry.recordRunEvent(input.project, input.runId, 'tuning-done', { bestTrialId: best.trialId, bestReward: best.reward, generations: input.generation });
    await registry.updateRunStatus(input.project, input.runId, 'running', { stage: 'Export' });
    return doneOutput(outcome, current.maxConcurrency);
  }
  const proposed = tuner.propose(updated as never);
  const nextState: GenerationState = {
    generation: input.generation + 1,
    tuner: proposed.state as AnyTunerState,
    proposals: proposed.proposals.map(toContractProposal),
    maxConcurrency: current.maxConcurrency,
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
    lambda: proposal.lambda,
    ...(proposal.learningRate === undefined ? {} : { learningRate: proposal.learningRate }),
  };
  const result = await readTrialResult(outcome.resultUri, deps);
  if (outcome.status === 'failed' || !result || result.status === 'failed') {
    const reason =
      result?.status === 'failed'
        ? result.reason
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
    const parsed = TrialJobResult.safeParse(await deps.store.getJson<unknown>(uri));
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

/** The best trial over every generation of this run (the tuner's own best is per session). */
function bestOfRun(trials: { trialId: string; row: TrialRow }[]): { trialId: string; reward: number } {
  let best: { trialId: string; reward: number } | undefined;
  for (const { trialId, row } of trials) {
    if (row.reward === null) continue;
    if (!best || row.reward > best.reward) best = { trialId, reward: row.reward };
  }
  if (!best) throw new AgentError('no trial of this run succeeded', { code: 'GENERATION_FAILED' });
  return best;
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
