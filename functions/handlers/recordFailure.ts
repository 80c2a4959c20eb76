/**
 * Lambda entry point of the RecordFailure stage; the logic is in lib/ (lib/pipeline/<state>/). It imports its
 * stage's own module, not the map of every stage (lib/pipeline/handlers.ts), so the bundle holds only what RecordFailure runs.
 */
import { lambdaStageHandler } from '#lib/pipeline/lambda.ts';
import { recordFailureStage } from '#lib/pipeline/recordFailure/stage.ts';

export const handler = lambdaStageHandler(recordFailureStage, { principal: 'recordFailure' });
