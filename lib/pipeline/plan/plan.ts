import { RunManifest } from '#lib/domain/run/index.ts';
import type { ModelRegistry, RewardLog, RunLog } from '#lib/adapters/registry/index.ts';
import type { ArtifactStore } from '#lib/adapters/store/index.ts';
import { loopBudgetOf } from '#lib/domain/spec/index.ts';
import { createTuner, dimensionEffects, learningRateRange, type AnyTunerState, type SearchDimension } from '#lib/domain/tune/index.ts';
import { historyBudgetProblem } from '#lib/pipeline/history.ts';
import type { PlanInput, PlanOutput, Proposal } from '#lib/pipeline/contracts.ts';
import {
  candidateKey,
  screeningCandidates,
  screeningDecision,
  screeningProposals,
  screeningRoundCount,
  uniformLambda,
  type Candidate,
  type ScreeningState,
} from './screening.ts';
import { AgentError } from './errors.ts';
import type { TrialRow } from '#lib/pipeline/reward/reward.ts';
import { GenerationStateDocument, agentKeys, type GenerationState, type StoredPolicy } from './state.ts';

export interface AgentDependencies {
  store: ArtifactStore;
  registry: ModelRegistry;
  runLog: RunLog;
  rewards: RewardLog;
}

/** A decision the agent made, with the evidence, as the run report shows it. */
export interface PlanDecision {
  decision: string;
  value: unknown;
  reason: string;
}

/**
 * The Plan stage: reads the project's history (policy, trial log, production model) and decides
 * how this run tunes: warm start or fresh policy, whether to screen several encoders or
 * architectures first (see screening.ts), population, generations and parallelism. It writes the
 * first generation (the first screening round, or the tuner's first proposals) and records every
 * decision with its reason on the run.
 */
export async function planRun(input: PlanInput, deps: AgentDependencies): Promise<PlanOutput> {
  const { store, registry, runLog, rewards } = deps;
  const existing = await store.findJson(agentKeys.generation(input.runId, 1), GenerationStateDocument);
  if (existing) return toPlanOutput(existing);

  const manifest = await store.getJson(input.manifestUri, RunManifest);
  const { spec } = manifest;
  const taskNames = spec.tasks.map((task) => task.name);
  const decisions: PlanDecision[] = [];

  const policy = await rewards.getPolicy<StoredPolicy>(spec.project);
  const warmStart = warmStartOf(policy?.state, spec.tuning.strategy, taskNames);
  decisions.push({ decision: 'policy', value: warmStart.state ? 'warm-start' : 'fresh', reason: warmStart.reason });

  const pastTrials = await rewards.listTrials<TrialRow>(spec.project);
  const production = await registry.getAlias(spec.project, 'production');
  decisions.push({
    decision: 'history',
    value: { pastTrials: pastTrials.length, productionVersion: production?.version ?? null },
    reason: production
      ? `version ${production.version} is in production; this run's best model must beat it on the holdout to replace it`
      : 'no version is in production yet; the deploy policy decides whether the first model is promoted',
  });

  const candidates = screeningCandidates(spec, manifest.encoders);
  const screening = screeningDecision(spec.tuning.screening.enabled, candidates);
  const screeningRounds = screening.screen ? screeningRoundCount(candidates.length) : 0;
  if (candidates.length > 1) {
    decisions.push({
      decision: 'screening',
      value: screening.screen
        ? { candidates: candidates.map(candidateKey), rounds: screeningRounds, trialEpochs: spec.tuning.screening.trialEpochs }
        : { candidates: candidates.map(candidateKey), rounds: 0 },
      reason: screening.reason,
    });
  }
  const encodings = manifest.encoders.filter((entry) => Array.isArray(entry.summary.numericEncodings));
  if (encodings.length > 1) {
    const described = encodings.map((entry) => `${entry.id} ${[...new Set(entry.summary.numericEncodings as string[])].join('+')}`);
    decisions.push({
      decision: 'encoders',
      value: Object.fromEntries(encodings.map((entry) => [entry.id, entry.summary.numericEncodings])),
      reason: `numeric encodings of the tabular candidates: ${described.join(', ')}`,
    });
  }

  // Prepare's parseSpec checked this with the spec's candidates; the manifest's encoders are the real ones.
  const overBudget = historyBudgetProblem(loopBudgetOf(spec, { candidates: candidates.length }), { populationStep: spec.tuning.strategy === 'pgpe' ? 2 : 1 });
  if (overBudget) {
    throw new AgentError(`tuning.${overBudget}`, {
      code: 'BUDGET_EXCEEDS_HISTORY',
      context: { generations: spec.tuning.generations, population: spec.tuning.population, candidates: candidates.length },
    });
  }

  const population = spec.tuning.strategy === 'uniform' ? 1 : spec.tuning.population;
  const maxConcurrency = Math.min(spec.tuning.maxConcurrency, population);
  const tuningText =
    spec.tuning.strategy === 'uniform'
      ? 'uniform λ is one fixed proposal, so each generation runs a single trial'
      : `${spec.tuning.generations} generations of ${population} trials (from the spec), at most ${maxConcurrency} at once`;
  decisions.push({
    decision: 'budget',
    value: { strategy: spec.tuning.strategy, generations: spec.tuning.generations, population, maxConcurrency, screeningRounds },
    reason: screeningRounds > 0 ? `${screeningRounds} screening generation${screeningRounds === 1 ? '' : 's'} first, then ${tuningText}` : tuningText,
  });

  if (spec.tuning.tuneLearningRate) {
    const [min, max] = learningRateRange(spec.training.learningRate);
    decisions.push({
      decision: 'learning rate',
      value: { min, max, centre: spec.training.learningRate },
      reason: `tuned per trial, log-uniformly from ${min} to ${max} around training.learningRate ${spec.training.learningRate}, where the policy starts`,
    });
  }
  const search = searchSpaceOf(spec.tuning.search, pastTrials);
  if (spec.tuning.search.length > 0) decisions.push(search.decision);
  const tuner = createTuner({ kind: spec.tuning.strategy });
  const initial = tuner.init({
    taskNames,
    lambdaScale: spec.tuning.lambdaScale,
    tuneLearningRate: spec.tuning.tuneLearningRate,
    space: search.space,
    fixed: search.fixed,
    lrRange: learningRateRange(spec.training.learningRate),
    population,
    seed: spec.training.seed,
    ...(warmStart.state ? { warmStart: warmStart.state } : {}),
  } as never);
  let generation: GenerationState;
  if (screening.screen) {
    const round: ScreeningState = { round: 1, candidates, trialEpochs: spec.tuning.screening.trialEpochs, maxEpochs: spec.training.epochs, history: [] };
    generation = {
      generation: 1,
      tuner: initial as AnyTunerState,
      proposals: screeningProposals(round, uniformLambda(taskNames, spec.tuning.lambdaScale)),
      maxConcurrency: Math.min(spec.tuning.maxConcurrency, candidates.length),
      screening: round,
    };
  } else {
    const { state, proposals } = tuner.propose(initial as never);
    generation = { generation: 1, tuner: state as AnyTunerState, proposals: proposals.map((p) => toContractProposal(p)), maxConcurrency };
  }
  await store.putJson(agentKeys.generation(input.runId, 1), generation);
  await runLog.recordRunEvent(spec.project, input.runId, 'plan', { decisions });
  await runLog.updateRunStatus(spec.project, input.runId, 'running', { stage: 'Trials' });
  return toPlanOutput(generation);
}

