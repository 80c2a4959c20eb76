/** Lambda entry point of the Reward stage; the logic is in lib/ (see lib/stages). */
import { lambdaStageHandler } from '#lib/stages/index.ts';

export const handler = lambdaStageHandler('Reward');
