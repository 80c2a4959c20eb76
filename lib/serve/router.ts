import type { ArmStats as RegistryArmStats, ModelRegistry, RewardLog, ServingSetState } from '#lib/adapters/registry/index.ts';
import { chooseArm, type Arm, type RewardKind } from '#lib/domain/route/index.ts';
import { type Rng } from '#lib/domain/random/index.ts';
import { ServeError } from './errors.ts';
import type { ServeSettings, ServeSettingsStore } from './settings.ts';

/** What routing a project needs: the serving set, its arms' counters and the reward kind. */
export interface ProjectRouting {
  project: string;
  servingSet: ServingSetState;
  stats: ReadonlyMap<number, RegistryArmStats>;
  settings: ServeSettings;
  fetchedAtMs: number;
}

export interface RoutingCacheOptions {
  registry: ModelRegistry;
  rewards: RewardLog;
  settings: ServeSettingsStore;
  /** How long a project's serving set and arm counters are reused before re-reading them. Default 5 s. */
  ttlMs?: number;
  clock?: () => number;
}

/**
 * A short-lived in-memory copy of each project's routing state. Thompson sampling tolerates stale
 * counters (it keeps exploring in proportion to its doubt), so re-reading DynamoDB every few
 * seconds rather than per request keeps the serving set, the settings and one read per version
 * off the request path at a cost of a few seconds' delay in the posteriors. Concurrent refreshes of one project share one read.
 */
export class RoutingCache {
  readonly #registry: ModelRegistry;
  readonly #rewards: RewardLog;
  readonly #settings: ServeSettingsStore;
  readonly #ttlMs: number;
  readonly #clock: () => number;
  readonly #entries = new Map<string, ProjectRouting>();
  readonly #refreshing = new Map<string, Promise<ProjectRouting>>();

  constructor(options: RoutingCacheOptions) {
    this.#registry = options.registry;
    this.#rewards = options.rewards;
    this.#settings = options.settings;
    this.#ttlMs = options.ttlMs ?? 5000;
    this.#clock = options.clock ?? Date.now;
  }

  /** The project's routing when a fresh copy is cached, without waiting; undefined when `get` must read it. */
  current(project: string): ProjectRouting | undefined {
    const cached = this.#entries.get(project);
    return cached && this.#clock() - cached.fetchedAtMs < this.#ttlMs ? cached : undefined;
  }

  async get(project: string): Promise<ProjectRouting> {
    const cached = this.current(project);
    if (cached) return cached;
    let refreshing = this.#refreshing.get(project);
    if (!refreshing) {
      refreshing = this.#read(project).finally(() => this.#refreshing.delete(project));
      this.#refreshing.set(project, refreshing);
    }
    return refreshing;
  }

  async #read(project: string): Promise<ProjectRouting> {
    const fetchedAtMs = this.#clock();
    const [servingSet, settings] = await Promise.all([this.#registry.getServingSet(project), this.#settings.get(project)]);
    if (!servingSet) {
      this.#entries.delete(project);
      throw new ServeError(`project "${project}" has no serving set, so nothing serves it; promote a version first (or check the project name)`, {
        code: 'PROJECT_NOT_SERVED',
        context: { project },
      });
    }
    const versions = servingVersions(servingSet);
    const stats = await this.#rewards.getArmStats(project, versions);
    const routing: ProjectRouting = { project, servingSet, stats: new Map(stats.map((s) => [s.version, s])), settings, fetchedAtMs };
    this.#entries.set(project, routing);
    return routing;
  }
}

/** Production first, then the challengers in order. */
export function servingVersions(set: Pick<ServingSetState, 'production' | 'challengers'>): number[] {
  return [set.production, ...set.challengers.map((c) => c.version)];
}

/**
 * The Thompson-sampling arms of the servable versions: a challenger's `trafficShare` is its canary
 * floor (`minShare`), production has none. Refused versions drop out, and their floors with them.
 */
export function armsOf(routing: ProjectRouting, servable: (version: number) => boolean): Arm[] {
  const kind: RewardKind = routing.settings.rewardKind;
  const floors = new Map(routing.servingSet.challengers.map((c) => [c.version, c.trafficShare]));
  return servingVersions(routing.servingSet)
    .filter(servable)
    .map((version) => {
      const stats = routing.stats.get(version);
      const minShare = floors.get(version);
      return {
        version: String(version),
        kind,
        stats: {
          count: stats?.count ?? 0,
          sum: stats?.sum ?? 0,
          sumSquares: stats?.sumSquares ?? 0,
          successes: stats?.successes ?? 0,
          failures: stats?.failures ?? 0,
        },
        ...(minShare === undefined ? {} : { minShare }),
      };
    });
}

/** The version for one request among the servable ones, or undefined when none is. */
export function routeRequest(routing: ProjectRouting, servable: (version: number) => boolean, rng: Rng): number | undefined {
  const { production, challengers } = routing.servingSet;
  if (challengers.length === 0) return servable(production) ? production : undefined;
  const arms = armsOf(routing, servable);
  if (arms.length === 0) return undefined;
  if (arms.length === 1) return Number(arms[0].version);
  return Number(chooseArm(arms, rng));
}