function warmStartOf(stored: StoredPolicy | undefined, strategy: AnyTunerState['kind'], taskNames: string[]): { state?: AnyTunerState; reason: string } {
  if (!stored) return { reason: 'no stored policy for this project: the first run starts from uniform task weights' };
  if (stored.tuner.kind !== strategy) {
    return { reason: `the stored policy is a ${stored.tuner.kind} tuner but the spec asks for ${strategy}: starting fresh` };
  }
  const shared = taskNames.filter((name) => stored.tuner.taskNames.includes(name));
  if (shared.length === 0) return { reason: 'the stored policy tuned other tasks: starting fresh' };
  return {
    state: stored.tuner,
    reason: `continuing the policy left by run ${stored.runId} (generation ${stored.generation}), ${shared.length} of ${taskNames.length} tasks known`,
  };
}

/** A number short enough for a decision's reason. */
const brief = (value: number): string => (Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? String(Number(value.toPrecision(3))) : value.toExponential(2));

/**
 * Which of `tuning.search`'s dimensions this run searches: each dimension's effect on the reward
 * over the project's past tuning trials (slope within a run's generation, see `dimensionEffects`);
 * one whose effect is below its noise is frozen at the value of its best trial, so the trials go
 * to the dimensions that move the reward. Without enough history every dimension is searched.
 */
function searchSpaceOf(
  search: readonly SearchDimension[],
  pastTrials: readonly { runId: string; row: TrialRow }[],
): { space: SearchDimension[]; fixed: Record<string, number>; decision: PlanDecision } {
  const trials = pastTrials.flatMap(({ runId, row }) =>
    row.status === 'succeeded' && row.reward !== null && row.phase !== 'screening' && row.hyperparameters
      ? [{ group: `${runId}/${row.generation}`, hyperparameters: row.hyperparameters, reward: row.reward }]
      : [],
  );
  const effects = dimensionEffects(search, trials);
  const frozen = effects.filter((effect) => effect.flat && effect.bestValue !== null);
  const fixed = Object.fromEntries(frozen.map((effect) => [effect.name, effect.bestValue!]));
  const space = search.filter((dimension) => fixed[dimension.name] === undefined);
  const said = effects.map((effect) =>
    effect.effect === null
      ? `${effect.name}: ${effect.trials} varied trial${effect.trials === 1 ? '' : 's'}, too few to judge, searched`
      : `${effect.name}: effect ${brief(effect.effect)} ± ${brief(effect.standardError!)} over ${effect.trials} trials, ${effect.flat ? `below its noise, frozen at ${brief(effect.bestValue!)}` : 'searched'}`,
  );
  return {
    space,
    fixed,
    decision: {
      decision: 'search space',
      value: { searched: space.map((dimension) => dimension.name), frozen: fixed, effects },
      reason: `reward change across each dimension's range, within a generation of past runs: ${said.join('; ')}`,
    },
  };
}

/** A tuner's proposal as a trial's contract; after screening it names the winning candidate. */
export function toContractProposal(
  proposal: { trialId: string; lambda: Record<string, number>; learningRate?: number; hyperparameters?: Record<string, number> },
  candidate?: Candidate,
): Proposal {
  return {
    trialId: proposal.trialId,
    lambda: proposal.lambda,
    ...(proposal.learningRate === undefined ? {} : { learningRate: proposal.learningRate }),
    ...(proposal.hyperparameters === undefined ? {} : { hyperparameters: proposal.hyperparameters }),
    ...(candidate === undefined ? {} : { encoderId: candidate.encoderId, architecture: candidate.architecture }),
  };
}

function toPlanOutput(generation: GenerationState): PlanOutput {
  return { generation: generation.generation, proposals: generation.proposals, maxConcurrency: generation.maxConcurrency };
}
