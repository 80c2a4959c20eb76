/**
 * Lambda entry point of the Promote stage; the logic is in lib/ (see lib/stages). It imports its
 * stage's own module, not lib/stages/index.ts, so the bundle holds only what Promote runs.
 */
import { lambdaStageHandler } from '#lib/stages/lambda.ts';
import { promoteStage } from '#lib/stages/promote.ts';

export const handler = lambdaStageHandler(promoteStage, { principal: 'promote' });
