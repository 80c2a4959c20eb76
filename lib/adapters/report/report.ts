import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { keys } from '#lib/adapters/store/index.ts';
import { collectRunReport, type ReportDependencies, type RunReportData } from './data.ts';
import { ReportError } from './errors.ts';
import { renderRunReport } from './html.ts';

// Chart.js's package exports only its ESM/CJS entries; the UMD build (one file, no imports) sits beside them in dist/.
const UMD_BUILDS = ['chart.umd.min.js', 'chart.umd.js'];
let chartLibrary: string | undefined;

/** The Chart.js UMD build, read once per process, to inline into report pages. */
export function loadChartLibrary(): string {
  if (chartLibrary !== undefined) return chartLibrary;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('chart.js');
  } catch (error) {
    throw new ReportError('the chart library "chart.js" is not installed, so the report cannot draw its charts: run `npm ci` in the agentflow checkout', {
      code: 'CHART_LIBRARY_MISSING',
      cause: error,
    });
  }
  const path = UMD_BUILDS.map((name) => join(dirname(entry), name)).find((candidate) => existsSync(candidate));
  if (!path) {
    throw new ReportError(`chart.js at ${dirname(entry)} has no UMD build (${UMD_BUILDS.join(' or ')}); install the chart.js 4.x version package.json pins`, {
      code: 'CHART_LIBRARY_MISSING',
      context: { dir: dirname(entry) },
    });
  }
  chartLibrary = readFileSync(path, 'utf8');
  return chartLibrary;
}

export interface RunReport {
  html: string;
  data: RunReportData;
}

/** One self-contained HTML page for a run: what it decided, how tuning went, the gate's verdict and live traffic. */
export async function buildRunReport(deps: ReportDependencies, target: { project: string; runId: string; now?: Date }): Promise<RunReport> {
  const data = await collectRunReport(deps, target, target.now);
  return { html: renderRunReport(data, { chartLibrary: loadChartLibrary() }), data };
}

export interface WrittenRunReport extends RunReport {
  /** `s3://<bucket>/runs/<runId>/report.html`. */
  uri: string;
  /** Absolute path of the local copy. */
  path: string;
}

/** Where `writeRunReport` puts the local copy unless told otherwise, relative to the working directory. */
export const defaultReportPath = (runId: string) => join('.agentflow', 'reports', `${runId}.html`);

/**
 * Builds the report and stores it twice: in S3 beside the run's other files, and as a local file
 * to open in a browser. The S3 object is rewritten on every call: unlike the run's other files
 * the report changes after the run, as the router collects feedback.
 */
export async function writeRunReport(
  deps: ReportDependencies,
  target: { project: string; runId: string; path?: string; now?: Date },
): Promise<WrittenRunReport> {
  const report = await buildRunReport(deps, target);
  const bytes = Buffer.from(report.html, 'utf8');
  const stored = await deps.store.putBytes(keys.runFile(target.runId, 'report.html'), bytes, { contentType: 'text/html; charset=utf-8' });
  const path = resolve(target.path ?? defaultReportPath(target.runId));
  // Written beside and renamed, so a browser never opens half a page.
  const partial = `${path}.${process.pid}.partial`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(partial, bytes);
    await rename(partial, path);
  } catch (error) {
    throw new ReportError(`cannot write the run report to ${path} (${(error as Error).message}); pass another path, or fix the folder's permissions`, {
      code: 'WRITE_FAILED',
      context: { path },
      cause: error,
    });
  }
  return { ...report, uri: stored.uri, path };
}
