import { Tokenizer } from '@huggingface/tokenizers';

/** Token ids and attention mask for a batch, padded to the longest row (at most maxLength). */
export interface TokenBatch {
  ids: BigInt64Array;
  mask: BigInt64Array;
  /** Sequence length of the batch. */
  length: number;
}

export interface Tokenization {
  /** Ids of one text with the tokenizer's special tokens, truncated to maxLength. */
  encode(text: string): number[];
  encodeBatch(texts: readonly string[]): TokenBatch;
  padId: number;
}

/**
 * Wraps a Hugging Face tokenizer with the truncation and padding the ONNX encoder expects.
 * `@huggingface/tokenizers` does neither, so: a text longer than maxLength keeps its trailing
 * special tokens (`[SEP]`, `</s>`) and loses the ordinary tokens before them; padding uses the
 * tokenizer's pad token (from its `padding` section, else `[PAD]` / `<pad>`, else id 0) with mask 0.
 */
export function createTokenization(tokenizer: Tokenizer, maxLength: number, tokenizerJson?: { padding?: { pad_id?: number } | null }): Tokenization {
  const special = new Set<number>();
  for (const [id, token] of tokenizer.get_added_tokens_decoder()) if (token.special) special.add(id);
  const padId = tokenizerJson?.padding?.pad_id ?? tokenizer.token_to_id('[PAD]') ?? tokenizer.token_to_id('<pad>') ?? 0;

  const encode = (text: string): number[] => {
    const ids = tokenizer.encode(text).ids;
    if (ids.length <= maxLength) return ids;
    let tail = 0;
    while (tail < ids.length && tail < maxLength && special.has(ids[ids.length - 1 - tail])) tail += 1;
    return [...ids.slice(0, maxLength - tail), ...ids.slice(ids.length - tail)];
  };

  return {
    padId,
    encode,
    encodeBatch(texts) {
      const encoded = texts.map(encode);
      const length = Math.max(1, ...encoded.map((ids) => ids.length));
      const ids = new BigInt64Array(texts.length * length).fill(BigInt(padId));
      const mask = new BigInt64Array(texts.length * length);
      encoded.forEach((row, i) => {
        row.forEach((id, j) => {
          ids[i * length + j] = BigInt(id);
          mask[i * length + j] = 1n;
        });
      });
      return { ids, mask, length };
    },
  };
}

/** A Tokenization from the text of a `tokenizer.json`. */
export function tokenizationFromJson(tokenizerJson: string, maxLength: number): Tokenization {
  const parsed = JSON.parse(tokenizerJson) as { padding?: { pad_id?: number } | null };
  return createTokenization(new Tokenizer(parsed, {}), maxLength, parsed);
}
