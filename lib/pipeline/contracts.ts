/**
 * What each stage of the workflow receives and returns. The state machine builds every stage's
 * input from these shapes (see definition.ts) and reads back only the fields named here, so a
 * handler or job that honours its contract works unchanged in AWS and in the local runner.
 *
 * Step Functions caps a payload at 256 KB, so contracts carry ids and S3 URIs, never data.
 * A Batch job returns no payload: it writes its result JSON to the URI it is given in
 * `AGENTFLOW_OUTPUT_URI`, and the next stage reads it from there:
 *
 *   <runUri>/embed/result.json                 EmbedJobResult   (read by Plan)
 *   <runUri>/trials/<trialId>/result.json      TrialJobResult   (read by Reward, Export)
 *
 * where `runUri` is `s3://<bucket>/runs/<runId>` (the store's `runs/<runId>/` prefix).
 */
import { z } from 'zod';
import { ARCHITECTURES } from '#lib/domain/spec/index.ts';

// ── ids and locations ────────────────────────────────────────────────────────────────────────

/** Run and trial ids become Batch job names (letters, digits, `-`, `_`, at most 128 in all) and S3 key segments. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$/;
/** The same rule as the spec's project name. */
const PROJECT = /^[a-z0-9][a-z0-9-]{0,39}$/;

export const RunId = z.string().regex(ID, 'a run id is 1-48 letters, digits, "-" or "_", starting with a letter or digit');
export const TrialId = z.string().regex(ID, 'a trial id is 1-48 letters, digits, "-" or "_", starting with a letter or digit');
export const ProjectName = z.string().regex(PROJECT, 'a project name is 1-40 lowercase letters, digits or dashes');
export const S3Uri = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'expected an s3://bucket/key URI');
/** `s3://<bucket>/runs/<runId>`, no trailing slash: the definition appends `/embed/…` and `/trials/…` to it. */
export const RunUri = S3Uri.refine((uri) => !uri.endsWith('/'), 'a run URI has no trailing slash');

/**
 * The one naming rule for executions of the workflow, on AWS and locally: an execution is named by
 * its run id, and the n-th restart of a run (`agentflow resume`, when a redrive would only repeat
 * the failure) by `<runId>-resume-<n>`. Step Functions refuses a second execution of one name, so
 * a retried start attaches to the first instead of starting a second run; it follows that run
 * ids must be unique in a deployment, not only in their project.
 */
export function executionName(run: { runId: string; attempt?: number }): string {
  return run.attempt ? `${run.runId}-resume-${run.attempt}` : run.runId;
}

/** Where the Embed job writes its EmbedJobResult. The definition formats the same path with `States.Format`. */
export const EMBED_RESULT_PATH = '/embed/result.json';
/** Where a trial job writes its TrialJobResult, `{}` being the trial id. */
export const TRIAL_RESULT_PATH = '/trials/{}/result.json';

export function embedResultUri(runUri: string): string {
  return `${runUri}${EMBED_RESULT_PATH}`;
}
export function trialResultUri(runUri: string, trialId: string): string {
  return `${runUri}${TRIAL_RESULT_PATH.replace('{}', trialId)}`;
}

// ── the run ──────────────────────────────────────────────────────────────────────────────────

/** The execution input, kept at the root of the state for the whole run. */
export const RunContext = z.object({
  runId: RunId,
  project: ProjectName,
  /** The user's spec.json. */
  specUri: S3Uri,
});
export type RunContext = z.infer<typeof RunContext>;

// ── Prepare (Lambda) ─────────────────────────────────────────────────────────────────────────

export const PrepareInput = RunContext.extend({
  /** The Step Functions execution (`$$.Execution.Id`), stored on the run record so a run links to its history. */
  executionId: z.string().min(1),
});
export type PrepareInput = z.infer<typeof PrepareInput>;

export const PrepareOutput = z.object({
  /** `s3://<bucket>/runs/<runId>`: every later stage writes under it. */
  runUri: RunUri,
  /** The validated manifest (tasks, splits, objective, fitted base-model graph). */
  manifestUri: S3Uri,
  /** `s3://<bucket>/features/<digest>/`: content-addressed, so Embed skips work another run already did. */
  featuresUri: S3Uri,
});
export type PrepareOutput = z.infer<typeof PrepareOutput>;

