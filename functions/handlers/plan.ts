/**
 * Lambda entry point of the Plan stage; the logic is in lib/ (lib/pipeline/<state>/). It imports its
 * stage's own module, not the map of every stage (lib/pipeline/handlers.ts), so the bundle holds only what Plan runs.
 */
import { lambdaStageHandler } from '#lib/pipeline/lambda.ts';
import { planStage } from '#lib/pipeline/plan/stage.ts';

export const handler = lambdaStageHandler(planStage, { principal: 'plan' });
