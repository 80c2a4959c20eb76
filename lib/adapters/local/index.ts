/**
 * The local runtime: the embedded AWS stand-ins, the workflow runner and job launcher, staging of
 * local inputs, whole pipeline runs, schedules and `up` on this machine.
 */
export { RunInputError, stageRunInputs, type StagedRun } from './stageInputs.ts';
export { cronOf, nextFireTime, rateMs, runScheduleLoop, ScheduleError, type ScheduleLoopOptions } from './schedule.ts';
export { trainBaselines, type BaselineResult } from './baselines.ts';
export { JobWorkerPool, type JobWorkerPoolOptions, type JobWorkerStats, type WarmJobOptions, type WarmJobResult } from './jobWorkers.ts';
export {
  jobHostCommand,
  localJobCommands,
  localTrialThreads,
  localStageHandlers,
  newRunId,
  openLocalSession,
  resumePipelineLocally,
  runPipelineLocally,
  runStoredSpecLocally,
  RunInterruptedError,
  warmLocalJobs,
  type LocalRunOptions,
  type LocalRunResult,
  type LocalSession,
  type OpenLocalSessionOptions,
} from './localRun.ts';
export { HOLDER_FILE, HolderError, HolderSchema, holderPath, readHolder, removeHolder, writeHolder, type Holder } from './holder.ts';
export { startUp, UpError, type RunningUp, type UpOptions, type UpRun } from './up.ts';
export { DriftScenarioError, runDriftScenario, type DriftScenarioOptions, type DriftScenarioResult, type LoopWindow } from './driftScenario.ts';
