/**
 * Lambda entry point of the Reward stage; the logic is in lib/ (see lib/stages). It imports its
 * stage's own module, not lib/stages/index.ts, so the bundle holds only what Reward runs.
 */
import { lambdaStageHandler } from '#lib/stages/lambda.ts';
import { rewardStage } from '#lib/stages/reward.ts';

export const handler = lambdaStageHandler(rewardStage, { principal: 'reward' });
