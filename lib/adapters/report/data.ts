import type { PlanDecision } from '#lib/pipeline/plan/plan.ts';
import type { ScreeningOutcome } from '#lib/pipeline/plan/screening.ts';
import type { TrialRow } from '#lib/pipeline/reward/reward.ts';
import { hyperparameterEntries, ModelCard, RunManifest } from '#lib/domain/run/index.ts';
import { RegistryError, type ModelVersion, type RunEvent, type RunRecord, type ServingSetState, type TrialRecord } from '#lib/adapters/registry/index.ts';
import type { DeploySpec } from '#lib/domain/spec/index.ts';
import type { StageDependencies } from '#lib/pipeline/dependencies.ts';
import { keys } from '#lib/adapters/store/index.ts';
import { HIGHER_IS_BETTER, type ObjectiveMetric } from '#lib/domain/tune/index.ts';
import { readLoopTimeline, type LoopTimeline } from './loop.ts';
import { ReportError } from './errors.ts';

export type ReportDependencies = Pick<StageDependencies, 'registry' | 'runLog' | 'rewards' | 'store'>;

/** A task as the report plots it: its spec metric and which way is better. */
export interface ReportTask {
  name: string;
  type: string;
  metric: string;
  floor?: number;
  higherIsBetter: boolean;
}

export interface ReportTrial {
  trialId: string;
  /** 1-based position in the run: generation, then trial id. */
  order: number;
  generation: number;
  status: 'succeeded' | 'failed';
  lambda: Record<string, number>;
  learningRate?: number;
  /** Each task's spec metric on the validation split; absent for a failed trial. */
  metrics: Record<string, number>;
  reward: number | null;
  /** The best reward of this and every earlier trial (null until one succeeded). */
  bestSoFar: number | null;
  best: boolean;
  error?: string;
  durationMs?: number;
}

export interface ReportPromotion {
  version: number;
  promoted: boolean;
  /** promoted: production moved; canary: joined the serving set; held: kept out. */
  outcome: 'promoted' | 'canary' | 'held';
  reason: string;
  candidateObjective?: number;
  /** The champion's objective on this run's holdout, where the Promote stage recorded it. */
  championObjective?: number;
  /** The production version when the run planned, the one the candidate was measured against. */
  championVersion?: number;
  policy?: DeploySpec;
}

export interface ReportArm {
  version: number;
  role: 'production' | 'challenger';
  /** A challenger's canary floor from the serving set. */
  canaryShare?: number;
  feedbackCount: number;
  /** This version's share of all feedback the serving set received. */
  feedbackShare: number;
  meanReward: number | null;
}

export interface ReportServing {
  revision: number;
  updatedAt: string;
  arms: ReportArm[];
  totalFeedback: number;
}

/** The chart ids a page draws for this data; the page marks each one rendered. */
export type ChartId = 'reward' | 'lambda' | `metric-${string}` | 'promotion' | 'traffic';

/** Everything the report page shows, as plain JSON (it is inlined into the page). */
export interface RunReportData {
  reportVersion: 1;
  generatedAt: string;
  project: string;
  runId: string;
  run: {
    status: RunRecord['status'];
    stage?: string;
    trigger?: string;
    startedAt: string;
    finishedAt?: string;
    durationMs?: number;
    error?: RunRecord['error'];
  };
  description?: string;
  decisions: PlanDecision[];
  tasks: ReportTask[];
  trials: ReportTrial[];
  generations: number;
  bestTrialId?: string;
  model?: {
    version: number;
    status: string;
    holdoutObjective: number;
    lambda: Record<string, number>;
    validation: Record<string, number>;
    holdout: Record<string, number>;
    sizeBytes: number;
    latencyMsSingle: number;
    uri: string;
    /** The winning trial's settings, each marked when the agent searched it; absent for cards from before they were recorded. */
    hyperparameters?: { name: string; value: string; searched: boolean }[];
  };
  promotion?: ReportPromotion;
  /** Undefined while the project serves nothing. */
  serving?: ReportServing;
  /** The closed loop around this run, when `demo --drift` recorded one. */
  loop?: LoopTimeline;
  charts: ChartId[];
}

function higherIsBetter(metric: string): boolean {
  return (HIGHER_IS_BETTER as Readonly<Record<string, boolean>>)[metric as ObjectiveMetric] ?? true;
}

/** Tasks from the run's spec; without a manifest (Prepare failed) from the trial rows, whose metrics then cannot be chosen. */
function tasksOf(manifest: RunManifest | undefined, card: ModelCard | undefined): ReportTask[] {
  if (manifest) {
    return manifest.spec.tasks.map((task) => ({
      name: task.name,
      type: task.type,
      metric: task.metric,
      ...(task.floor === undefined ? {} : { floor: task.floor }),
      higherIsBetter: higherIsBetter(task.metric),
    }));
  }
  return (card?.tasks ?? []).map((task) => ({ name: task.name, type: task.type, metric: task.metric, higherIsBetter: higherIsBetter(task.metric) }));
}

