/**
 * Lambda package size and cold import time per function, against the one-module baseline measured
 * in the same run. Run: `npm run bench -- bundles` (or `npx tsx bench/bundles.ts [--runs 7]`).
 *
 * Each function is bundled the way `cdk synth` bundles it (esbuild with cdk/bundling.ts's
 * BUNDLE_SETTINGS, then vendorOnnxRuntime ships onnxruntime-node where the bundle imports it):
 * - after: the entry point as written (functions/handlers/<handler>.ts), which imports its own
 *   stage or serving module;
 * - baseline: the same handler through the barrels (lib/pipeline/handlers.ts, lib/serve/index.ts), as
 *   every entry point did when all stage handlers lived in one module.
 * Size is the unzipped bundle folder (Lambda's 250 MB limit counts it). Cold import is the time
 * to `import()` the bundle in a fresh `node` process (the part of a Lambda cold start the package
 * decides: parsing the code and loading the native library), the median of `--runs` processes,
 * baseline and after alternating so that load from elsewhere on the machine falls on both alike.
 * The last line printed is one JSON object with every figure.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { BUNDLE_SETTINGS } from '../cdk/bundling.ts';
import { FUNCTIONS, handlerEntry, type FunctionSpec } from '../cdk/functions.ts';
import { directorySizeBytes, vendorOnnxRuntime } from '../cdk/vendorOnnxRuntime.ts';

const root = resolve(import.meta.dirname, '..');

export interface BundleFigures {
  sizeBytes: number;
  coldImportMs: number;
  shipsOnnxRuntime: boolean;
  /** Whether importing the bundle mapped ONNX Runtime's native library into the process (Linux: /proc/self/maps). */
  loadsOnnxRuntime: boolean | undefined;
}

export interface BundleBenchRow {
  handler: string;
  runsModel: boolean;
  baseline: BundleFigures;
  after: BundleFigures;
  /** after / baseline. */
  sizeRatio: number;
  coldImportRatio: number;
}

/** The entry every function had before the split: its handler reached through the barrels. */
function baselineSource(spec: FunctionSpec): string {
  if (spec.stage) {
    return `import { lambdaStageHandler } from '#lib/pipeline/lambda.ts';
import { STAGE_FACTORIES } from '#lib/pipeline/handlers.ts';\nexport const handler = lambdaStageHandler(STAGE_FACTORIES.${spec.stage});\n`;
  }
  const serve = {
    infer: 'handleInferEvent, createServeContext',
    feedback: 'handleFeedbackEvent, createServeContext',
    monitor: 'runMonitor',
  }[spec.handler];
  if (!serve) throw new Error(`bench/bundles.ts: no baseline entry for "${spec.handler}"; add one`);
  return `export { ${serve} } from '#lib/serve/index.ts';\nexport { stageDependencies } from '#lib/pipeline/dependencies.ts';\n`;
}

async function bundle(entry: string, outDir: string): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: [entry],
    outfile: join(outDir, 'index.mjs'),
    bundle: true,
    platform: 'node',
    format: BUNDLE_SETTINGS.format,
    target: BUNDLE_SETTINGS.target,
    mainFields: [...BUNDLE_SETTINGS.mainFields],
    banner: { js: BUNDLE_SETTINGS.banner },
    minify: BUNDLE_SETTINGS.minify,
    external: [...BUNDLE_SETTINGS.externalModules],
    // Linked maps without the sources, as cdk/bundling.ts asks of CDK (sourceMap, sourcesContent: false).
    sourcemap: true,
    sourcesContent: false,
    logLevel: 'error',
    absWorkingDir: root,
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const IMPORT_SCRIPT = [
  'const t0 = performance.now();',
  'await import(process.argv[1]);',
  'const ms = performance.now() - t0;',
  "const { existsSync, readFileSync } = await import('node:fs');",
  "const maps = existsSync('/proc/self/maps') ? readFileSync('/proc/self/maps', 'utf8') : undefined;",
  "process.stdout.write(JSON.stringify({ ms, loads: maps === undefined ? null : maps.includes('libonnxruntime') }));",
].join(' ');

