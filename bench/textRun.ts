/**
 * Writes a text project like the one issue #13 timed (≈6k documents, 20k vocabulary, two binary
 * tasks, 12 trials) from the generated corpus, for a full local pipeline run:
 *
 *   npx tsx bench/textRun.ts <folder>        # writes <folder>/spec.json and <folder>/train.jsonl
 *   npm run agentflow -- run <folder>/spec.json --dir <folder>/.agentflow
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateTextCorpus } from '#lib/domain/synth/index.ts';
import { TEXT_SET, TEXT_TASKS } from './textSet.ts';

const folder = resolve(process.argv[2] ?? 'text-run');
mkdirSync(folder, { recursive: true });
const { records } = generateTextCorpus({ documents: 6000, vocabulary: TEXT_SET.vocabulary, tokens: TEXT_SET.tokens, seed: TEXT_SET.seed });
writeFileSync(join(folder, 'train.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
const spec = {
  project: 'text-sparse',
  description: 'Two binary tasks over generated documents (Zipf words over a 20k vocabulary), the default TF-IDF encoder, 12 trials.',
  baseModel: { kind: 'text', field: 'text' },
  datasets: { train: 'train.jsonl' },
  tasks: TEXT_TASKS.map((name) => ({ name, type: 'binary', metric: 'auc' })),
  tuning: { strategy: 'pgpe', generations: 3, population: 4, maxConcurrency: 2 },
};
writeFileSync(join(folder, 'spec.json'), JSON.stringify(spec, null, 2) + '\n');
console.log(
  `wrote ${records.length} documents and a spec to ${folder}; run: npm run agentflow -- run ${join(folder, 'spec.json')} --dir ${join(folder, '.agentflow')}`,
);
