import { objectiveTasks, RunManifest, ModelCard } from '#lib/domain/run/index.ts';
import { RegistryError, type ModelRegistry, type RunLog } from '#lib/adapters/registry/index.ts';
import { sha256Hex, type ArtifactStore } from '#lib/adapters/store/index.ts';
import { rewardOf } from '#lib/domain/tune/index.ts';
import type { PromoteInput, PromoteOutput } from '#lib/pipeline/contracts.ts';
import { DeployError } from '#lib/pipeline/export/errors.ts';
import { evaluateOnSplit, type TaskMetrics } from '#lib/pipeline/export/evaluate.ts';
import { decidePromotion, type GateDecision, type GateScore } from './gate.ts';

export const PRODUCTION = 'production';

export interface DeployDependencies {
  store: ArtifactStore;
  registry: ModelRegistry;
}

/** Promote also records its decision on the run, so a retried Promote returns it instead of deciding again. */
export interface PromoteDependencies extends DeployDependencies {
  runLog: RunLog;
}

function scoreOf(manifest: RunManifest, metrics: TaskMetrics): GateScore {
  const { reward, violations } = rewardOf(metrics, objectiveTasks(manifest.spec, metrics));
  return { objective: reward, violations };
}

/** Downloads a registered model and checks it against the sha256 the registry holds. */
export async function loadVerifiedModel(deps: DeployDependencies, project: string, version: number): Promise<Uint8Array> {
  const registered = await deps.registry.getVersion(project, version);
  const bytes = await deps.store.getBytes(registered.lineage.artifactUri);
  const sha256 = sha256Hex(bytes);
  if (sha256 !== registered.lineage.sha256) {
    throw new DeployError(
      `${registered.lineage.artifactUri} has sha256 ${sha256}, but version ${version} was registered with ${registered.lineage.sha256}: the file was changed after registration; do not serve it — roll back or re-export`,
      { code: 'PARITY', context: { project, version, sha256, expected: registered.lineage.sha256 } },
    );
  }
  return bytes;
}

/**
 * The Promote stage: scores the candidate and the production model on this run's holdout rows,
 * applies the deploy policy's gate, and moves the alias with a conditional write. Retried, it
 * returns the decision it recorded; two runs promoting at once leave exactly one winner.
 */
export async function promoteCandidate(input: PromoteInput, deps: PromoteDependencies): Promise<PromoteOutput> {
  const { store, registry, runLog } = deps;
  const recorded = (await runLog.listRunEvents(input.project, input.runId)).find((event) => event.eventKey === 'promotion');
  if (recorded) return recorded.detail as unknown as PromoteOutput;

  const manifest = await store.getJson(input.manifestUri, RunManifest);
  const registered = await registry.findVersionByRun(input.project, input.runId);
  if (!registered) {
    throw new DeployError(`run ${input.runId} registered no version; Export must run before Promote`, {
      code: 'VERSION_MISSING',
      context: { runId: input.runId },
    });
  }
  const version = registered.version;
  const card = await store.getJson(input.cardUri, ModelCard);
  // A quantized file is judged on what it lost against its own float original, too.
  const candidate: GateScore = {
    ...scoreOf(manifest, card.metrics.holdout),
    ...(card.quantization ? { quantizationLoss: -card.quantization.objectiveChange } : {}),
  };

  const production = await registry.getAlias(input.project, PRODUCTION);
  let decision: GateDecision;
  let champion: (GateScore & { version: number }) | undefined;
  if (production?.version === version) {
    decision = { action: 'promote', reason: `version ${version} is already in production` };
  } else {
    champion = production ? await championScore(deps, manifest, production.version) : undefined;
    decision = decidePromotion(manifest.spec.deploy, candidate, champion);
  }

  const output = await applyDecision(deps, { project: input.project, version, decision, production: production ?? undefined });
  await runLog.recordRunEvent(input.project, input.runId, 'promotion', {
    ...output,
    policy: manifest.spec.deploy.policy,
    margin: manifest.spec.deploy.margin,
    candidateObjective: candidate.objective,
    ...(candidate.quantizationLoss === undefined ? {} : { quantizationLoss: candidate.quantizationLoss }),
    ...(champion ? { championVersion: champion.version, championObjective: champion.objective } : {}),
  });
  await runLog.updateRunStatus(input.project, input.runId, 'succeeded', { stage: 'Promote' });
  return output;
}

