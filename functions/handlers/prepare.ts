/**
 * Lambda entry point of the Prepare stage; the logic is in lib/ (see lib/stages). It imports its
 * stage's own module, not lib/stages/index.ts, so the bundle holds only what Prepare runs.
 */
import { lambdaStageHandler } from '#lib/stages/lambda.ts';
import { prepareStage } from '#lib/stages/prepare.ts';

export const handler = lambdaStageHandler(prepareStage, { principal: 'prepare' });
