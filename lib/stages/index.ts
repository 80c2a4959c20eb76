/** The workflow's Lambda stages wired to lib/: one handler map for AWS entry points and the local runner. */
export { stageDependencies, type StageDependencies } from './dependencies.ts';
export { createStageHandlers, type StageHandler } from './handlers.ts';
export { lambdaStageHandler } from './lambda.ts';
export { readableCause, recordFailure } from './recordFailure.ts';
