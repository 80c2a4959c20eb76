/**
 * Lambda entry point of the Export stage; the logic is in lib/ (lib/pipeline/<state>/). It imports its
 * stage's own module, not the map of every stage (lib/pipeline/handlers.ts), so the bundle holds only what Export runs.
 */
import { lambdaStageHandler } from '#lib/pipeline/lambda.ts';
import { exportStage } from '#lib/pipeline/export/stage.ts';

export const handler = lambdaStageHandler(exportStage, { principal: 'export' });
