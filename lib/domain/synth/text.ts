import { SynthError } from '#lib/domain/synth/errors.ts';
import { deriveSeed, Random } from '#lib/domain/random/index.ts';

export interface TextCorpusOptions {
  documents: number;
  /** Distinct words the documents draw from. Default 20000. */
  vocabulary?: number;
  /** Tokens per document, drawn uniformly in [min, max]. Default [300, 800]. */
  tokens?: readonly [number, number];
  /** Zipf exponent of the word frequencies (rank r drawn ∝ 1/r^s). Default 1.05. */
  zipf?: number;
  /** Binary task names; each has its own few signal words. Default `["spam", "urgent"]`. */
  tasks?: readonly string[];
  /** Fraction of labels flipped after the text is drawn. Default 0.02. */
  labelNoise?: number;
  seed: number;
}

export interface TextCorpus {
  /** One record per document: `text`, then each task's 0/1 label. */
  records: Record<string, string | number>[];
  /** Per task, the words whose presence decides its label. */
  signalWords: Record<string, string[]>;
}

/** Signal words per task, and how many of them a positive document carries. */
const SIGNAL_WORDS = 5;
const SIGNALS_PER_POSITIVE = [1, 4] as const;
/** A negative document mentions one signal word this often, so the words alone do not separate perfectly. */
const NEGATIVE_MENTION_RATE = 0.05;

/** Word `rank` (0 = most frequent) as a token the text encoder keeps whole: lowercase ASCII letters and digits. */
export function wordOf(rank: number): string {
  return `w${rank.toString(36)}`;
}

/**
 * A seeded text corpus shaped like real documents for TF-IDF: Zipf-distributed words over a large
 * vocabulary, a few hundred tokens each, and binary tasks whose labels depend on a few mid-frequency
 * words (frequent enough to reach the fitted vocabulary, rare enough to be informative). Benchmarks
 * and tests share it so their figures describe the same data.
 */
export function generateTextCorpus(options: TextCorpusOptions): TextCorpus {
  const vocabulary = options.vocabulary ?? 20000;
  const [minTokens, maxTokens] = options.tokens ?? [300, 800];
  const zipf = options.zipf ?? 1.05;
  const tasks = options.tasks ?? ['spam', 'urgent'];
  const labelNoise = options.labelNoise ?? 0.02;
  const bad = (message: string): never => {
    throw new SynthError(`generateTextCorpus: ${message}`, { documents: options.documents, vocabulary, tokens: [minTokens, maxTokens] });
  };
  if (!Number.isInteger(options.documents) || options.documents < 1) bad(`documents ${options.documents} must be a positive integer`);
  if (!Number.isInteger(vocabulary) || vocabulary < 100) bad(`vocabulary ${vocabulary} must be an integer ≥ 100`);
  if (!(Number.isInteger(minTokens) && minTokens >= 1 && maxTokens >= minTokens))
    bad(`tokens [${minTokens}, ${maxTokens}] must be integers with 1 ≤ min ≤ max`);
  if (!(labelNoise >= 0 && labelNoise < 0.5)) bad(`labelNoise ${labelNoise} must lie in [0, 0.5)`);

  const cdf = new Float64Array(vocabulary);
  let total = 0;
  for (let r = 0; r < vocabulary; r++) cdf[r] = total += 1 / (r + 1) ** zipf;
  const random = new Random(options.seed);
  const draw = (): number => {
    const u = random.uniform() * total;
    let low = 0;
    let high = vocabulary - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cdf[mid] < u) low = mid + 1;
      else high = mid;
    }
    return low;
  };

  // Signal words from the rarer half of the ranks: a negative document seldom holds one by chance,
  // while the positives' mentions put each in a good share of documents (so the vocabulary keeps it).
  const signalWords: Record<string, string[]> = {};
  const band = [Math.floor(vocabulary / 4), Math.floor(vocabulary / 2)];
  tasks.forEach((task) => {
    const picker = new Random(deriveSeed(options.seed, `signal.${task}`));
    const words = new Set<string>();
    while (words.size < SIGNAL_WORDS) words.add(wordOf(band[0] + picker.int(band[1] - band[0])));
    signalWords[task] = [...words];
  });

  const records: Record<string, string | number>[] = [];
  for (let d = 0; d < options.documents; d++) {
    const length = minTokens + random.int(maxTokens - minTokens + 1);
    const words: string[] = Array.from({ length }, () => wordOf(draw()));
    const record: Record<string, string | number> = {};
    for (const task of tasks) {
      const positive = random.uniform() < 0.5;
      const mentions = positive ? SIGNALS_PER_POSITIVE[0] + random.int(SIGNALS_PER_POSITIVE[1]) : random.uniform() < NEGATIVE_MENTION_RATE ? 1 : 0;
      for (let m = 0; m < mentions; m++) words[random.int(length)] = signalWords[task][random.int(SIGNAL_WORDS)];
      record[task] = random.uniform() < labelNoise !== positive ? 1 : 0;
    }
    records.push({ text: words.join(' '), ...record });
  }
  return { records, signalWords };
}
