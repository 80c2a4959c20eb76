/**
 * `npm run bench -- jsonl`: reading one long JSONL line must cost time linear in its length.
 *
 * For lines of 1, 10 and 50 MB (one record whose text field holds the bulk), streamed in 64 KiB
 * chunks as a file or S3 body arrives, it times `readRecords` against the floor measured in the
 * same run: `JSON.parse` of the same line already in memory. Linear reading keeps both the time per
 * MB and the ratio to the floor flat across sizes (the reader before issue #15 rescanned the
 * pending text on every chunk: 0.9 s for 5 MB, 13 s for 20 MB, 83 s for 50 MB).
 */
import { readRecords } from '#lib/domain/datasets/index.ts';

const CHUNK_BYTES = 64 * 1024;
const SIZES_MB = [1, 10, 50];

function lineOf(megabytes: number): Buffer {
  const filler = 'lorem ipsum dolor sit amet, "quoted" ü€ '.repeat(Math.ceil((megabytes * 1e6) / 40));
  return Buffer.from(`${JSON.stringify({ id: 1, text: filler.slice(0, megabytes * 1e6 - 30) })}\n`, 'utf8');
}

async function* chunksOf(bytes: Buffer): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) yield bytes.subarray(offset, offset + CHUNK_BYTES);
}

async function readSeconds(bytes: Buffer): Promise<number> {
  const started = performance.now();
  let records = 0;
  for await (const record of readRecords(chunksOf(bytes), { format: 'jsonl', file: 'bench.jsonl' })) records += record.record.id === 1 ? 1 : 0;
  if (records !== 1) throw new Error(`read ${records} records, expected 1`);
  return (performance.now() - started) / 1000;
}

function parseSeconds(bytes: Buffer): number {
  const started = performance.now();
  const value = JSON.parse(bytes.toString('utf8')) as { id: number };
  if (value.id !== 1) throw new Error('bad parse');
  return (performance.now() - started) / 1000;
}

/** The best of `repeats` runs: the figure least disturbed by other work on the machine. */
async function best(repeats: number, run: () => Promise<number> | number): Promise<number> {
  let fastest = Infinity;
  for (let i = 0; i < repeats; i += 1) fastest = Math.min(fastest, await run());
  return fastest;
}

const rows: { megabytes: number; readSeconds: number; parseSeconds: number; secondsPerMb: number; ratioToParse: number }[] = [];
for (const megabytes of SIZES_MB) {
  const bytes = lineOf(megabytes);
  const repeats = megabytes >= 50 ? 2 : 4;
  const read = await best(repeats, () => readSeconds(bytes));
  const parse = await best(repeats, () => parseSeconds(bytes));
  rows.push({ megabytes, readSeconds: read, parseSeconds: parse, secondsPerMb: read / megabytes, ratioToParse: read / parse });
}

console.log('line     readRecords   JSON.parse (floor)   s per MB   readRecords / floor');
for (const row of rows) {
  console.log(
    `${`${row.megabytes} MB`.padEnd(8)} ${`${row.readSeconds.toFixed(3)} s`.padStart(11)}   ${`${row.parseSeconds.toFixed(3)} s`.padStart(18)}   ${row.secondsPerMb.toFixed(4).padStart(8)}   ${`${row.ratioToParse.toFixed(2)}×`.padStart(19)}`,
  );
}
const growth = rows[rows.length - 1].secondsPerMb / rows[0].secondsPerMb;
console.log(
  `time per MB at ${SIZES_MB[SIZES_MB.length - 1]} MB over ${SIZES_MB[0]} MB: ${growth.toFixed(2)}× (1× is linear; the old reader's grew with the length)`,
);
console.log(JSON.stringify({ bench: 'jsonl', chunkBytes: CHUNK_BYTES, rows, perMbGrowth: growth }));
