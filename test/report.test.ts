import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRunReport, ReportError, writeRunReport, type RunReportData } from '#lib/adapters/report/index.ts';
import { openLocalSession, runPipelineLocally, type LocalSession } from '#lib/adapters/local/index.ts';
import { bodyAttributes, dumpDom, elementsById, requireChromium, screenshot } from './helpers/chromium.ts';

const EXAMPLE = resolve('examples/penguins');
const PROJECT = 'penguins';

let dir: string;
let session: LocalSession;
let runId: string;

// The penguins example on a small budget: two generations of two trials, eight epochs. The species
// floor is lowered so a short training run still clears it and the first model is promoted (the
// floor line is still drawn); the report must show a served project, not a held candidate.
async function writeSmallSpec(folder: string): Promise<string> {
  const spec = JSON.parse(await readFile(join(EXAMPLE, 'spec.json'), 'utf8'));
  spec.training = { ...spec.training, epochs: 8, earlyStoppingPatience: 3 };
  spec.tuning = { ...spec.tuning, generations: 2, population: 2, maxConcurrency: 2 };
  spec.tasks = spec.tasks.map((task: { name: string; floor?: number }) => (task.name === 'species' ? { ...task, floor: 0.3 } : task));
  await copyFile(join(EXAMPLE, spec.datasets.train), join(folder, spec.datasets.train));
  const path = join(folder, 'spec.json');
  await writeFile(path, JSON.stringify(spec, null, 2));
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agentflow-report-'));
  const specPath = await writeSmallSpec(dir);
  session = await openLocalSession({ dir: join(dir, 'aws') });
  const jobLines: string[] = [];
  const run = await runPipelineLocally(session, { specPath, onJobOutput: ({ jobName, line }) => jobLines.push(`[${jobName}] ${line}`) });
  if (run.result.status !== 'SUCCEEDED') {
    throw new Error(`the pipeline run failed: ${run.result.error}: ${run.result.cause}\nlast job output:\n${jobLines.slice(-20).join('\n')}`);
  }
  runId = run.runId;
}, 240_000);

