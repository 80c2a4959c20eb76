/** The `agentflow` command line. */
export { buildProgram, type CliHooks } from './program.ts';
export { EXIT, exitCodeOf } from './output.ts';
export { createProgress, type Progress } from './progress.ts';
export { summarizeRun, type RunSummary } from './summary.ts';
export { openCliSession, type AwsCliSession, type CliSession, type GlobalOptions, type LocalCliSession } from './session.ts';
