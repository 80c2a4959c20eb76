/**
 * `npm run bench -- <name…>`: runs the named benchmarks (all when none is named), each in its own
 * process so one's warm-up, threads and memory do not colour another's figures. Each prints a
 * table and, as its last line, one JSON object with its figures; every ratio compares against a
 * baseline measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const BENCHMARKS = ['train', 'embed', 'tune', 'serve', 'e2e', 'bundles', 'jsonl', 'quality'] as const;
const here = dirname(fileURLToPath(import.meta.url));

const requested = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const unknown = requested.filter((name) => !(BENCHMARKS as readonly string[]).includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.map((n) => `"${n}"`).join(', ')}: choose from ${BENCHMARKS.join(', ')}`);
  process.exit(2);
}
const names = requested.length > 0 ? requested : BENCHMARKS.filter((name) => existsSync(join(here, `${name}.ts`)));
let failed = 0;
for (const name of names) {
  const file = join(here, `${name}.ts`);
  if (!existsSync(file)) {
    console.error(`benchmark "${name}" is not built yet (no ${file})`);
    failed += 1;
    continue;
  }
  console.log(`\n== bench ${name} ==`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  if (result.status !== 0) failed += 1;
}
process.exit(failed === 0 ? 0 : 1);
