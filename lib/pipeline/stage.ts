import type { StageDependencies } from './dependencies.ts';

export type StageHandler = (event: unknown) => Promise<unknown>;

export interface StageOptions {
  /** What started the run (`aws`, `cli`, `schedule`, …), recorded by Prepare. */
  trigger?: string;
}

/**
 * One Lambda stage as a function of its event: input parsed with the stage's contract, one call
 * into the stage's logic, output checked against the contract (a wrong shape fails here, by name, rather than
 * as an uncatchable `States.Runtime` in the state machine).
 *
 * Each stage has its own module (lib/pipeline/<state>/stage.ts) importing only what it runs, so a Lambda
 * entry point that imports its stage alone bundles nothing of the others: ONNX Runtime (a large package
 * and a native library load at cold start) only where a model runs.
 */
export type StageFactory = (deps: StageDependencies, options: StageOptions) => StageHandler;