// ── Embed (Batch job) ────────────────────────────────────────────────────────────────────────

/** The environment of the Embed job, on top of the config variables (`configToEnv`). */
export const EmbedJobEnv = z.object({
  AGENTFLOW_RUN_ID: RunId,
  AGENTFLOW_PROJECT: ProjectName,
  AGENTFLOW_MANIFEST_URI: S3Uri,
  AGENTFLOW_FEATURES_URI: S3Uri,
  /** Where to write the EmbedJobResult: `<runUri>/embed/result.json`. */
  AGENTFLOW_OUTPUT_URI: S3Uri,
});
export type EmbedJobEnv = z.infer<typeof EmbedJobEnv>;

export const EmbedJobResult = z.object({
  featuresUri: S3Uri,
  rows: z.number().int().nonnegative(),
  dims: z.number().int().positive(),
  shards: z.number().int().positive(),
  /** True when the shards already existed under the digest and nothing was embedded. */
  cached: z.boolean(),
});
export type EmbedJobResult = z.infer<typeof EmbedJobResult>;

// ── Plan (Lambda) ────────────────────────────────────────────────────────────────────────────

export const PlanInput = z.object({
  runId: RunId,
  project: ProjectName,
  runUri: RunUri,
  manifestUri: S3Uri,
  featuresUri: S3Uri,
  /** The Embed job's EmbedJobResult. */
  embedResultUri: S3Uri,
});
export type PlanInput = z.infer<typeof PlanInput>;

/** The manifest's encoder ids: `e0`, `e1`, … in the order of `spec.baseModels`. */
export const EncoderId = z.string().regex(/^e[0-9]{1,3}$/, 'an encoder id is "e" and its index in the manifest, e.g. e0');
/** One of the spec's `model.architecture` candidates. */
export const ArchitectureName = z.enum(ARCHITECTURES);

/**
 * One trial to run: task weights λ (λ = K·softmax(θ)) and an optional learning rate. When the
 * agent screens candidates, a proposal also names the encoder and architecture to train and caps
 * the epochs; without them the trial trains the manifest's first encoder and the spec's first
 * architecture for `training.epochs`.
 */
export const Proposal = z.object({
  trialId: TrialId,
  lambda: z.record(z.string(), z.number().nonnegative().finite()),
  learningRate: z.number().positive().finite().optional(),
  /** The searched hyperparameters (`tuning.search`) by name, applied over the spec's own settings. */
  hyperparameters: z.record(z.string(), z.number().finite()).optional(),
  encoderId: EncoderId.optional(),
  architecture: ArchitectureName.optional(),
  maxEpochs: z.number().int().positive().optional(),
});
export type Proposal = z.infer<typeof Proposal>;

const uniqueTrialIds = (proposals: Proposal[]) => new Set(proposals.map((p) => p.trialId)).size === proposals.length;

export const PlanOutput = z.object({
  /** 1 for the first generation; Reward increments it. */
  generation: z.number().int().positive(),
  proposals: z.array(Proposal).min(1).refine(uniqueTrialIds, 'trial ids must be unique'),
  /** How many trial jobs run at once (the Map's MaxConcurrency). */
  maxConcurrency: z.number().int().positive(),
});
export type PlanOutput = z.infer<typeof PlanOutput>;

// ── RunTrial (Batch job, one per proposal, inside the Trials Map) ───────────────────────────────

/** The environment of a trial job, on top of the config variables (`configToEnv`). */
export const TrialJobEnv = z.object({
  AGENTFLOW_RUN_ID: RunId,
  AGENTFLOW_PROJECT: ProjectName,
  AGENTFLOW_GENERATION: z.string().regex(/^[1-9][0-9]*$/),
  AGENTFLOW_TRIAL_ID: TrialId,
  /** The Proposal as JSON (`States.JsonToString`); small: a few task weights. */
  AGENTFLOW_PROPOSAL: z.string(),
  AGENTFLOW_MANIFEST_URI: S3Uri,
  AGENTFLOW_FEATURES_URI: S3Uri,
  /** Where to write the TrialJobResult: `<runUri>/trials/<trialId>/result.json`. */
  AGENTFLOW_OUTPUT_URI: S3Uri,
});
export type TrialJobEnv = z.infer<typeof TrialJobEnv>;