afterAll(async () => {
  await session?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const EXPECTED_CHARTS = ['reward', 'lambda', 'metric-species', 'metric-male', 'metric-body_mass_g', 'promotion'];

describe('the run report', () => {
  it('collects the plan, every trial in run order with its best-so-far reward, the model and the verdict', async () => {
    const { data, html } = await buildRunReport(session.deps, { project: PROJECT, runId });

    expect(data.run.status).toBe('succeeded');
    expect(data.decisions.map((d) => d.decision)).toEqual(expect.arrayContaining(['policy', 'history', 'budget']));
    expect(data.generations).toBe(2);
    expect(data.trials.map((t) => t.generation)).toEqual([1, 1, 2, 2]);
    expect(data.trials.map((t) => t.order)).toEqual([1, 2, 3, 4]);
    const rewards = data.trials.map((t) => t.reward ?? -Infinity);
    expect(data.trials.map((t) => t.bestSoFar)).toEqual(rewards.map((_, i) => Math.max(...rewards.slice(0, i + 1))));
    expect(data.trials.filter((t) => t.best).map((t) => t.trialId)).toEqual([data.bestTrialId]);
    for (const trial of data.trials) expect(Object.keys(trial.metrics).sort()).toEqual(['body_mass_g', 'male', 'species']);
    expect(data.tasks.map((t) => [t.name, t.metric, t.higherIsBetter])).toEqual([
      ['species', 'macroF1', true],
      ['male', 'auc', true],
      ['body_mass_g', 'rmse', false],
    ]);
    expect(data.model).toMatchObject({ version: 1, status: 'production' });
    // Export wrote the winning trial's settings (the spec's here: nothing beyond λ was searched) and the page shows them.
    expect(data.model?.hyperparameters).toEqual(
      expect.arrayContaining([
        { name: 'learningRate', value: '0.01', searched: false },
        { name: 'hidden', value: '[32]', searched: false },
        { name: 'patience', value: '3', searched: false },
        { name: 'numericEncoding', value: 'standard', searched: false },
      ]),
    );
    expect(html).toMatch(/<h3>Trained with .*<td>learningRate<\/td><td>0\.01<\/td><td>spec<\/td>/s);
    expect(data.promotion).toMatchObject({ version: 1, promoted: true, outcome: 'promoted', policy: { policy: 'if-better' } });
    expect(data.promotion?.candidateObjective).toBeCloseTo(data.model!.holdoutObjective, 10);
    expect(data.charts).toEqual(EXPECTED_CHARTS);
    // Serving, but no feedback yet: a note instead of a traffic chart.
    expect(data.serving).toMatchObject({ totalFeedback: 0, arms: [{ version: 1, role: 'production', feedbackCount: 0 }] });
    expect(html).toContain('Nothing has been served with feedback yet');
    expect(html).not.toContain('id="chart-traffic"');
    // Self-contained: nothing is loaded from anywhere.
    expect(html).not.toMatch(/<(script|link|img)\b[^>]*\b(src|href)=/i);
    expect(html).not.toMatch(/https?:\/\/cdn/i);
  });

  it('stores the page in S3 and on disk, and every chart renders in headless Chromium', async () => {
    requireChromium();
    // Prepare: the production version served five predictions and got their feedback.
    for (const [index, reward] of [1, 0, 1, 1, 0].entries()) {
      await session.deps.rewards.recordFeedback(PROJECT, `p-${index}`, reward, { version: 1 });
    }
    const path = join(dir, 'out', 'report.html');

    const written = await writeRunReport(session.deps, { project: PROJECT, runId, path });

    expect(written.uri).toBe(`s3://${session.aws.config.bucket}/runs/${runId}/report.html`);
    expect(written.path).toBe(path);
    expect(Buffer.from(await session.deps.store.getBytes(written.uri)).toString('utf8')).toBe(written.html);
    expect((await session.deps.store.head(written.uri))?.contentType).toMatch(/^text\/html/);
    expect(await readFile(path, 'utf8')).toBe(written.html);
    expect(written.data.charts).toEqual([...EXPECTED_CHARTS, 'traffic']);
    expect(written.data.serving?.arms[0]).toMatchObject({ version: 1, feedbackCount: 5, feedbackShare: 1, meanReward: 0.6 });

    const dom = await dumpDom(path);

    const body = bodyAttributes(dom);
    expect(body['data-render-errors']).toBe('');
    expect(body['data-render-done']).toBe('true');
    expect(body['data-charts-rendered']).toBe(String(written.data.charts.length));
    const canvases = elementsById(dom, 'canvas');
    const checksums = new Set<string>();
    for (const id of written.data.charts) {
      const canvas = canvases.get(`chart-${id}`);
      expect(canvas, `canvas for chart ${id}`).toBeDefined();
      expect(canvas!['data-rendered'], `chart ${id} rendered`).toBe('true');
      expect(Number(canvas!['data-pixel-width']), `chart ${id} width`).toBeGreaterThan(100);
      expect(Number(canvas!['data-pixel-height']), `chart ${id} height`).toBeGreaterThan(100);
      // A chart with axes, labels and data paints well over a thousand pixels; a blank canvas none.
      expect(Number(canvas!['data-painted-pixels']), `chart ${id} painted pixels`).toBeGreaterThan(1000);
      checksums.add(canvas!['data-checksum']!);
    }
    expect(checksums.size, 'every chart draws something different').toBe(written.data.charts.length);

    const png = join(dir, 'report.png');
    await screenshot(path, png, { windowSize: '1280,3200' });
    const bytes = await readFile(png);
    expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect((await stat(png)).size).toBeGreaterThan(20_000);
    if (process.env.AGENTFLOW_REPORT_SCREENSHOT) await copyFile(png, process.env.AGENTFLOW_REPORT_SCREENSHOT);
  }, 120_000);

  it('shows a failed run with its error, escaped, and no charts', async () => {
    // A project of its own, so the served penguins project's traffic does not appear.
    const project = 'penguins-broken';
    const failedRun = 'run-20260101-000000-dead';
    await session.deps.runLog.createRun({ project, runId: failedRun, specDigest: 'sha256:test' });
    await session.deps.runLog.updateRunStatus(project, failedRun, 'failed', {
      stage: 'Prepare',
      error: { name: 'SpecError', code: 'SPEC_INVALID', message: 'tasks[0].metric: "<b>f2</b>" is not a metric for multiclass; use macroF1' },
    });

    const { data, html } = await buildRunReport(session.deps, { project, runId: failedRun });

    expect(data).toMatchObject<Partial<RunReportData>>({ charts: [], trials: [], decisions: [] });
    expect(data.run).toMatchObject({ status: 'failed', stage: 'Prepare', error: { code: 'SPEC_INVALID' } });
    expect(html).toContain('tasks[0].metric: &quot;&lt;b&gt;f2&lt;/b&gt;&quot; is not a metric for multiclass');
    expect(html).not.toContain('<b>f2</b>');
    expect(html).toContain('No trial was scored in this run.');
    expect(html).not.toContain('<canvas');
    expect(html).toContain('penguins-broken serves nothing yet');
  });

  it('names the project and run when the run does not exist', async () => {
    const attempt = buildRunReport(session.deps, { project: PROJECT, runId: 'run-20260101-000000-none' });

    await expect(attempt).rejects.toBeInstanceOf(ReportError);
    await expect(attempt).rejects.toMatchObject({ code: 'RUN_NOT_FOUND', message: expect.stringContaining('penguins has no run "run-20260101-000000-none"') });
  });
});
