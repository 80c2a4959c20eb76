/** The workflow's Lambda stages wired to lib/: one handler map for AWS entry points and the local runner. */
export { stageDependencies, type StageDependencies } from './dependencies.ts';
export { createStageHandlers, STAGE_FACTORIES, type StageFactory, type StageHandler, type StageOptions } from './handlers.ts';
export { lambdaStageHandler } from './lambda.ts';
export { readableCause, recordFailure } from './recordFailure.ts';
export { recordFailureStage } from './recordFailureStage.ts';
export { exportStage } from './export.ts';
export { planStage } from './plan.ts';
export { prepareStage } from './prepare.ts';
export { promoteStage } from './promote.ts';
export { rewardStage } from './reward.ts';
