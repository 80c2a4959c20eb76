/**
 * Lambda entry point of the Prepare stage; the logic is in lib/ (lib/pipeline/<state>/). It imports its
 * stage's own module, not the map of every stage (lib/pipeline/handlers.ts), so the bundle holds only what Prepare runs.
 */
import { lambdaStageHandler } from '#lib/pipeline/lambda.ts';
import { prepareStage } from '#lib/pipeline/prepare/stage.ts';

export const handler = lambdaStageHandler(prepareStage, { principal: 'prepare' });
