/**
 * Lambda entry point of the Reward stage; the logic is in lib/ (lib/pipeline/<state>/). It imports its
 * stage's own module, not the map of every stage (lib/pipeline/handlers.ts), so the bundle holds only what Reward runs.
 */
import { lambdaStageHandler } from '#lib/pipeline/lambda.ts';
import { rewardStage } from '#lib/pipeline/reward/stage.ts';

export const handler = lambdaStageHandler(rewardStage, { principal: 'reward' });
