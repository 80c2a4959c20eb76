import * as ort from 'onnxruntime-node';
import { ModelCard, modelOutputName } from '#lib/domain/run/index.ts';
import { tokenizationFromJson, type Tokenization } from '#lib/domain/encoders/index.ts';
import { decodeModel, onnx, type ModelProto } from '#lib/domain/graph/index.ts';
import type { ModelRegistry, ModelVersion } from '#lib/adapters/registry/index.ts';
import { keys, sha256Hex, type ArtifactStore } from '#lib/adapters/store/index.ts';
import { ServeError } from './errors.ts';
import { recordChecker, type RecordChecker } from './records.ts';
import { SERVING_SESSION_OPTIONS } from '#lib/pipeline/export/evaluate.ts';

/** The prefix `mergeEncoderAndHeads` gives the encoder's values inside an export model. */
const ENCODER_PREFIX = 'encoder/';

/** One version, verified and ready to run. */
export interface LoadedModel {
  project: string;
  version: number;
  card: ModelCard;
  session: ort.InferenceSession;
  checkRecords: RecordChecker;
  tokenization: Tokenization | undefined;
  /** The task outputs to fetch, plus the embedding when the file exposes it (requests with a drift sample). */
  fetches: string[];
  /** The task outputs alone (the other requests). */
  taskFetches: string[];
  /**
   * Where a drift sample finds the encoder's embedding: an extra output of the session, or, when
   * a features encoder passes its vectors through, the model input itself (the file is then served
   * unchanged); undefined when the model has none (no drift sampling).
   */
  embedding: Embedding | undefined;
  sha256: string;
  sizeBytes: number;
  /** Download, verification and session creation. */
  loadMs: number;
}

export type Embedding = { from: 'output' | 'input'; name: string };

export interface ModelCacheOptions {
  registry: ModelRegistry;
  store: ArtifactStore;
  /** How long a refused version stays refused before a request may try it again. Default 5 minutes. */
  refusalRetryMs?: number;
  sessionOptions?: Pick<ort.InferenceSession.SessionOptions, 'executionProviders' | 'intraOpNumThreads' | 'interOpNumThreads'>;
  clock?: () => number;
  onRefused?: (error: ServeError) => void;
}

type Entry =
  { state: 'loading'; promise: Promise<LoadedModel> } | { state: 'ready'; model: LoadedModel } | { state: 'refused'; error: ServeError; untilMs: number };

/**
 * ORT sessions per (project, version), each loaded once: the file is downloaded, its sha256
 * checked against the registry's, its card read, and the session's inputs and outputs checked
 * against the card. A version that fails any of these is refused (and not retried for a while),
 * so the router sends its traffic to the rest of the serving set.
 */
export class ModelCache {
  readonly #registry: ModelRegistry;
  readonly #store: ArtifactStore;
  readonly #refusalRetryMs: number;
  readonly #sessionOptions: ModelCacheOptions['sessionOptions'];
  readonly #clock: () => number;
  readonly #onRefused: (error: ServeError) => void;
  readonly #entries = new Map<string, Entry>();

  constructor(options: ModelCacheOptions) {
    this.#registry = options.registry;
    this.#store = options.store;
    this.#refusalRetryMs = options.refusalRetryMs ?? 5 * 60_000;
    this.#sessionOptions = options.sessionOptions;
    this.#clock = options.clock ?? Date.now;
    this.#onRefused = options.onRefused ?? (() => {});
  }

  /** Whether the version is refused right now (skipped by the router). */
  isRefused(project: string, version: number): boolean {
    const entry = this.#entries.get(keyOf(project, version));
    return entry?.state === 'refused' && entry.untilMs > this.#clock();
  }

  /** The version when it is loaded, without waiting; undefined when `get` must load it (or say why it cannot). */
  ready(project: string, version: number): LoadedModel | undefined {
    const entry = this.#entries.get(keyOf(project, version));
    return entry?.state === 'ready' ? entry.model : undefined;
  }

  /** The loaded version, loading it on first use; a refused version throws its ServeError. */
  async get(project: string, version: number): Promise<LoadedModel> {
    const key = keyOf(project, version);
    const entry = this.#entries.get(key);
    if (entry?.state === 'ready') return entry.model;
    if (entry?.state === 'loading') return entry.promise;
    if (entry?.state === 'refused' && entry.untilMs > this.#clock()) throw entry.error;
    const promise = this.#load(project, version).then(
      (model) => {
        this.#entries.set(key, { state: 'ready', model });
        return model;
      },
      (error: unknown) => {
        if (error instanceof ServeError && (error.code === 'MODEL_INTEGRITY' || error.code === 'MODEL_INVALID')) {
          this.#entries.set(key, { state: 'refused', error, untilMs: this.#clock() + this.#refusalRetryMs });
          this.#onRefused(error);
        } else {
          this.#entries.delete(key); // a transient failure (S3, DynamoDB): the next request tries again
        }
        throw error;
      },
    );
    this.#entries.set(key, { state: 'loading', promise });
    return promise;
  }

