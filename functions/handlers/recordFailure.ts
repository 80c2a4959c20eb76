/**
 * Lambda entry point of the RecordFailure stage; the logic is in lib/ (see lib/stages). It imports its
 * stage's own module, not lib/stages/index.ts, so the bundle holds only what RecordFailure runs.
 */
import { lambdaStageHandler } from '#lib/stages/lambda.ts';
import { recordFailureStage } from '#lib/stages/recordFailureStage.ts';

export const handler = lambdaStageHandler(recordFailureStage, { principal: 'recordFailure' });
