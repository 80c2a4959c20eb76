import type { ValidatedRow } from '#lib/domain/datasets/index.ts';
import { decodeModel, type onnx } from '#lib/domain/graph/index.ts';
import type { SparseRow } from '#lib/domain/shards/index.ts';
import { textOf } from '#lib/domain/encoders/common.ts';
import { EncoderError } from '#lib/domain/encoders/errors.ts';
import { ngramsOf, textTokens } from '#lib/domain/encoders/text.ts';

type NodeProto = InstanceType<typeof onnx.NodeProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;

/**
 * The fitted text encoder's TF-IDF computed in JavaScript, one sparse row per document: the same
 * tokens (`textTokens`, the parity the graph's Tokenizer is tested for), the same n-grams, and the
 * vocabulary, idf and options read out of the encoder's own graph, so what Embed writes and what
 * the exported model computes from raw text cannot come from two different fits. A 20k-term
 * vocabulary makes the graph's output almost all zeros; this never builds the dense row.
 */
export class SparseTextEncoder {
  readonly dimension: number;

  private constructor(
    private readonly field: string,
    private readonly columnOf: ReadonlyMap<string, number>,
    private readonly idf: Float32Array,
    private readonly range: readonly [number, number],
    private readonly lowercase: boolean,
  ) {
    this.dimension = idf.length;
  }

  /**
   * Reads a fitted text encoder's graph (`fitTextEncoder`). Fails naming what is missing when the
   * bytes are not one, e.g. a bring-your-own text model.
   */
  static fromModel(model: Uint8Array, options: { field: string }): SparseTextEncoder {
    const graph = decodeModel(model).graph;
    const nodes = (graph?.node ?? []) as NodeProto[];
    const vectorizer = nodes.find((n) => n.opType === 'TfIdfVectorizer');
    const tokenizer = nodes.find((n) => n.opType === 'Tokenizer');
    const idfTensor = ((graph?.initializer ?? []) as TensorProto[]).find((t) => t.name === 'idf');
    if (!vectorizer || !tokenizer || !idfTensor) {
      throw new EncoderError(
        `the model is not a fitted TF-IDF text encoder (it lacks ${[!vectorizer && 'TfIdfVectorizer', !tokenizer && 'Tokenizer', !idfTensor && 'the "idf" initializer'].filter(Boolean).join(', ')}); sparse features come only from baseModel kind "text"`,
        { code: 'ENCODER_MODEL', context: { ops: nodes.map((n) => n.opType) } },
      );
    }
    const low = intAttribute(vectorizer, 'min_gram_length');
    const high = intAttribute(vectorizer, 'max_gram_length');
    const pool = stringsAttribute(vectorizer, 'pool_strings');
    const starts = intsAttribute(vectorizer, 'ngram_counts');
    const columns = intsAttribute(vectorizer, 'ngram_indexes');
    // pool_strings holds the 1-grams, then the 2-grams, …; starts[n − 1] is where the n-grams begin.
    const columnOf = new Map<string, number>();
    let gram = 0;
    starts.forEach((start, i) => {
      const end = i + 1 < starts.length ? starts[i + 1] : pool.length;
      for (let at = start; at < end; at += i + 1) columnOf.set(pool.slice(at, at + i + 1).join(' '), columns[gram++]);
    });
    const idf = floatData(idfTensor);
    const lowercase = nodes.some((n) => n.opType === 'StringNormalizer');
    return new SparseTextEncoder(options.field, columnOf, idf, [low, high], lowercase);
  }

  /** One row per document: column indices ascending, values the L2-normalized tf·idf, as the graph computes them. */
  encode(rows: readonly ValidatedRow[]): SparseRow[] {
    return rows.map((row) => this.encodeText(textOf(row, this.field)));
  }

  encodeText(text: string): SparseRow {
    const counts = new Map<number, number>();
    for (const gram of ngramsOf(textTokens(text, { lowercase: this.lowercase }), this.range)) {
      const column = this.columnOf.get(gram);
      if (column !== undefined) counts.set(column, (counts.get(column) ?? 0) + 1);
    }
    const indices = Int32Array.from(counts.keys()).sort();
    const values = new Float32Array(indices.length);
    let squares = 0;
    indices.forEach((column, k) => {
      // The graph multiplies float32 counts by float32 idf; rounding here keeps the same product.
      const tfidf = Math.fround(counts.get(column)! * this.idf[column]);
      values[k] = tfidf;
      squares += tfidf * tfidf;
    });
    const norm = Math.sqrt(squares);
    if (norm > 0) for (let k = 0; k < values.length; k++) values[k] = values[k] / norm;
    return { indices, values };
  }
}

function attribute(node: NodeProto, name: string) {
  const found = node.attribute.find((a) => a.name === name);
  if (!found) {
    throw new EncoderError(`the text encoder's ${node.opType} node has no "${name}" attribute; fit the encoder again`, {
      code: 'ENCODER_MODEL',
      context: { attribute: name },
    });
  }
  return found;
}

function intAttribute(node: NodeProto, name: string): number {
  return Number(attribute(node, name).i);
}

function intsAttribute(node: NodeProto, name: string): number[] {
  return (attribute(node, name).ints ?? []).map(Number);
}

function stringsAttribute(node: NodeProto, name: string): string[] {
  const decoder = new TextDecoder();
  return (attribute(node, name).strings ?? []).map((bytes) => decoder.decode(bytes));
}

function floatData(tensor: TensorProto): Float32Array {
  if (tensor.floatData.length > 0) return Float32Array.from(tensor.floatData);
  const raw = tensor.rawData;
  return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}
