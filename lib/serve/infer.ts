import type * as ort from 'onnxruntime-node';
import * as z from 'zod';
import type { CardTask } from '#lib/domain/run/index.ts';
import { modelOutputName } from '#lib/domain/run/index.ts';
import { encoderFeeds } from '#lib/domain/encoders/index.ts';
import { renderValue } from '#lib/domain/spec/index.ts';
import { errorLogFields } from '#lib/domain/errors/index.ts';
import type { ServeContext } from './context.ts';
import { ServeError, badRequest } from './errors.ts';
import { handleFunctionUrl, type FunctionUrlResult } from './http.ts';
import type { LoadedModel } from './models.ts';
import { isProjectName, projectField, parseRequest } from './requests.ts';
import { routeRequest, servingVersions, type ProjectRouting } from './router.ts';

export const inferRequestSchema = z.strictObject({
  project: projectField,
  records: z.array(z.unknown(), { error: (issue) => `is ${renderValue(issue.input)}; send an array of records (objects of the model's input fields)` }),
  version: z
    .int({ error: (issue) => `is ${renderValue(issue.input)}; pin a version by its number, or leave version out to let the router choose` })
    .min(1, { error: (issue) => `${renderValue(issue.input)} is not a version number; versions start at 1` })
    .optional(),
});

export type InferRequest = z.infer<typeof inferRequestSchema>;

/** One task's prediction for one record. */
export type TaskOutput = { probability: number; label: 0 | 1 } | { probabilities: Record<string, number>; label: string } | { value: number };

export interface Prediction {
  predictionId: string;
  version: number;
  outputs: Record<string, TaskOutput>;
}

export interface InferResponse {
  project: string;
  /** The version that served every record of the request. */
  version: number;
  predictions: Prediction[];
}

const EXAMPLE = '{"project": "my-project", "records": [{…the model\'s input fields…}]}';

/**
 * Serves one request: checks its records against the chosen version's inputs, runs the version's
 * model once for the batch, and answers with a signed prediction id per record; nothing is written
 * on the way (feedback makes the one write) unless the project keeps feedback as data, which adds
 * one batched write of the records.
 */
export async function infer(body: unknown, context: ServeContext): Promise<InferResponse> {
  const started = performance.now();
  if (Array.isArray((body as { records?: unknown } | null)?.records) && (body as { records: unknown[] }).records.length > context.limits.maxRecords) {
    const count = (body as { records: unknown[] }).records.length;
    throw new ServeError(`records has ${count} records; send at most ${context.limits.maxRecords} per request (split the batch)`, {
      code: 'REQUEST_TOO_LARGE',
      context: { records: count, maxRecords: context.limits.maxRecords },
    });
  }
  const request = wellFormed(body) ?? parseRequest(inferRequestSchema, body, EXAMPLE);
  if (request.records.length === 0) throw badRequest(`records is empty; send 1 to ${context.limits.maxRecords} records`, { records: 0 });

  const chosen = chooseModel(request, context);
  const model = chosen instanceof Promise ? await chosen : chosen;
  const { rows, problems, imputed } = model.checkRecords(request.records);
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).map((p) => `records[${p.record}]${p.field === undefined ? '' : `.${p.field}`}: ${p.message}`);
    if (problems.length > shown.length) shown.push(`… and ${problems.length - shown.length} more`);
    throw badRequest(
      `${problems.length === 1 ? 'a record is' : `${problems.length} problems in the records are`} not valid input for ${request.project} version ${model.version}: ${shown.join('; ')}`,
      {
        problems: problems.slice(0, 10).map((p) => ({ record: p.record, field: p.field, value: renderValue(p.value), message: p.message })),
      },
    );
  }

  const feeds = encoderFeeds(model.card.encoder, rows, model.tokenization);
  const sampled = model.embedding ? context.sampler?.pick(request.project, model.version, rows.length) : undefined;
  const results = await model.session.run(feeds, sampled ? model.fetches : model.taskFetches);
  // Signed ids carry the version: nothing is written before the answer (feedback writes once).
  const ids =
    context.predictionIds.issueNow(request.project, model.version, rows.length) ??
    (await context.predictionIds.issue(request.project, model.version, rows.length));
  // The outputs are CPU tensors over ArrayBuffers the GC frees (dispose would only clear their fields).
  const predictions: Prediction[] = ids.map((predictionId, i) => ({ predictionId, version: model.version, outputs: outputsOf(model.card.tasks, results, i) }));

  if (sampled && model.embedding) {
    const embeddings = (model.embedding.from === 'input' ? feeds : results)[model.embedding.name];
    // The card (read once, when the version loaded) lists the encoder's level-index features, which drift leaves out.
    context.sampler?.offer(request.project, model.version, embeddings.data as Float32Array, model.card.encoder, sampled);
  }
  const feedbackRules = model.card.serving?.feedback;
  if (feedbackRules) await logInputs(context, { project: request.project, version: model.version, rules: feedbackRules, records: request.records, ids });
  context.metrics.routed(request.project, model.version, rows.length, performance.now() - started);
  if (imputed > 0) context.metrics.imputed(request.project, model.version, imputed);
  return { project: request.project, version: model.version, predictions };
}

/**
 * Keeps the request's records under their prediction ids (`datasets.feedback`), in one batched
 * write. A prediction is worth more than its training row: a failed or oversized write is logged
 * and counted (`UnloggedInputs`), never an error for the caller.
 */
