import type { RewardLog } from '#lib/adapters/registry/index.ts';
import type { RewardKind } from '#lib/domain/route/index.ts';
import { ServeError } from './errors.ts';

/**
 * Per-project serving settings, one item in the reward table beside the arm counters they govern
 * (kept by RewardLog). The reward kind decides both what feedback accepts (0/1 only for `bernoulli`) and the router's
 * posterior, so it lives with the counters rather than in a spec that later runs may change.
 * A project without the item routes on 0/1 rewards (clicks, accepts), the common case.
 */
export interface ServeSettings {
  rewardKind: RewardKind;
}

export const DEFAULT_SERVE_SETTINGS: ServeSettings = { rewardKind: 'bernoulli' };

const REWARD_KINDS: readonly RewardKind[] = ['bernoulli', 'gaussian'];

export class ServeSettingsStore {
  readonly #rewards: RewardLog;

  constructor(options: { rewards: RewardLog }) {
    this.#rewards = options.rewards;
  }

  async get(project: string): Promise<ServeSettings> {
    const kind = (await this.#rewards.getServeSettings(project)).rewardKind;
    return kind === undefined ? DEFAULT_SERVE_SETTINGS : { rewardKind: kind as RewardKind };
  }

  /** Sets the reward kind; change it only with a fresh serving set, since existing counters were kept under the old one. */
  async put(project: string, settings: ServeSettings): Promise<void> {
    if (!REWARD_KINDS.includes(settings.rewardKind)) {
      throw new ServeError(
        `rewardKind ${JSON.stringify(settings.rewardKind)} is not one of ${REWARD_KINDS.join(', ')}; use bernoulli for 0/1 rewards, gaussian for real ones`,
        {
          code: 'REQUEST_INVALID',
          context: { project, rewardKind: settings.rewardKind },
        },
      );
    }
    await this.#rewards.putServeSettings(project, { rewardKind: settings.rewardKind });
  }
}