/** One import of the bundle in a fresh node process: milliseconds, and whether ONNX Runtime's library got loaded. */
function importOnce(outDir: string): { ms: number; loads: boolean | undefined } {
  const url = pathToFileURL(join(outDir, 'index.mjs')).href;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', IMPORT_SCRIPT, url], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  if (run.status !== 0) throw new Error(`importing ${url} failed: ${run.stderr}`);
  const result = JSON.parse(run.stdout) as { ms: number; loads: boolean | null };
  return { ms: result.ms, loads: result.loads ?? undefined };
}

/**
 * Baseline and after bundles imported alternately, `runs` times each, so a busy machine slows
 * both alike; the medians are compared.
 */
async function compare(
  entries: { baseline: string; after: string },
  outDirs: { baseline: string; after: string },
  runs: number,
): Promise<{ baseline: BundleFigures; after: BundleFigures }> {
  const sides = ['baseline', 'after'] as const;
  const shipped: Record<string, boolean> = {};
  for (const side of sides) {
    await bundle(entries[side], outDirs[side]);
    shipped[side] = vendorOnnxRuntime({ bundleDir: outDirs[side], projectRoot: root }).shipped;
  }
  const times: Record<string, number[]> = { baseline: [], after: [] };
  const loads: Record<string, boolean | undefined> = {};
  for (let i = 0; i < runs; i++) {
    for (const side of i % 2 ? [...sides].reverse() : sides) {
      const once = importOnce(outDirs[side]);
      times[side].push(once.ms);
      loads[side] = once.loads;
    }
  }
  const figures = (side: (typeof sides)[number]): BundleFigures => ({
    sizeBytes: directorySizeBytes(outDirs[side]),
    coldImportMs: median(times[side]),
    shipsOnnxRuntime: shipped[side],
    loadsOnnxRuntime: loads[side],
  });
  return { baseline: figures('baseline'), after: figures('after') };
}

export async function runBundleBench(options: { runs: number }): Promise<BundleBenchRow[]> {
  const work = join(root, 'cdk.out', '.bench-bundles');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const rows: BundleBenchRow[] = [];
  try {
    for (const spec of FUNCTIONS) {
      // Inside the repository, so `#lib/*` resolves through package.json's imports.
      const baselineEntry = join(work, `${spec.handler}.baseline.ts`);
      writeFileSync(baselineEntry, baselineSource(spec));
      const { baseline, after } = await compare(
        { baseline: baselineEntry, after: join(root, handlerEntry(spec.handler)) },
        { baseline: join(work, spec.handler, 'baseline'), after: join(work, spec.handler, 'after') },
        options.runs,
      );
      rows.push({
        handler: spec.handler,
        runsModel: spec.runsModel,
        baseline,
        after,
        sizeRatio: after.sizeBytes / baseline.sizeBytes,
        coldImportRatio: after.coldImportMs / baseline.coldImportMs,
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 7;
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--runs ${process.argv[runsArg + 1]}: give a whole number of processes per figure, e.g. --runs 7`);
    process.exit(2);
  }
  const rows = await runBundleBench({ runs });
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const loads = (f: BundleFigures) => (f.loadsOnnxRuntime === undefined ? '?' : f.loadsOnnxRuntime ? 'ORT' : '-');
  console.log(`function       model  size MiB base → after (ratio)   cold import ms base → after (ratio), median of ${runs}   native ORT loaded base → after`);
  for (const r of rows) {
    console.log(
      `${r.handler.padEnd(14)} ${(r.runsModel ? 'yes' : 'no').padEnd(6)} ${mib(r.baseline.sizeBytes).padStart(5)} → ${mib(r.after.sizeBytes).padStart(5)} (${r.sizeRatio.toFixed(3)})` +
        `      ${r.baseline.coldImportMs.toFixed(0).padStart(5)} → ${r.after.coldImportMs.toFixed(0).padStart(5)} (${r.coldImportRatio.toFixed(2)})` +
        `                           ${loads(r.baseline)} → ${loads(r.after)}`,
    );
  }
  const others = rows.filter((r) => !r.runsModel);
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  console.log(
    `functions without a model: ${mib(sum(others.map((r) => r.baseline.sizeBytes)))} → ${mib(sum(others.map((r) => r.after.sizeBytes)))} MiB in all; ` +
      `cold import median ratio ${median(others.map((r) => r.coldImportRatio)).toFixed(2)}`,
  );
  console.log(JSON.stringify({ bench: 'bundles', runs, rows }));
}