const trialNumber = (trialId: string) => Number(/-t(\d+)$/.exec(trialId)?.[1] ?? Number.NaN);

/** Trials in run order (generation, then the index in the trial id), each with the best reward so far. */
export function orderTrials(rows: { trialId: string; row: TrialRow }[], tasks: readonly ReportTask[], bestTrialId: string | undefined): ReportTrial[] {
  const sorted = [...rows].sort(
    (a, b) => a.row.generation - b.row.generation || trialNumber(a.trialId) - trialNumber(b.trialId) || 0 || a.trialId.localeCompare(b.trialId),
  );
  let best: number | null = null;
  return sorted.map(({ trialId, row }, index) => {
    if (row.reward !== null && Number.isFinite(row.reward)) best = best === null ? row.reward : Math.max(best, row.reward);
    const metrics: Record<string, number> = {};
    for (const task of tasks) {
      const value = row.metrics?.[task.name]?.[task.metric];
      if (typeof value === 'number' && Number.isFinite(value)) metrics[task.name] = value;
    }
    return {
      trialId,
      order: index + 1,
      generation: row.generation,
      status: row.status,
      lambda: row.lambda,
      ...(row.learningRate === undefined ? {} : { learningRate: row.learningRate }),
      metrics,
      reward: row.reward,
      bestSoFar: best,
      best: trialId === bestTrialId,
      ...(row.error === undefined ? {} : { error: row.error }),
      ...(row.durationMs === undefined ? {} : { durationMs: row.durationMs }),
    };
  });
}

function servingOf(set: ServingSetState, stats: { version: number; count: number; sum: number }[]): ReportServing {
  const total = stats.reduce((sum, arm) => sum + arm.count, 0);
  const canary = new Map(set.challengers.map((c) => [c.version, c.trafficShare]));
  return {
    revision: set.revision,
    updatedAt: set.updatedAt,
    totalFeedback: total,
    arms: stats.map((arm) => {
      const share = canary.get(arm.version);
      return {
        version: arm.version,
        role: arm.version === set.production ? 'production' : 'challenger',
        ...(share === undefined ? {} : { canaryShare: share }),
        feedbackCount: arm.count,
        feedbackShare: total > 0 ? arm.count / total : 0,
        meanReward: arm.count > 0 ? arm.sum / arm.count : null,
      };
    }),
  };
}

function promotionOf(
  detail: Record<string, unknown>,
  decisions: PlanDecision[],
  servingSet: ServingSetState | undefined,
  policy: DeploySpec | undefined,
): ReportPromotion {
  const version = detail.version as number;
  const promoted = detail.promoted === true;
  const isChallenger = !promoted && (servingSet?.challengers.some((c) => c.version === version) ?? false);
  const history = decisions.find((d) => d.decision === 'history')?.value as { productionVersion?: number | null } | undefined;
  const number = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
  const candidateObjective = number(detail.candidateObjective);
  const championObjective = number(detail.championObjective);
  const championVersion = number(detail.championVersion) ?? history?.productionVersion ?? undefined;
  return {
    version,
    promoted,
    outcome: promoted ? 'promoted' : isChallenger ? 'canary' : 'held',
    reason: String(detail.reason ?? ''),
    ...(candidateObjective === undefined ? {} : { candidateObjective }),
    ...(championObjective === undefined ? {} : { championObjective }),
    ...(championVersion === undefined ? {} : { championVersion }),
    ...(policy ? { policy } : {}),
  };
}

function chartsOf(data: Omit<RunReportData, 'charts'>): ChartId[] {
  const charts: ChartId[] = [];
  if (data.trials.length > 0) {
    charts.push('reward', 'lambda');
    for (const task of data.tasks) charts.push(`metric-${task.name}`);
  }
  if (data.promotion) charts.push('promotion');
  if (data.serving && data.serving.totalFeedback > 0) charts.push('traffic');
  return charts;
}

async function manifestOf(deps: ReportDependencies, runId: string): Promise<RunManifest | undefined> {
  return deps.store.findJson(keys.runManifest(runId), RunManifest);
}

/** What a run left behind in the registry, the reward log and the store: read once, shared by `runs show` and the report. */
export interface RunHistory {
  run: RunRecord;
  events: RunEvent[];
  decisions: PlanDecision[];
  bestTrialId?: string;
  promotionEvent?: Record<string, unknown>;
  screening?: ScreeningOutcome;
  trials: TrialRecord<TrialRow>[];
  version?: ModelVersion;
  card?: ModelCard;
}

