import * as z from 'zod';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

import { shardKey } from '#lib/pipeline/embed/index.ts';
import { RunManifest } from '#lib/domain/run/index.ts';
import { readShard, type ShardBatch, type SplitName } from '#lib/domain/shards/index.ts';
import { canonicalJson, keys, type ArtifactStore } from '#lib/adapters/store/index.ts';
import { TrainError } from '#lib/domain/train/errors.ts';
import { trainTrial, type ExecutionProviders, type TrainProgress, type TrainResult } from '#lib/domain/train/trainer.ts';
import { saveTrialWeights } from './weights.ts';
import { TrialJobResult, type TrialJob } from '#lib/pipeline/contracts.ts';

/** Where Embed puts an encoder's split (`shardKey`), as a URI: `<featuresUri><encoderId>/<split>.arrow`. */
export function shardUri(featuresUri: string, encoderId: string, split: SplitName): string {
  return shardKey(featuresUri.endsWith('/') ? featuresUri : `${featuresUri}/`, encoderId, split);
}

/** `AGENTFLOW_DEVICE` → execution providers: unset or `cpu` → CPU, `cuda` → CUDA only (no fallback). */
export function executionProvidersFor(device: string | undefined): ExecutionProviders {
  const value = (device ?? '').trim().toLowerCase();
  if (value === '' || value === 'cpu') return ['cpu'];
  if (value === 'cuda' || value === 'gpu') return ['cuda'];
  throw new TrainError(`AGENTFLOW_DEVICE=${JSON.stringify(device)} is not a device; set it to "cpu" or "cuda", or leave it unset for the CPU`, {
    code: 'INVALID_INPUT',
    context: { device },
  });
}

/** `AGENTFLOW_INTRA_OP_THREADS` → ONNX Runtime's intra-op thread count; unset leaves ORT's default. */
export function intraOpThreadsFrom(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const threads = Number(value);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new TrainError(`AGENTFLOW_INTRA_OP_THREADS=${JSON.stringify(value)} is not a positive integer; set a thread count such as 2, or unset it`, {
      code: 'INVALID_INPUT',
      context: { value },
    });
  }
  return threads;
}

export interface TrialJobDependencies {
  readonly store: ArtifactStore;
  /** Value of `AGENTFLOW_DEVICE`. */
  readonly device?: string;
  readonly intraOpNumThreads?: number;
  /** Where the splits are downloaded for the job's lifetime. Default the OS temp folder. */
  readonly tmpDir?: string;
  /** One progress line at a time (the job prints them to stdout). */
  readonly log?: (line: string) => void;
  /** Milliseconds since some origin; default `performance.now`. */
  readonly clock?: () => number;
  /** Caps the epochs (tests and screening). */
  readonly maxEpochs?: number;
}

/** A failure that is the trial's own outcome (for Reward to learn from), not a broken job to retry. */
const CLEAN_FAILURES = new Set(['DIVERGED', 'NO_LABELS', 'VALIDATION']);

/**
 * One trial: read the manifest, fetch the encoder's train and validation shards once to local
 * disk (each epoch then streams from disk, so memory stays bounded by the shuffle buffer), train,
 * write `weights.bin`/`weights.json` and `training.json` under the trial's folder, and the
 * `TrialJobResult` to the job's output URI. A diverged trial or a task without labelled rows
 * writes `status: 'failed'` with the reason and returns it; the job then exits non-zero.
 * Anything else (S3, device, a bad manifest) throws, so Batch may retry.
 *
 * The trial trains the proposal's encoder and architecture (by default the manifest's first
 * encoder and the spec's first architecture) for at most the proposal's `maxEpochs`, and says in
 * its result which encoder and architecture the weights belong to.
 */
