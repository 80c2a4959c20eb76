import { SynthError } from '#lib/domain/synth/errors.ts';
import { deriveSeed, Random } from '#lib/domain/random/index.ts';

/**
 * A labelled text corpus with the statistics of real mail: word frequencies that fall off as
 * 1/rank^s (Zipf), documents of lognormal length, and two binary tasks that depend on a few
 * words and on word pairs whose words also occur apart, so a model without bigrams misses part
 * of the signal. `spam` is carried by a handful of cue words and the bigrams "click here" and
 * "free offer" (the single words are common in both classes); `urgent` by other cue words and
 * the bigram "asap reply". Labels are noisy (a fixed share flipped), so neither task is solved
 * by one word.
 */
export interface CorpusOptions {
  documents: number;
  seed: number;
  /** Distinct filler words (the Zipf vocabulary); default 30000. */
  vocabulary?: number;
  /** Zipf exponent s; default 1.07, close to English text. */
  zipfExponent?: number;
  /** Median tokens per document; default 120. */
  medianTokens?: number;
}

export interface CorpusDocument {
  id: string;
  text: string;
  spam: 0 | 1;
  urgent: 0 | 1;
}

export const CORPUS_SPAM_WORDS = ['winner', 'prize', 'unsubscribe', 'viagra', 'lottery', 'guaranteed'] as const;
export const CORPUS_SPAM_BIGRAMS = [
  ['click', 'here'],
  ['free', 'offer'],
] as const;
export const CORPUS_URGENT_WORDS = ['deadline', 'outage', 'immediately', 'escalate'] as const;
export const CORPUS_URGENT_BIGRAMS = [['asap', 'reply']] as const;
/** Words that appear alone in every class, so only their pairs carry signal. */
const SHARED_WORDS = ['click', 'here', 'free', 'offer', 'asap', 'reply'];
/** Share of labels flipped after drawing. */
export const CORPUS_LABEL_NOISE = 0.04;

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'shi', 'po', 've', 'da', 'zu', 'ber', 'gan', 'tor', 'fel', 'win', 'sar', 'qui', 'mon', 'del'];

/** The i-th filler word: a pronounceable string of syllables, unique per index and never a cue word. */
export function fillerWord(index: number): string {
  let word = '';
  let n = index;
  do {
    word += SYLLABLES[n % SYLLABLES.length];
    n = Math.floor(n / SYLLABLES.length);
  } while (n > 0);
  return `${word}${word.length < 4 ? 'x' : ''}`;
}

/** Cumulative Zipf weights over ranks 1..n, for drawing by binary search. */
function zipfTable(n: number, s: number): Float64Array {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let rank = 1; rank <= n; rank++) {
    total += 1 / rank ** s;
    cumulative[rank - 1] = total;
  }
  for (let i = 0; i < n; i++) cumulative[i] /= total;
  return cumulative;
}

function drawRank(cumulative: Float64Array, u: number): number {
  let low = 0;
  let high = cumulative.length - 1;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (cumulative[mid] < u) low = mid + 1;
    else high = mid;
  }
  return low;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isInteger(resolved) || resolved < 1)
    throw new SynthError(`zipfCorpus: ${name} ${resolved} is not a positive integer`, { option: name, value: resolved });
  return resolved;
}

/** The corpus, deterministic in its options: the same seed gives the same documents on every machine. */
export function zipfCorpus(options: CorpusOptions): CorpusDocument[] {
  const documents = positiveInt('documents', options.documents, 0);
  const vocabulary = positiveInt('vocabulary', options.vocabulary, 30_000);
  const medianTokens = positiveInt('medianTokens', options.medianTokens, 120);
  const s = options.zipfExponent ?? 1.07;
  if (!(s > 0 && Number.isFinite(s))) throw new SynthError(`zipfCorpus: zipfExponent ${s} must be a positive number`, { option: 'zipfExponent', value: s });
  const random = new Random(deriveSeed(options.seed, 'corpus'));
  const cumulative = zipfTable(vocabulary, s);
  const words = Array.from({ length: vocabulary }, (_, i) => fillerWord(i));
  const out: CorpusDocument[] = [];
  for (let d = 0; d < documents; d++) {
    const spam = random.uniform() < 0.35;
    const urgent = random.uniform() < (spam ? 0.1 : 0.3);
    const length = Math.max(8, Math.round(medianTokens * Math.exp(0.6 * random.normal())));
    const tokens: string[] = [];
    for (let t = 0; t < length; t++) tokens.push(words[drawRank(cumulative, random.uniform())]);
    const insert = (piece: readonly string[]) => tokens.splice(random.int(tokens.length + 1), 0, ...piece);
    // Every document may hold the shared words alone; only their pairs tell the classes apart.
    for (const word of SHARED_WORDS) if (random.uniform() < 0.25) insert([word]);
    const cues = (present: boolean, singles: readonly string[], pairs: readonly (readonly string[])[]) => {
      // A document of the class holds one or two cues, and one of the other class holds one now and then.
      const count = present ? 1 + (random.uniform() < 0.5 ? 1 : 0) : random.uniform() < 0.08 ? 1 : 0;
      for (let c = 0; c < count; c++) {
        const k = random.int(singles.length + pairs.length);
        insert(k < singles.length ? [singles[k]] : pairs[k - singles.length]);
      }
    };
    // Some documents of a class carry no cue at all: the ceiling is below 1.
    cues(spam && random.uniform() < 0.92, CORPUS_SPAM_WORDS, CORPUS_SPAM_BIGRAMS);
    cues(urgent && random.uniform() < 0.9, CORPUS_URGENT_WORDS, CORPUS_URGENT_BIGRAMS);
    const flip = (label: boolean) => (random.uniform() < CORPUS_LABEL_NOISE ? !label : label);
    out.push({ id: `d${String(d).padStart(6, '0')}`, text: tokens.join(' '), spam: flip(spam) ? 1 : 0, urgent: flip(urgent) ? 1 : 0 });
  }
  return out;
}