export async function readRunHistory(deps: ReportDependencies, target: { project: string; runId: string }): Promise<RunHistory> {
  const { project, runId } = target;
  let run: RunRecord;
  try {
    run = await deps.runLog.getRun(project, runId);
  } catch (error) {
    if (error instanceof RegistryError && error.code === 'RUN_NOT_FOUND') {
      throw new ReportError(`${project} has no run "${runId}": list the project's runs with \`agentflow runs ls -p ${project}\``, {
        code: 'RUN_NOT_FOUND',
        context: { project, runId },
        cause: error,
      });
    }
    throw error;
  }
  const [events, trials, version] = await Promise.all([
    deps.runLog.listRunEvents(project, runId),
    deps.rewards.listTrials<TrialRow>(project, runId),
    deps.registry.findVersionByRun(project, runId),
  ]);
  const card = version?.lineage.cardUri ? await deps.store.getJson(version.lineage.cardUri, ModelCard) : undefined;
  const detail = (key: string) => events.find((e) => e.eventKey === key)?.detail;
  const bestTrialId = detail('tuning-done')?.bestTrialId as string | undefined;
  const promotionEvent = detail('promotion');
  const screening = detail('screening') as ScreeningOutcome | undefined;
  return {
    run,
    events,
    decisions: (detail('plan')?.decisions ?? []) as PlanDecision[],
    trials,
    ...(bestTrialId === undefined ? {} : { bestTrialId }),
    ...(promotionEvent ? { promotionEvent } : {}),
    ...(screening ? { screening } : {}),
    ...(version ? { version } : {}),
    ...(card ? { card } : {}),
  };
}

/** Reads what a run did (run log, model registry, reward log, manifest, model card, serving set) into the report's data. */
export async function collectRunReport(deps: ReportDependencies, target: { project: string; runId: string }, now: Date = new Date()): Promise<RunReportData> {
  const { project, runId } = target;
  const history = await readRunHistory(deps, target);
  const { run, decisions, bestTrialId, promotionEvent, version, card } = history;
  const rows = history.trials;
  const [manifest, servingSet, loop] = await Promise.all([manifestOf(deps, runId), deps.registry.getServingSet(project), readLoopTimeline(deps.store, runId)]);
  const tasks = tasksOf(manifest, card);
  const trials = orderTrials(rows, tasks, bestTrialId);

  let serving: ReportServing | undefined;
  if (servingSet) {
    const versions = [servingSet.production, ...servingSet.challengers.map((c) => c.version)];
    serving = servingOf(servingSet, await deps.rewards.getArmStats(project, versions));
  }
  const pick = (metrics: Record<string, Record<string, number>> | undefined) =>
    Object.fromEntries(
      tasks.flatMap((task) => (typeof metrics?.[task.name]?.[task.metric] === 'number' ? [[task.name, metrics[task.name]![task.metric]!]] : [])),
    );

  const finishedMs = run.finishedAt ? Date.parse(run.finishedAt) : Number.NaN;
  const durationMs = finishedMs - Date.parse(run.startedAt);
  const base: Omit<RunReportData, 'charts'> = {
    reportVersion: 1,
    generatedAt: now.toISOString(),
    project,
    runId,
    run: {
      status: run.status,
      ...(run.stage === undefined ? {} : { stage: run.stage }),
      ...(run.trigger === undefined ? {} : { trigger: run.trigger }),
      startedAt: run.startedAt,
      ...(run.finishedAt === undefined ? {} : { finishedAt: run.finishedAt }),
      ...(Number.isFinite(durationMs) ? { durationMs } : {}),
      ...(run.error === undefined ? {} : { error: run.error }),
    },
    ...(manifest?.spec.description === undefined ? {} : { description: manifest.spec.description }),
    decisions,
    tasks,
    trials,
    generations: trials.reduce((most, trial) => Math.max(most, trial.generation), 0),
    ...(bestTrialId === undefined ? {} : { bestTrialId }),
    ...(version && card
      ? {
          model: {
            version: version.version,
            status: version.status,
            holdoutObjective: card.holdoutObjective,
            lambda: card.lambda,
            validation: pick(card.metrics.validation),
            holdout: pick(card.metrics.holdout),
            sizeBytes: card.model.sizeBytes,
            latencyMsSingle: card.latencyMs.single,
            uri: card.model.uri,
            ...(card.hyperparameters ? { hyperparameters: hyperparameterEntries(card.hyperparameters) } : {}),
          },
        }
      : {}),
    ...(promotionEvent ? { promotion: promotionOf(promotionEvent, decisions, servingSet, manifest?.spec.deploy) } : {}),
    ...(serving ? { serving } : {}),
    ...(loop ? { loop } : {}),
  };
  return { ...base, charts: chartsOf(base) };
}
