import { Graph } from '#lib/domain/graph/index.ts';
import type { FeaturesBaseModelSpec } from '#lib/domain/spec/index.ts';
import { finishEncoder } from '#lib/domain/encoders/common.ts';
import type { EncoderInput, FittedEncoder } from '#lib/domain/encoders/types.ts';

/**
 * Vectors given in the data, passed through. The input's static width makes ONNX Runtime refuse a
 * batch of another dimension, so a mismatch fails loudly rather than mixing shapes.
 */
export function fitFeaturesEncoder(spec: FeaturesBaseModelSpec): FittedEncoder {
  const g = new Graph({ name: 'features-encoder' });
  const input: EncoderInput = { name: 'features', dtype: 'float32', shape: ['batch', spec.dimension], role: 'features', fields: [spec.field] };
  const x = g.input(input.name, 'float32', ['batch', spec.dimension]);
  return finishEncoder(
    g,
    g.identity(x, { name: 'passthrough' }),
    { kind: 'features', dimension: spec.dimension, inputs: [input] },
    { field: spec.field, dimension: spec.dimension },
  );
}
