/**
 * Lambda entry point of the Export stage; the logic is in lib/ (see lib/stages). It imports its
 * stage's own module, not lib/stages/index.ts, so the bundle holds only what Export runs.
 */
import { lambdaStageHandler } from '#lib/stages/lambda.ts';
import { exportStage } from '#lib/stages/export.ts';

export const handler = lambdaStageHandler(exportStage, { principal: 'export' });
