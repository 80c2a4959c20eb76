/** The Reward stage: logs a generation's rewards, updates the policy, proposes the next generation or stops. */
import { rewardGeneration } from '#lib/agent/index.ts';
import { RewardInput, RewardOutput } from '#lib/workflow/contracts.ts';
import type { StageFactory } from './stage.ts';

export const rewardStage: StageFactory =
  ({ store, registry, rewards }) =>
  async (event) =>
    RewardOutput.parse(await rewardGeneration(RewardInput.parse(event), { store, registry, rewards }));