/** The production model scored on this run's holdout; undefined when it cannot answer for these tasks. */
async function championScore(deps: DeployDependencies, manifest: RunManifest, version: number): Promise<(GateScore & { version: number }) | undefined> {
  const model = await loadVerifiedModel(deps, manifest.project, version);
  try {
    const { metrics } = await evaluateOnSplit(model, { store: deps.store, manifest, split: 'holdout' });
    return { ...scoreOf(manifest, metrics), version };
  } catch (error) {
    if (error instanceof DeployError && error.code === 'MODEL_TASKS_MISMATCH') return undefined;
    throw error;
  }
}

async function applyDecision(
  deps: DeployDependencies,
  context: { project: string; version: number; decision: GateDecision; production?: { version: number; revision: number } },
): Promise<PromoteOutput> {
  const { registry } = deps;
  const { project, version, decision, production } = context;
  if (decision.action === 'hold') {
    await registry.updateVersionStatus(project, version, decision.reason.startsWith('the deploy policy is "never"') ? 'candidate' : 'rejected', {
      reason: decision.reason,
    });
    return { version, promoted: false, alias: null, reason: decision.reason };
  }
  if (decision.action === 'canary') {
    const serving = await registry.getServingSet(project);
    const others = (serving?.challengers ?? []).filter((c) => c.version !== version);
    const room = Math.max(0, 1 - decision.trafficShare);
    const scaled = others.map((c) => ({ version: c.version, trafficShare: Math.min(c.trafficShare, room / Math.max(1, others.length)) }));
    await registry.setServingSet(
      project,
      { production: serving?.production ?? production!.version, challengers: [...scaled, { version, trafficShare: decision.trafficShare }] },
      { expectedRevision: serving?.revision },
    );
    await registry.updateVersionStatus(project, version, 'challenger', { reason: decision.reason });
    return { version, promoted: false, alias: null, reason: decision.reason };
  }
  try {
    await moveProduction(deps, project, { toVersion: version, expectedRevision: production?.revision });
  } catch (error) {
    if (error instanceof RegistryError && error.code === 'ALIAS_CONFLICT') {
      const reason = `another promotion moved production first (from version ${production?.version ?? 'none'}); version ${version} stays a candidate — run again to compare against the new champion`;
      await registry.updateVersionStatus(project, version, 'candidate', { reason });
      return { version, promoted: false, alias: null, reason };
    }
    throw error;
  }
  return { version, promoted: true, alias: PRODUCTION, reason: decision.reason };
}

/**
 * Points production at a version: the alias moves by a conditional write (the one place a race is
 * decided), then the serving set and statuses follow. Used by Promote, `models promote` and rollback.
 */
export async function moveProduction(
  deps: DeployDependencies,
  project: string,
  move: { toVersion: number; expectedRevision: number | undefined },
): Promise<{ version: number; previous?: number }> {
  const { registry } = deps;
  const moved = await registry.moveAlias(project, PRODUCTION, move);
  await servingFollowsAlias(deps, project, moved.version, moved.previous);
  return { version: moved.version, ...(moved.previous === undefined ? {} : { previous: moved.previous }) };
}

/** Moves production back to the version it replaced. */
export async function rollbackProduction(deps: DeployDependencies, project: string): Promise<{ version: number; previous?: number }> {
  const { registry } = deps;
  const current = await registry.getAlias(project, PRODUCTION);
  if (!current) throw new DeployError(`${project} has no production version to roll back; promote one first`, { code: 'NO_PRODUCTION', context: { project } });
  const rolled = await registry.rollback(project, PRODUCTION, { expectedRevision: current.revision });
  await servingFollowsAlias(deps, project, rolled.version, rolled.previous);
  return { version: rolled.version, ...(rolled.previous === undefined ? {} : { previous: rolled.previous }) };
}

async function servingFollowsAlias(deps: DeployDependencies, project: string, version: number, previous: number | undefined): Promise<void> {
  const { registry } = deps;
  const serving = await registry.getServingSet(project);
  const challengers = (serving?.challengers ?? []).filter((c) => c.version !== version);
  await registry.setServingSet(project, { production: version, challengers }, { expectedRevision: serving?.revision });
  await registry.updateVersionStatus(project, version, 'production', { reason: 'production alias moved here' });
  if (previous !== undefined && previous !== version) {
    await registry.updateVersionStatus(project, previous, 'retired', { reason: `replaced by version ${version}` });
  }
}