  async release(): Promise<void> {
    const ready = [...this.#entries.values()].filter((entry): entry is Extract<Entry, { state: 'ready' }> => entry.state === 'ready');
    this.#entries.clear();
    await Promise.all(ready.map((entry) => entry.model.session.release()));
  }

  async #load(project: string, version: number): Promise<LoadedModel> {
    const started = performance.now();
    const registered = await this.#registry.getVersion(project, version);
    const { artifactUri, sha256: expected } = registered.lineage;
    const [bytes, card] = await Promise.all([this.#store.getBytes(artifactUri), this.#readCard(registered)]);
    const actual = sha256Hex(bytes);
    if (actual !== expected) {
      throw new ServeError(
        `${project} version ${version}: ${artifactUri} has sha256 ${actual}, but the registry recorded ${expected}; the file changed after registration, so the version is refused — re-export it as a new version`,
        { code: 'MODEL_INTEGRITY', context: { project, version, artifactUri, expected, actual } },
      );
    }
    if (card.version !== version || card.project !== project) {
      throw invalid(project, version, `its card describes ${card.project} version ${card.version}`);
    }
    const { model, embedding } = withEmbedding(bytes, card);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model, servingSessionOptions(this.#sessionOptions));
    } catch (cause) {
      throw invalid(project, version, `ONNX Runtime cannot load it (${(cause as Error).message})`, cause);
    }
    const outputs = card.tasks.map(modelOutputName);
    const missingInputs = card.encoder.inputs.map((input) => input.name).filter((name) => !session.inputNames.includes(name));
    const missingOutputs = outputs.filter((name) => !session.outputNames.includes(name));
    if (missingInputs.length + missingOutputs.length > 0) {
      await session.release();
      throw invalid(
        project,
        version,
        `the file and its card disagree: the card names ${[...missingInputs.map((n) => `input "${n}"`), ...missingOutputs.map((n) => `output "${n}"`)].join(', ')}, which the file lacks (inputs: ${session.inputNames.join(', ')}; outputs: ${session.outputNames.join(', ')})`,
      );
    }
    const tokenization = card.encoder.tokenization && tokenizationFromJson(card.encoder.tokenization.tokenizerJson, card.encoder.tokenization.maxLength);
    return {
      project,
      version,
      card,
      session,
      checkRecords: recordChecker(card.encoder, card.serving),
      tokenization,
      fetches: embedding?.from === 'output' ? [...outputs, embedding.name] : outputs,
      taskFetches: outputs,
      embedding,
      sha256: actual,
      sizeBytes: bytes.byteLength,
      loadMs: performance.now() - started,
    };
  }

  async #readCard(registered: ModelVersion): Promise<ModelCard> {
    const uri = registered.lineage.cardUri ?? keys.modelCard(registered.project, registered.version);
    const card = await this.#store.getJson(uri, ModelCard);
    if (card?.cardVersion !== 1 || !Array.isArray(card.tasks) || !card.encoder || !Array.isArray(card.encoder.inputs)) {
      throw invalid(registered.project, registered.version, `${uri} is not a model card (cardVersion 1 with tasks and encoder)`);
    }
    return card;
  }
}

/**
 * The model with the encoder's embedding added as a graph output, so one `session.run` yields the
 * predictions and what drift sampling needs. Export models name it `encoder/<output>`; a model
 * without that value (hand-built) is served as it is, without drift sampling. An embedding that is
 * a features input passed through (Identity nodes only) is read from the feeds instead: as a graph
 * output it would keep ORT from dropping those nodes, a cost on every run.
 */
function withEmbedding(bytes: Uint8Array, card: ModelCard): { model: Uint8Array; embedding: Embedding | undefined } {
  const name = `${ENCODER_PREFIX}${card.encoder.output}`;
  const decoded = decodeModel(bytes);
  const graph = decoded.graph;
  if (!graph || (graph.output ?? []).some((output) => output.name === name)) {
    return { model: bytes, embedding: graph ? { from: 'output', name } : undefined };
  }
  const produced = (graph.node ?? []).some((node) => (node.output ?? []).includes(name));
  if (!produced) return { model: bytes, embedding: undefined };
  const passedThrough = passedThroughInput(graph, name);
  const features = card.encoder.inputs.find(
    (input) => input.name === passedThrough && input.role === 'features' && Number(input.shape[1]) === card.encoder.dimension,
  );
  if (features) return { model: bytes, embedding: { from: 'input', name: features.name } };
  graph.output = [
    ...(graph.output ?? []),
    onnx.ValueInfoProto.create({
      name,
      type: {
        tensorType: {
          elemType: onnx.TensorProto.DataType.FLOAT,
          shape: { dim: [{ dimParam: 'batch' }, { dimValue: card.encoder.dimension }] },
        },
      },
    }),
  ];
  return { model: onnx.ModelProto.encode(decoded).finish(), embedding: { from: 'output', name } };
}

/** The graph input that `value` is, through Identity nodes only; undefined when any other node computes it. */
function passedThroughInput(graph: NonNullable<ModelProto['graph']>, value: string): string | undefined {
  const constants = new Set((graph.initializer ?? []).map((initializer) => initializer.name));
  const inputs = new Set((graph.input ?? []).map((input) => input.name).filter((name) => !constants.has(name)));
  const producers = new Map((graph.node ?? []).flatMap((node) => (node.output ?? []).map((output) => [output, node] as const)));
  let current = value;
  for (let hops = 0; hops <= producers.size; hops += 1) {
    if (inputs.has(current)) return current;
    const node = producers.get(current);
    if (node?.opType !== 'Identity' || (node.domain ?? '') !== '' || node.input?.length !== 1) return undefined;
    current = node.input[0];
  }
  return undefined;
}

function invalid(project: string, version: number, reason: string, cause?: unknown): ServeError {
  return new ServeError(`${project} version ${version} cannot be served: ${reason}; re-export it as a new version`, {
    code: 'MODEL_INVALID',
    context: { project, version },
    ...(cause === undefined ? {} : { cause }),
  });
}

function keyOf(project: string, version: number): string {
  return `${project}#${version}`;
}

/** The options every serving session is created with (`SERVING_SESSION_OPTIONS`, as Export times the model for its card), `overrides` (execution providers, threads) on top. */
export function servingSessionOptions(overrides: ModelCacheOptions['sessionOptions'] = {}): ort.InferenceSession.SessionOptions {
  return { ...SERVING_SESSION_OPTIONS, ...overrides };
}