/** A trial job's inputs, parsed from its environment. */
export interface TrialJob {
  runId: string;
  project: string;
  generation: number;
  proposal: Proposal;
  manifestUri: string;
  featuresUri: string;
  outputUri: string;
}

/** Parses and checks a trial job's environment; throws a ZodError naming the bad variable. */
export function parseTrialJobEnv(env: NodeJS.ProcessEnv): TrialJob {
  const vars = TrialJobEnv.parse(env);
  const proposal = z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'AGENTFLOW_PROPOSAL is not JSON' });
        return z.NEVER;
      }
    })
    .pipe(Proposal)
    .parse(vars.AGENTFLOW_PROPOSAL);
  if (proposal.trialId !== vars.AGENTFLOW_TRIAL_ID) {
    throw new z.ZodError([
      {
        code: 'custom',
        path: ['AGENTFLOW_PROPOSAL', 'trialId'],
        message: `is ${proposal.trialId} but AGENTFLOW_TRIAL_ID is ${vars.AGENTFLOW_TRIAL_ID}`,
        input: proposal.trialId,
      },
    ]);
  }
  return {
    runId: vars.AGENTFLOW_RUN_ID,
    project: vars.AGENTFLOW_PROJECT,
    generation: Number(vars.AGENTFLOW_GENERATION),
    proposal,
    manifestUri: vars.AGENTFLOW_MANIFEST_URI,
    featuresUri: vars.AGENTFLOW_FEATURES_URI,
    outputUri: vars.AGENTFLOW_OUTPUT_URI,
  };
}

/**
 * What a trial job writes to its output URI. A job that fails cleanly (NaN guard, no data for a
 * task) writes `status: 'failed'` with its reason and then exits non-zero, so Reward can tell why.
 */
export const TrialJobResult = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('succeeded'),
    trialId: TrialId,
    generation: z.number().int().positive(),
    proposal: Proposal,
    /** Validation metrics per task, per metric name (e.g. `{ spam: { auc: 0.93 } }`). */
    metrics: z.record(z.string(), z.record(z.string(), z.number())),
    weightsUri: S3Uri,
    /**
     * The encoder whose features the weights were trained on, and the heads' architecture. Export
     * must take the encoder from here: two encoders may share a dimension.
     */
    encoderId: EncoderId.optional(),
    architecture: ArchitectureName.optional(),
    /** Wall time of the training, for the trial log. */
    durationMs: z.number().nonnegative().optional(),
  }),
  z.object({
    status: z.literal('failed'),
    trialId: TrialId,
    generation: z.number().int().positive(),
    proposal: Proposal,
    reason: z.string(),
    durationMs: z.number().nonnegative().optional(),
  }),
]);
export type TrialJobResult = z.infer<typeof TrialJobResult>;

/**
 * One element of the Trials Map's result. A failed trial does not fail the Map: the iterator
 * catches it into `status: 'failed'` with the error name. The error's Cause is left out on
 * purpose: in AWS it is the whole Batch job description (kilobytes), and a generation of them
 * could pass the 256 KB payload limit; the job's own result file says why it failed.
 */
export const TrialOutcome = z.discriminatedUnion('status', [
  z.object({ trialId: TrialId, status: z.literal('succeeded'), jobId: z.string(), resultUri: S3Uri }),
  z.object({ trialId: TrialId, status: z.literal('failed'), error: z.string(), resultUri: S3Uri }),
]);
export type TrialOutcome = z.infer<typeof TrialOutcome>;

// ── Reward (Lambda) ──────────────────────────────────────────────────────────────────────────

export const RewardInput = z.object({
  runId: RunId,
  project: ProjectName,
  runUri: RunUri,
  manifestUri: S3Uri,
  generation: z.number().int().positive(),
  /** The generation's proposals, so a failed trial (no result file) still has its λ for the policy update. */
  proposals: z.array(Proposal).min(1),
  trials: z.array(TrialOutcome),
});
export type RewardInput = z.infer<typeof RewardInput>;

