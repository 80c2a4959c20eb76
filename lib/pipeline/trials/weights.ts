import * as z from 'zod';
import { ARCHITECTURES } from '#lib/domain/spec/index.ts';
import { CategoryEmbedding } from '#lib/domain/run/index.ts';
import { sha256Hex, type ArtifactStore, type StoredObject } from '#lib/adapters/store/index.ts';
import { TrainError } from '#lib/domain/train/errors.ts';
import type { TrialWeights } from '#lib/domain/train/trainer.ts';

/**
 * A trial's weights as two objects: `weights.bin`, every parameter's float32 values back to back
 * (little-endian, 4-byte aligned), and `weights.json` beside it naming each parameter with its
 * shape and byte offset, so numpy can read them too (`np.frombuffer(bin, '<f4', count, offset)`).
 */
export const WEIGHTS_FORMAT = 'agentflow-trial-weights';
export const WEIGHTS_FORMAT_VERSION = 1;

export const WeightsIndex = z.object({
  format: z.literal(WEIGHTS_FORMAT),
  version: z.literal(WEIGHTS_FORMAT_VERSION),
  architecture: z.enum(ARCHITECTURES),
  inputDim: z.int().positive(),
  dtype: z.literal('float32'),
  /** sha256 of weights.bin. */
  sha256: z.string(),
  byteLength: z.int().nonnegative(),
  parameters: z.array(z.object({ name: z.string(), shape: z.array(z.int()), offset: z.int().nonnegative(), length: z.int().nonnegative() })),
  /** Regression tasks' target standardization, part of the model like the parameters. */
  targetScales: z.record(z.string(), z.object({ mean: z.number(), std: z.number() })).optional(),
  /** The heads' model section when the trial's hyperparameters changed the spec's (width, depth, dropout). */
  model: z
    .object({
      hidden: z.array(z.int().positive()),
      experts: z.int().positive(),
      expertHidden: z.int().positive(),
      towerHidden: z.array(z.int().positive()),
      dropout: z.number().min(0).lt(1).optional(),
    })
    .optional(),
  /** The encoder's index features the heads embedded, part of the model like the parameters (absent before embeddings existed). */
  categoryEmbeddings: z.array(CategoryEmbedding).optional(),
});
export type WeightsIndex = z.infer<typeof WeightsIndex>;

export function encodeWeights(weights: TrialWeights): { bin: Uint8Array; index: WeightsIndex } {
  const names = Object.keys(weights.tensors).sort();
  const byteLength = names.reduce((n, name) => n + weights.tensors[name].length * 4, 0);
  const bin = new Uint8Array(byteLength);
  const view = new Float32Array(bin.buffer);
  const parameters: WeightsIndex['parameters'] = [];
  let offset = 0;
  for (const name of names) {
    const values = weights.tensors[name];
    const shape = [...(weights.shapes[name] ?? [values.length])];
    if (shape.reduce((p, d) => p * d, 1) !== values.length) {
      throw new TrainError(`weights: parameter "${name}" has ${values.length} values but shape [${shape.join(', ')}]`, {
        code: 'WEIGHTS',
        context: { parameter: name },
      });
    }
    view.set(values, offset / 4);
    parameters.push({ name, shape, offset, length: values.length });
    offset += values.length * 4;
  }
  return {
    bin,
    index: {
      format: WEIGHTS_FORMAT,
      version: WEIGHTS_FORMAT_VERSION,
      architecture: weights.architecture,
      inputDim: weights.inputDim,
      dtype: 'float32',
      sha256: sha256Hex(bin),
      byteLength,
      parameters,
      ...(weights.targetScales ? { targetScales: { ...weights.targetScales } } : {}),
      ...(weights.model ? { model: weights.model } : {}),
      ...(weights.categoryEmbeddings ? { categoryEmbeddings: weights.categoryEmbeddings.map((e) => ({ ...e })) } : {}),
    },
  };
}

export function decodeWeights(bin: Uint8Array, index: WeightsIndex, where = 'weights'): TrialWeights {
  if (index?.format !== WEIGHTS_FORMAT || index.version !== WEIGHTS_FORMAT_VERSION) {
    throw new TrainError(
      `${where}: the index is not ${WEIGHTS_FORMAT} version ${WEIGHTS_FORMAT_VERSION} (format ${JSON.stringify(index?.format)}, version ${JSON.stringify(index?.version)}); re-run the trial`,
      {
        code: 'WEIGHTS',
        context: { where },
      },
    );
  }
  if (bin.byteLength !== index.byteLength || sha256Hex(bin) !== index.sha256) {
    throw new TrainError(
      `${where}: weights.bin (${bin.byteLength} bytes) does not match its index (${index.byteLength} bytes, sha256 ${index.sha256}); the pair is incomplete or mixed up`,
      {
        code: 'WEIGHTS',
        context: { where },
      },
    );
  }
  // Copy into an aligned buffer: the bytes a reader hands back may sit at any offset.
  const aligned = new Float32Array(new Uint8Array(bin).buffer);
  const tensors: Record<string, Float32Array> = {};
  const shapes: Record<string, number[]> = {};
  for (const p of index.parameters) {
    if (p.offset % 4 !== 0 || p.offset + p.length * 4 > bin.byteLength) {
      throw new TrainError(`${where}: parameter "${p.name}" lies outside weights.bin (offset ${p.offset}, ${p.length} values)`, {
        code: 'WEIGHTS',
        context: { parameter: p.name },
      });
    }
    tensors[p.name] = aligned.slice(p.offset / 4, p.offset / 4 + p.length);
    shapes[p.name] = [...p.shape];
  }
  return {
    architecture: index.architecture,
    inputDim: index.inputDim,
    tensors,
    shapes,
    ...(index.targetScales ? { targetScales: index.targetScales } : {}),
    ...(index.model ? { model: index.model } : {}),
    ...(index.categoryEmbeddings ? { categoryEmbeddings: index.categoryEmbeddings } : {}),
  };
}

/** `…/weights.json` for `…/weights.bin`. */
export function weightsIndexUri(weightsUri: string): string {
  if (!weightsUri.endsWith('.bin')) {
    throw new TrainError(`weights URI ${weightsUri} does not end in .bin; pass the weightsUri of a TrialJobResult`, {
      code: 'WEIGHTS',
      context: { weightsUri },
    });
  }
  return `${weightsUri.slice(0, -'.bin'.length)}.json`;
}

/** Writes `weights.bin` then `weights.json` (the index last, so a reader never finds an index without its data). */
export async function saveTrialWeights(
  store: ArtifactStore,
  weightsKeyOrUri: string,
  weights: TrialWeights,
): Promise<{ bin: StoredObject; index: StoredObject }> {
  const { bin, index } = encodeWeights(weights);
  const storedBin = await store.putBytes(weightsKeyOrUri, bin, { contentType: 'application/octet-stream' });
  const storedIndex = await store.putJson(weightsIndexUri(weightsKeyOrUri), index);
  return { bin: storedBin, index: storedIndex };
}

/** Reads a trial's weights back (for the Export stage), checking the data against its index. */
export async function loadTrialWeights(store: ArtifactStore, weightsUri: string): Promise<TrialWeights> {
  const index = await store.getJson(weightsIndexUri(weightsUri), WeightsIndex);
  const bin = await store.getBytes(weightsUri);
  return decodeWeights(bin, index, weightsUri);
}
