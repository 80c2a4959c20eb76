/**
 * Every Lambda function of the stack as one table: the Lambda stages (from `STAGES`, so a stage
 * added to the workflow must get a row here before the stack compiles) and the serving functions.
 * The stack creates exactly these; `functions/handlers/<handler>.ts` is each one's entry point.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BATCH_STAGES, LAMBDA_STAGES, type LambdaStageName } from '#lib/pipeline/index.ts';
import { DeployError } from './errors.ts';

/** What a function may do with a resource; the access helpers turn it into IAM grants. */
export type Access = 'read' | 'readWrite';

export interface FunctionSpec {
  /** The handler's name: entry `functions/handlers/<handler>.ts`, construct id, dashboard label. */
  handler: string;
  /** The workflow state it serves, for stage functions. */
  stage?: LambdaStageName;
  memoryMiB: number;
  timeoutSeconds: number;
  /** /tmp size; ONNX models are downloaded there. */
  ephemeralStorageMiB: number;
  /**
   * Every handler reads its config with `configFromEnv`, which needs all three. `bucketWrites`:
   * key patterns (IAM wildcards) a `read` function may still write, each granted on its own.
   */
  access: { bucket: Access; bucketWrites?: readonly string[]; registryTable: Access; rewardTable: Access };
  /** Starts executions of the state machine (retraining on drift). */
  startsRuns: boolean;
  /** Served behind a Function URL with AWS_IAM auth. */
  url: boolean;
  /**
   * Runs an ONNX model, so its bundle ships onnxruntime-node (a large package, and a native
   * library loaded at cold start). Every other function's bundle must not import it: bundling
   * fails if one does (see vendorOnnxRuntime.ts).
   */
  runsModel: boolean;
}

/**
 * Which functions run an ONNX model, by handler: Prepare runs a bring-your-own encoder once to
 * read its signature, Export checks parity, Promote scores the holdout, Infer serves. Plan, Reward
 * and RecordFailure work on records and logs; Feedback updates counters; Monitor compares
 * projections of stored embeddings.
 */
const RUNS_MODEL: Record<string, boolean> = {
  prepare: true,
  plan: false,
  reward: false,
  export: true,
  promote: true,
  recordFailure: false,
  infer: true,
  feedback: false,
  monitor: false,
};

type StageExtras = Omit<FunctionSpec, 'handler' | 'stage' | 'timeoutSeconds' | 'startsRuns' | 'url' | 'runsModel'>;

const rw: Access = 'readWrite';

/** Infer's drift samples (`monitor/<project>/<hour>/v<version>/…`, lib/serve/drift.ts). */
const DRIFT_SAMPLE_KEYS = 'monitor/*';
/** The monitor's drift reference, built once per model version (`models/<project>/<version>/reference.json`, lib/serve/monitor.ts). */
const DRIFT_REFERENCE_KEYS = 'models/*/reference.json';

/** Sizing and access of each Lambda stage; the timeout comes from STAGES. Keyed by state, so the table is exhaustive. */
const STAGE_FUNCTIONS: Record<LambdaStageName, StageExtras> = {
  // Reads the raw datasets and fits the base-model graph (vocabulary, scalers) in memory.
  Prepare: { memoryMiB: 3008, ephemeralStorageMiB: 2048, access: { bucket: rw, registryTable: rw, rewardTable: 'read' } },
  // Plan and Reward record run events and the run's status in the run log (registry table).
  Plan: { memoryMiB: 1024, ephemeralStorageMiB: 512, access: { bucket: rw, registryTable: rw, rewardTable: rw } },
  Reward: { memoryMiB: 1024, ephemeralStorageMiB: 512, access: { bucket: rw, registryTable: rw, rewardTable: rw } },
  // Merges the trained heads behind the base model and checks parity in ONNX Runtime.
  // Reserves the version number (atomic counter) and registers the candidate version.
  Export: { memoryMiB: 3008, ephemeralStorageMiB: 4096, access: { bucket: rw, registryTable: rw, rewardTable: 'read' } },
  // Scores candidate and champion on the holdout, registers the version, moves the alias.
  Promote: { memoryMiB: 3008, ephemeralStorageMiB: 4096, access: { bucket: rw, registryTable: rw, rewardTable: rw } },
  RecordFailure: { memoryMiB: 256, ephemeralStorageMiB: 512, access: { bucket: 'read', registryTable: rw, rewardTable: 'read' } },
};

const stageFunctions: Omit<FunctionSpec, 'runsModel'>[] = LAMBDA_STAGES.map((stage) => ({
  handler: stage.handler,
  stage: stage.state,
  // A Lambda stops at 900 s; the state's TimeoutSeconds (same table) never waits longer than the function.
  timeoutSeconds: Math.min(stage.timeoutSeconds, 900),
  startsRuns: false,
  url: false,
  ...STAGE_FUNCTIONS[stage.state],
}));

const servingFunctions: Omit<FunctionSpec, 'runsModel'>[] = [
  // Routes between serving versions, runs the chosen ONNX model, logs the prediction for feedback.
  // Writes sampled inputs for drift under monitor/ only: a serving function cannot touch models or runs.
  {
    handler: 'infer',
    memoryMiB: 2048,
    timeoutSeconds: 30,
    ephemeralStorageMiB: 2048,
    access: { bucket: 'read', bucketWrites: [DRIFT_SAMPLE_KEYS], registryTable: 'read', rewardTable: rw },
    startsRuns: false,
    url: true,
  },
  // Joins a reward to its logged prediction and updates the arm counters.
  {
    handler: 'feedback',
    memoryMiB: 512,
    timeoutSeconds: 30,
    ephemeralStorageMiB: 512,
    access: { bucket: 'read', registryTable: 'read', rewardTable: rw },
    startsRuns: false,
    url: true,
  },
  // Online reward and input drift over a window; claims the window in the reward table and starts a
  // retraining execution when thresholds break.
  {
    handler: 'monitor',
    memoryMiB: 2048,
    timeoutSeconds: 300,
    ephemeralStorageMiB: 2048,
    access: { bucket: 'read', bucketWrites: [DRIFT_REFERENCE_KEYS], registryTable: 'read', rewardTable: rw },
    startsRuns: true,
    url: false,
  },
];

export const FUNCTIONS: readonly FunctionSpec[] = [...stageFunctions, ...servingFunctions].map((spec) => {
  const runsModel = RUNS_MODEL[spec.handler];
  if (runsModel === undefined) {
    throw new DeployError(`function "${spec.handler}" has no entry in RUNS_MODEL (cdk/functions.ts); say whether it runs an ONNX model`, {
      code: 'WIRING_INCOMPLETE',
      context: { handler: spec.handler },
    });
  }
  return { ...spec, runsModel };
});

/** Entry points by convention, relative to the repository root. */
export const handlerEntry = (handler: string): string => `functions/handlers/${handler}.ts`;
export const jobEntry = (job: string): string => `functions/jobs/${job}.ts`;

/** Every handler and job entry point the stack needs that does not exist under `root`. */
export function missingEntries(root: string): string[] {
  const entries = [...FUNCTIONS.map((f) => handlerEntry(f.handler)), ...BATCH_STAGES.map((s) => jobEntry(s.job))];
  return entries.filter((entry) => !existsSync(join(root, entry)));
}