/**
 * Either the next generation (`done: false`, non-empty `proposals`, `generation` incremented) or
 * the end of tuning (`done: true`, `bestTrialId` set; a run where every trial failed is an error,
 * not `done`). `bestTrialId` is null rather than absent so the state machine can always select it.
 */
export const RewardOutput = z
  .object({
    done: z.boolean(),
    generation: z.number().int().positive(),
    proposals: z.array(Proposal).refine(uniqueTrialIds, 'trial ids must be unique'),
    maxConcurrency: z.number().int().positive(),
    bestTrialId: TrialId.nullable(),
  })
  .refine((r) => !r.done || r.bestTrialId !== null, { message: 'done requires bestTrialId', path: ['bestTrialId'] })
  .refine((r) => r.done || r.proposals.length > 0, { message: 'not done requires the next proposals', path: ['proposals'] });
export type RewardOutput = z.infer<typeof RewardOutput>;

// ── Export (Lambda) ──────────────────────────────────────────────────────────────────────────

export const ExportInput = z.object({
  runId: RunId,
  project: ProjectName,
  runUri: RunUri,
  manifestUri: S3Uri,
  bestTrialId: TrialId,
  /** The best trial's TrialJobResult. */
  bestTrialResultUri: S3Uri,
});
export type ExportInput = z.infer<typeof ExportInput>;

export const ExportOutput = z.object({
  modelUri: S3Uri,
  cardUri: S3Uri,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sizeBytes: z.number().int().positive(),
});
export type ExportOutput = z.infer<typeof ExportOutput>;

// ── Promote (Lambda) ─────────────────────────────────────────────────────────────────────────

export const PromoteInput = z.object({
  runId: RunId,
  project: ProjectName,
  manifestUri: S3Uri,
  modelUri: S3Uri,
  cardUri: S3Uri,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type PromoteInput = z.infer<typeof PromoteInput>;

export const PromoteOutput = z.object({
  /** The registry version created for the candidate (one per run, even when retried). */
  version: z.number().int().positive(),
  promoted: z.boolean(),
  /** The alias moved to the new version, or null when the gate kept the champion. */
  alias: z.string().nullable(),
  /** Why the gate passed or held, e.g. `objective 0.91 beats 0.88 by 0.03 ≥ margin 0.01`. */
  reason: z.string(),
});
export type PromoteOutput = z.infer<typeof PromoteOutput>;

// ── RecordFailure (Lambda) ───────────────────────────────────────────────────────────────────

/** A caught error as Step Functions hands it over. `Cause` is a string: JSON for Lambda and Batch errors. */
export const CaughtError = z.object({ Error: z.string(), Cause: z.string().optional() });
export type CaughtError = z.infer<typeof CaughtError>;

export const RecordFailureInput = z.object({
  runId: RunId,
  project: ProjectName,
  /** The state that failed (`Prepare`, `Trials`, …). */
  failedState: z.string(),
  error: CaughtError,
});
export type RecordFailureInput = z.infer<typeof RecordFailureInput>;

/** The failure as recorded; `error`/`cause` become the execution's own Error and Cause. */
export const RecordFailureOutput = z.object({
  runId: RunId,
  status: z.literal('FAILED'),
  /**
   * The error name the execution ends with, e.g. `SpecError`, `Agentflow.JobFailed`. Never
   * `States.*`: AWS reserves that prefix for its own errors, so a Fail state may not raise one.
   */
  error: z.string().refine((name) => !name.startsWith('States.'), {
    error: (issue) =>
      `${JSON.stringify(issue.input)} uses the States. prefix AWS reserves for its own errors; RecordFailure must give it a project name such as Agentflow.JobFailed`,
  }),
  /** A readable cause, unpacked from the Lambda or Batch JSON when there is one. */
  cause: z.string(),
});
export type RecordFailureOutput = z.infer<typeof RecordFailureOutput>;

// ── the execution's output ───────────────────────────────────────────────────────────────────

/** The state at Succeed: the run context plus each stage's small result. */
export const WorkflowOutput = RunContext.extend({
  prepared: PrepareOutput,
  embed: z.object({ jobId: z.string() }),
  plan: RewardOutput,
  trials: z.array(TrialOutcome),
  exported: ExportOutput,
  promotion: PromoteOutput,
});
export type WorkflowOutput = z.infer<typeof WorkflowOutput>;