export async function runTrialJob(job: TrialJob, deps: TrialJobDependencies): Promise<TrialJobResult> {
  const { store } = deps;
  const log = deps.log ?? (() => {});
  const clock = deps.clock ?? (() => performance.now());
  const started = clock();
  const { proposal, generation } = job;
  const { trialId } = proposal;
  const providers = executionProvidersFor(deps.device);

  // A resumed run re-submits the generation it stopped in: a trial that already finished with
  // this same proposal is not trained again (training is deterministic, so it would only
  // rewrite the same bytes at the cost of the whole trial).
  const done = await previousResult(store, job);
  if (done) {
    log(`trial ${trialId}: already ${done.status} in an earlier attempt of this run; keeping that result`);
    return done;
  }

  const manifest = await store.getJson(job.manifestUri, RunManifest);
  const encoder = proposal.encoderId === undefined ? manifest.encoders[0] : manifest.encoders.find((entry) => entry.id === proposal.encoderId);
  if (encoder === undefined) {
    const listed = manifest.encoders.map((entry) => entry.id).join(', ') || 'none';
    throw new TrainError(
      proposal.encoderId === undefined
        ? `manifest ${job.manifestUri} lists no encoders; re-run Prepare`
        : `proposal ${trialId} asks for encoder ${proposal.encoderId}, but manifest ${job.manifestUri} lists ${listed}; the proposal must name one of the run's encoders`,
      { code: 'INVALID_INPUT', context: { manifestUri: job.manifestUri, encoderId: proposal.encoderId } },
    );
  }
  const spec = manifest.spec;
  const architecture = proposal.architecture ?? spec.model.architectures[0];
  if (!spec.model.architectures.includes(architecture)) {
    throw new TrainError(
      `proposal ${trialId} asks for architecture ${architecture}, which is not a candidate of the spec (${spec.model.architectures.join(', ')})`,
      {
        code: 'INVALID_INPUT',
        context: { architecture },
      },
    );
  }
  // The proposal's cap (a screening trial) and the job's own cap both apply.
  const caps = [proposal.maxEpochs, deps.maxEpochs].filter((cap): cap is number => cap !== undefined);
  const maxEpochs = caps.length > 0 ? Math.min(...caps) : undefined;
  const epochs = Math.min(spec.training.epochs, maxEpochs ?? Infinity);
  log(
    `trial ${trialId}: generation ${generation}, encoder ${encoder.id} (dim ${encoder.dimension}), ${architecture}, weighting ${spec.training.weighting}, λ ${formatRecord(proposal.lambda)}, lr ${proposal.learningRate ?? spec.training.learningRate}${proposal.hyperparameters ? `, ${formatRecord(proposal.hyperparameters)}` : ''}, device ${providers.join('+')}`,
  );

  const dir = await mkdtemp(join(deps.tmpDir ?? tmpdir(), `agentflow-trial-${trialId}-`));
  try {
    const local: Record<'train' | 'validation', string> = { train: join(dir, 'train.arrow'), validation: join(dir, 'validation.arrow') };
    for (const split of ['train', 'validation'] as const) {
      const uri = shardUri(job.featuresUri, encoder.id, split);
      await pipeline(await store.getStream(uri), createWriteStream(local[split]));
    }
    const source = (split: 'train' | 'validation') => (): AsyncIterable<ShardBatch> => readShard(createReadStream(local[split]), { dim: encoder.dimension });

    let result: TrainResult;
    try {
      result = await trainTrial({
        spec,
        encoder,
        proposal,
        architecture,
        data: { train: source('train'), validation: source('validation') },
        options: {
          executionProviders: providers,
          ...(deps.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: deps.intraOpNumThreads }),
          ...(maxEpochs === undefined ? {} : { maxEpochs }),
          onProgress: (progress) => log(progressLine(trialId, epochs, progress)),
        },
      });
    } catch (error) {
      if (!(error instanceof TrainError) || !CLEAN_FAILURES.has(error.code)) throw error;
      const failed = TrialJobResult.parse({
        status: 'failed',
        trialId,
        generation,
        proposal,
        reason: `${error.code}: ${error.message}`,
        durationMs: Math.round(clock() - started),
      });
      await store.putJson(job.outputUri, failed);
      log(`trial ${trialId}: failed — ${error.message}`);
      return failed;
    }

    const weightsKey = keys.trialFile(job.runId, trialId, 'weights.bin');
    const stored = await saveTrialWeights(store, weightsKey, result.weights);
    await store.putJson(keys.trialFile(job.runId, trialId, 'training.json'), {
      trialId,
      generation,
      architecture: result.architecture,
      encoder: encoder.id,
      epochsRun: result.epochsRun,
      bestEpoch: result.bestEpoch,
      stoppedEarly: result.stoppedEarly,
      steps: result.steps,
      objective: result.objective,
      history: result.history,
      weightsSha256: stored.bin.sha256,
    });
    const succeeded = TrialJobResult.parse({
      status: 'succeeded',
      trialId,
      generation,
      proposal,
      metrics: result.metrics,
      weightsUri: stored.bin.uri,
      encoderId: encoder.id,
      architecture: result.architecture,
      durationMs: Math.round(clock() - started),
    });
    await store.putJson(job.outputUri, succeeded);
    log(
      `trial ${trialId}: done — best epoch ${result.bestEpoch + 1}/${result.epochsRun}${result.stoppedEarly ? ' (stopped early)' : ''}, objective ${result.objective.toFixed(4)}, weights ${stored.bin.uri}`,
    );
    return succeeded;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function formatRecord(values: Readonly<Record<string, number>>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(4)}`)
    .join(' ');
}

function progressLine(trialId: string, epochs: number, p: TrainProgress): string {
  const losses = formatRecord(p.losses);
  if (p.kind === 'step') return `trial ${trialId}: epoch ${p.epoch + 1}/${epochs} step ${p.step} loss ${losses}`;
  const metrics = Object.entries(p.metrics ?? {})
    .map(([task, m]) => `${task}{${formatRecord(m)}}`)
    .join(' ');
  return `trial ${trialId}: epoch ${p.epoch + 1}/${epochs} step ${p.step} train loss ${losses} | validation ${metrics} | objective ${p.objective?.toFixed(4)}`;
}

/** The result an earlier attempt of this trial wrote, when it ran the same proposal to success. */
async function previousResult(store: ArtifactStore, job: TrialJob): Promise<TrialJobResult | undefined> {
  const document = await store.findJson(job.outputUri, z.unknown());
  if (document === undefined) return undefined;
  const parsed = TrialJobResult.safeParse(document);
  if (!parsed.success || parsed.data.status !== 'succeeded') return undefined;
  return canonicalJson(parsed.data.proposal) === canonicalJson(job.proposal) ? parsed.data : undefined;
}
