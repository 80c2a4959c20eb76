/** Lambda entry point of the Promote stage; the logic is in lib/ (see lib/stages). */
import { lambdaStageHandler } from '#lib/stages/index.ts';

export const handler = lambdaStageHandler('Promote');
