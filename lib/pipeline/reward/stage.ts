/** The Reward stage: logs a generation's rewards, updates the policy, proposes the next generation or stops. */
import { rewardGeneration } from '#lib/pipeline/reward/reward.ts';
import { RewardInput, RewardOutput } from '#lib/pipeline/contracts.ts';
import type { StageFactory } from '#lib/pipeline/stage.ts';

export const rewardStage: StageFactory =
  ({ store, registry, runLog, rewards }) =>
  async (event) =>
    RewardOutput.parse(await rewardGeneration(RewardInput.parse(event), { store, registry, runLog, rewards }));
