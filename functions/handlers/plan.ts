/**
 * Lambda entry point of the Plan stage; the logic is in lib/ (see lib/stages). It imports its
 * stage's own module, not lib/stages/index.ts, so the bundle holds only what Plan runs.
 */
import { lambdaStageHandler } from '#lib/stages/lambda.ts';
import { planStage } from '#lib/stages/plan.ts';

export const handler = lambdaStageHandler(planStage, { principal: 'plan' });