async function logInputs(
  context: ServeContext,
  served: { project: string; version: number; rules: Record<string, unknown>; records: readonly unknown[]; ids: readonly string[] },
): Promise<void> {
  const entries = served.ids.map((predictionId, i) => ({ predictionId, record: served.records[i] as Record<string, unknown> }));
  try {
    const { skipped } = await context.deps.rewards.logPredictionInputs(served.project, entries, {
      version: served.version,
      rules: served.rules,
      retentionSeconds: context.predictionIds.retentionSeconds,
    });
    if (skipped > 0) context.metrics.unlogged(served.project, served.version, skipped);
  } catch (error) {
    context.logger.warn('served inputs not kept for feedback', {
      project: served.project,
      version: served.version,
      records: entries.length,
      ...errorLogFields(error),
    });
    context.metrics.unlogged(served.project, served.version, entries.length);
  }
}

/** POST /infer as a Function URL handler (the Lambda handler and the local server both call it). */
export function handleInferEvent(event: unknown, context: ServeContext): Promise<FunctionUrlResult> {
  return handleFunctionUrl(event, context, async (body, ctx) => JSON.stringify(await infer(body, ctx)), 'infer');
}

/**
 * The request as it is, when it is plainly what `inferRequestSchema` accepts; anything else goes
 * through the schema, which names each problem.
 */
function wellFormed(body: unknown): InferRequest | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const fields = body as Record<string, unknown>;
  for (const key in fields) if (key !== 'project' && key !== 'records' && key !== 'version') return undefined;
  const { project, records, version } = fields;
  if (!isProjectName(project) || !Array.isArray(records)) return undefined;
  if (version !== undefined && !(Number.isSafeInteger(version) && (version as number) >= 1)) return undefined;
  return fields as InferRequest;
}

/**
 * The pinned version, or the router's choice among the versions that load; refused ones are
 * skipped. No promise once the routing and the version are cached (every request but the first
 * few): an await would add a turn of the event loop to every request.
 */
function chooseModel(request: InferRequest, context: ServeContext): LoadedModel | Promise<LoadedModel> {
  const routing = context.routing.current(request.project);
  return routing ? chooseIn(routing, request, context) : context.routing.get(request.project).then((fresh) => chooseIn(fresh, request, context));
}

function chooseIn(routing: ProjectRouting, request: InferRequest, context: ServeContext): LoadedModel | Promise<LoadedModel> {
  if (request.version !== undefined) {
    const versions = servingVersions(routing.servingSet);
    if (!versions.includes(request.version)) {
      throw new ServeError(
        `version ${request.version} is not in the serving set of ${request.project} (serving: ${versions.join(', ')}); pin one of those or leave version out`,
        {
          code: 'VERSION_NOT_SERVED',
          context: { project: request.project, version: request.version, serving: versions },
        },
      );
    }
    return context.models.ready(request.project, request.version) ?? context.models.get(request.project, request.version);
  }
  const version = routeRequest(routing, (v) => !context.models.isRefused(request.project, v), context.rng);
  return (version === undefined ? undefined : context.models.ready(request.project, version)) ?? loadRouted(routing, request, context, version);
}

/** Loads the router's choice, and while one is refused, its next choice among the rest. */
async function loadRouted(routing: ProjectRouting, request: InferRequest, context: ServeContext, first: number | undefined): Promise<LoadedModel> {
  const failed = new Set<number>();
  const refusals: string[] = [];
  for (let version = first; ; version = routeRequest(routing, (v) => !failed.has(v) && !context.models.isRefused(request.project, v), context.rng)) {
    if (version === undefined) {
      const versions = servingVersions(routing.servingSet);
      throw new ServeError(
        `no version of ${request.project} can be served right now (serving set: ${versions.join(', ')})${refusals.length > 0 ? `: ${refusals.join('; ')}` : ' — every version was refused; see the logs'}; register a good version and update the serving set`,
        { code: 'NO_SERVABLE_VERSION', context: { project: request.project, serving: versions } },
      );
    }
    try {
      return await context.models.get(request.project, version);
    } catch (error) {
      if (!(error instanceof ServeError) || (error.code !== 'MODEL_INTEGRITY' && error.code !== 'MODEL_INVALID')) throw error;
      failed.add(version);
      refusals.push(error.message);
    }
  }
}

function outputsOf(tasks: readonly CardTask[], results: ort.InferenceSession.ReturnType, row: number): Record<string, TaskOutput> {
  const outputs: Record<string, TaskOutput> = {};
  for (const task of tasks) {
    const data = results[modelOutputName(task)].data as Float32Array;
    switch (task.type) {
      case 'binary': {
        const probability = data[row];
        outputs[task.name] = { probability, label: binaryLabel(probability) };
        break;
      }
      case 'multiclass': {
        const classes = task.classes ?? [];
        const width = classes.length;
        const probabilities: Record<string, number> = {};
        for (let c = 0; c < width; c += 1) probabilities[classes[c]] = data[row * width + c];
        outputs[task.name] = { probabilities, label: classes[bestClass(data, row * width, width)] };
        break;
      }
      case 'regression':
        outputs[task.name] = { value: data[row] };
        break;
    }
  }
  return outputs;
}

/** The label a binary task answers for a probability. */
function binaryLabel(probability: number): 0 | 1 {
  return probability >= 0.5 ? 1 : 0;
}

/** The index of the largest of `width` probabilities from `offset` (the first on ties). */
function bestClass(data: Float32Array, offset: number, width: number): number {
  let best = 0;
  for (let c = 1; c < width; c += 1) if (data[offset + c] > data[offset + best]) best = c;
  return best;
}
