/**
 * Lambda entry point of the Promote stage; the logic is in lib/ (lib/pipeline/<state>/). It imports its
 * stage's own module, not the map of every stage (lib/pipeline/handlers.ts), so the bundle holds only what Promote runs.
 */
import { lambdaStageHandler } from '#lib/pipeline/lambda.ts';
import { promoteStage } from '#lib/pipeline/promote/stage.ts';

export const handler = lambdaStageHandler(promoteStage, { principal: 'promote' });
