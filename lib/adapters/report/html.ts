import type { DimensionEffect } from '#lib/domain/tune/index.ts';
import type { RunReportData } from './data.ts';
import { ReportError } from './errors.ts';
import { loopFigures } from './loop.ts';
import { PAGE_SCRIPT } from './page.ts';

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

const num = (value: number | null | undefined, digits = 4) => (value === null || value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits));

function duration(ms: number | undefined): string {
  if (ms === undefined) return '—';
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${seconds % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function valueText(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value as Record<string, unknown>)
      .map(([key, inner]) => `${key}: ${typeof inner === 'object' && inner !== null ? JSON.stringify(inner) : String(inner)}`)
      .join(', ');
  }
  return JSON.stringify(value);
}

function table(headers: string[], rows: string[][], options: { className?: string } = {}): string {
  const head = headers.map((h) => `<th>${h}</th>`).join('');
  const body = rows.map((row) => `<tr>${row.map((cell) => `<td>${cell}</td>`).join('')}</tr>`).join('\n');
  return `<table${options.className ? ` class="${options.className}"` : ''}><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const canvas = (id: string, options: { size: 'wide' | 'small' | 'medium' }) =>
  `<div class="chart ${options.size}"><canvas id="chart-${escapeHtml(id)}" role="img"></canvas></div>`;

function header(data: RunReportData): string {
  const { run } = data;
  const facts: [string, string][] = [
    ['status', `<span class="badge ${escapeHtml(run.status)}">${escapeHtml(run.status)}</span>`],
    ['last stage', escapeHtml(run.stage ?? '—')],
    ['started', escapeHtml(run.startedAt)],
    ['finished', escapeHtml(run.finishedAt ?? '—')],
    ['duration', duration(run.durationMs)],
    ['trigger', escapeHtml(run.trigger ?? '—')],
  ];
  const error = run.error
    ? `<div class="error"><strong>${escapeHtml(run.error.name ?? 'Error')}${run.error.code ? ` (${escapeHtml(run.error.code)})` : ''}</strong>: ${escapeHtml(run.error.message)}</div>`
    : '';
  return `<header>
  <h1>${escapeHtml(data.project)} <span class="muted">/</span> ${escapeHtml(data.runId)}</h1>
  ${data.description ? `<p class="muted">${escapeHtml(data.description)}</p>` : ''}
  <dl class="facts">${facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join('')}</dl>
  ${error}
</header>`;
}

function planSection(data: RunReportData): string {
  if (data.decisions.length === 0) return `<section><h2>Plan</h2><p class="note">The Plan stage recorded no decisions for this run.</p></section>`;
  return `<section><h2>Plan</h2>
${table(
  ['decision', 'value', 'reason'],
  data.decisions.map((d) => [`<strong>${escapeHtml(d.decision)}</strong>`, escapeHtml(valueText(d.value)), escapeHtml(d.reason)]),
)}
</section>`;
}

/** The `search space` decision's evidence: each searched hyperparameter's effect on the reward, and whether Plan froze it. */
function searchSection(data: RunReportData): string {
  const decision = data.decisions.find((d) => d.decision === 'search space');
  const { effects, frozen = {} } = (decision?.value ?? {}) as { effects?: DimensionEffect[]; frozen?: Record<string, number> };
  if (!Array.isArray(effects) || effects.length === 0) return '';
  const sign = (value: number) => (value > 0 ? '+' : '') + num(value);
  return `<section><h2>Search space</h2>
<p class="muted">Each hyperparameter's effect: the change in reward across its whole range, from the slope within a generation of this project's past runs, with its standard error. An effect under twice its error is noise: Plan froze that dimension at its best trial's value.</p>
${table(
  ['hyperparameter', 'effect on reward', 'standard error', 'trials', 'this run'],
  effects.map((e) => [
    `<strong>${escapeHtml(e.name)}</strong>`,
    e.effect === null ? '—' : sign(e.effect),
    num(e.standardError),
    String(e.trials),
    e.effect === null ? 'searched (too few trials to judge)' : e.name in frozen ? `frozen at ${escapeHtml(String(frozen[e.name]))}` : 'searched',
  ]),
)}
</section>`;
}

function tuningSection(data: RunReportData): string {
  if (data.trials.length === 0) return `<section><h2>Tuning</h2><p class="note">No trial was scored in this run.</p></section>`;
  const failed = data.trials.filter((t) => t.status === 'failed').length;
  const best = data.trials.find((t) => t.best);
  const metricCharts = data.tasks
    .map(
      (task) =>
        `<figure><figcaption>${escapeHtml(task.name)} <span class="muted">· ${escapeHtml(task.type)} · ${escapeHtml(task.metric)}${task.floor === undefined ? '' : ` · floor ${task.floor}`}</span></figcaption>${canvas(`metric-${task.name}`, { size: 'small' })}</figure>`,
    )
    .join('\n');
  return `<section><h2>Tuning</h2>
<p>${data.trials.length} trials over ${data.generations} generation${data.generations === 1 ? '' : 's'}${failed ? `, <strong>${failed} failed</strong> (not plotted)` : ''}.${best ? ` Best: <code>${escapeHtml(best.trialId)}</code> with reward ${num(best.reward)}.` : ''}</p>
<figure><figcaption>Reward per generation <span class="muted">· each trial a point, the line the best so far</span></figcaption>${canvas('reward', { size: 'wide' })}</figure>
<figure><figcaption>Task weights λ <span class="muted">· per task, each trial in run order</span></figcaption>${canvas('lambda', { size: 'wide' })}</figure>
<h3>Validation metric per trial <span class="muted">· coloured by generation, the best trial outlined</span></h3>
<div class="grid">${metricCharts}</div>
</section>`;
}

function modelSection(data: RunReportData): string {
  const { model } = data;
  if (!model) return '';
  return `<section><h2>Model</h2>
<p>Registered as version <strong>${model.version}</strong> (${escapeHtml(model.status)}), holdout objective <strong>${num(model.holdoutObjective)}</strong>,
${(model.sizeBytes / 1024).toFixed(1)} KiB, ${num(model.latencyMsSingle, 2)} ms per record. <code>${escapeHtml(model.uri)}</code></p>
${table(
  ['task', 'metric', 'λ', 'validation', 'holdout'],
  data.tasks.map((t) => [escapeHtml(t.name), escapeHtml(t.metric), num(model.lambda[t.name], 3), num(model.validation[t.name]), num(model.holdout[t.name])]),
)}
${hyperparametersTable(model.hyperparameters)}
</section>`;
}

/** The winning trial's settings; the agent's choices bold, the spec's values plain. */
function hyperparametersTable(entries: NonNullable<RunReportData['model']>['hyperparameters']): string {
  if (!entries) return '';
  return `<h3>Trained with <span class="muted">· the winning trial's settings; <strong>bold</strong>: chosen by the agent, the rest from the spec</span></h3>
${table(
  ['hyperparameter', 'value', 'from'],
  entries.map((e) => [escapeHtml(e.name), e.searched ? `<strong>${escapeHtml(e.value)}</strong>` : escapeHtml(e.value), e.searched ? 'search' : 'spec']),
)}`;
}

function promotionSection(data: RunReportData): string {
  const p = data.promotion;
  if (!p) return `<section><h2>Promotion</h2><p class="note">This run made no promotion decision${data.run.status === 'running' ? ' yet' : ''}.</p></section>`;
  const verdict = p.outcome === 'promoted' ? 'promoted to production' : p.outcome === 'canary' ? 'serving as a canary beside production' : 'not promoted';
  const policy = p.policy
    ? `${escapeHtml(p.policy.policy)}${p.policy.policy === 'if-better' ? `, margin ${p.policy.margin}` : ''}${p.policy.policy === 'canary' ? `, canary share ${p.policy.canaryShare}` : ''}`
    : '—';
  const champion =
    p.championVersion === undefined
      ? 'none (no version was in production)'
      : `v${p.championVersion}${p.championObjective === undefined ? ' (its holdout objective was not recorded with the decision; see the reason)' : `, objective ${num(p.championObjective)}`}`;
  return `<section><h2>Promotion</h2>
<div class="panel ${p.outcome}">
  <div class="verdict">Version ${p.version}: ${verdict}</div>
  <dl class="facts">
    <div><dt>policy</dt><dd>${policy}</dd></div>
    <div><dt>candidate objective</dt><dd>${num(p.candidateObjective)}</dd></div>
    <div><dt>champion</dt><dd>${escapeHtml(champion)}</dd></div>
  </dl>
  <p>${escapeHtml(p.reason)}</p>
</div>
${canvas('promotion', { size: 'medium' })}
</section>`;
}

function servingSection(data: RunReportData): string {
  const s = data.serving;
  if (!s)
    return `<section><h2>Router traffic</h2><p class="note" id="traffic-note">${escapeHtml(data.project)} serves nothing yet: no version is in the serving set.</p></section>`;
  const rows = s.arms.map((a) => [
    `v${a.version}`,
    a.role,
    a.canaryShare === undefined ? '—' : `${(a.canaryShare * 100).toFixed(0)}%`,
    String(a.feedbackCount),
    s.totalFeedback > 0 ? `${(a.feedbackShare * 100).toFixed(1)}%` : '—',
    num(a.meanReward, 3),
  ]);
  const note = !data.charts.includes('traffic')
    ? `<p class="note" id="traffic-note">Nothing has been served with feedback yet: the router's counters are empty, so there is no traffic share to show.</p>`
    : `<figure><figcaption>Share of rewarded requests per version <span class="muted">· ${s.totalFeedback} feedback events</span></figcaption>${canvas('traffic', { size: 'medium' })}</figure>`;
  return `<section><h2>Router traffic</h2>
<p class="muted">Serving set revision ${s.revision}, updated ${escapeHtml(s.updatedAt)}. Counts are feedback events credited to each version (Thompson sampling routes by them).</p>
${note}
${table(['version', 'role', 'canary floor', 'feedback', 'share', 'mean reward'], rows)}
</section>`;
}

/** The closed loop around a retraining run: drift, reward and traffic per monitor window, and the figures it is judged by. */
function loopSection(data: RunReportData): string {
  const loop = data.loop;
  if (!loop) return '';
  const { detectionSeconds, servingSeconds } = loopFigures(loop);
  const versions = [
    ...new Set(loop.windows.flatMap((w) => [...w.versions.map((v) => v.version), ...Object.keys(w.traffic).map((key) => Number(key.slice(1)))])),
  ].sort((a, b) => a - b);
  const onset = Date.parse(loop.driftOnsetAt);
  const events = (start: number, end: number) =>
    [
      [loop.driftOnsetAt, 'drift begins'],
      [loop.detectedAt, 'monitor detects it'],
      [loop.retrainRun?.startedAt, `retraining ${loop.retrainRun?.runId ?? ''} starts`],
      [loop.retrainRun?.endedAt, `retraining ${loop.retrainRun?.status.toLowerCase() ?? ''}`],
      [loop.servingAt, `v${loop.challenger ?? '?'} serves as a canary`],
    ]
      .filter(([at]) => at !== undefined && Date.parse(at) > start && Date.parse(at) <= end)
      .map(([, what]) => escapeHtml(what!))
      .join('; ');
  const rows = loop.windows.map((w) => {
    const start = Date.parse(w.start);
    const end = start + (loop.windows.length > 1 ? Date.parse(loop.windows[1].start) - Date.parse(loop.windows[0].start) : 0);
    const of = (version: number) => w.versions.find((v) => v.version === version);
    return [
      `${((start - onset) / 1000).toFixed(0)} s`,
      ...versions.map((version) => num(of(version)?.psi ?? undefined, 2)),
      ...versions.map((version) => num(of(version)?.reward ?? undefined, 2)),
      ...versions.map((version) => (w.traffic[`v${version}`] === undefined ? '—' : `${(w.traffic[`v${version}`]! * 100).toFixed(0)}%`)),
      String(w.requests),
      events(start, end),
    ];
  });
  const headers = [
    'window (from drift onset)',
    ...versions.map((v) => `PSI v${v}`),
    ...versions.map((v) => `reward v${v}`),
    ...versions.map((v) => `traffic v${v}`),
    'requests',
    'events',
  ];
  const seconds = (value: number | null) => (value === null ? 'never' : `${value.toFixed(0)} s`);
  return `<section><h2>The loop</h2>
<p>Drift to detection: <strong>${seconds(detectionSeconds)}</strong> · to the new version serving: <strong>${seconds(servingSeconds)}</strong> · reward before the drift <strong>${num(loop.rewardBefore ?? undefined, 3)}</strong>, in the last window <strong>${num(loop.rewardAfter ?? undefined, 3)}</strong> · production is v${loop.production}${loop.challenger === undefined ? '' : `, v${loop.challenger} took ${num(loop.challengerShare === null ? undefined : loop.challengerShare * 100, 0)}% of the requests once serving`}.</p>
${loop.retrainRun ? `<p class="muted">Retraining ${escapeHtml(loop.retrainRun.runId)}: ${escapeHtml(loop.retrainRun.reason)}</p>` : ''}
${table(headers, rows, { className: 'numeric' })}
</section>`;
}

function trialsSection(data: RunReportData): string {
  if (data.trials.length === 0) return '';
  const headers = [
    '#',
    'trial',
    'gen',
    'status',
    'reward',
    ...data.tasks.map((t) => `λ ${escapeHtml(t.name)}`),
    ...data.tasks.map((t) => `${escapeHtml(t.name)} ${escapeHtml(t.metric)}`),
    'time',
    'error',
  ];
  const rows = data.trials.map((t) => [
    String(t.order),
    `<code>${escapeHtml(t.trialId)}</code>${t.best ? ' <span class="badge succeeded">best</span>' : ''}`,
    String(t.generation),
    escapeHtml(t.status),
    num(t.reward),
    ...data.tasks.map((task) => num(t.lambda[task.name], 3)),
    ...data.tasks.map((task) => num(t.metrics[task.name])),
    duration(t.durationMs),
    escapeHtml(t.error ?? ''),
  ]);
  return `<section><h2>Trials</h2>${table(headers, rows, { className: 'numeric' })}</section>`;
}

const STYLE = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f1f5f9; color: #0f172a; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
header, section { background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 18px 22px; margin-bottom: 18px; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 0 0 12px; }
h3 { font-size: 14px; margin: 18px 0 8px; }
.muted { color: #64748b; font-weight: normal; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 10px 0 0; }
.facts dt { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: #64748b; }
.facts dd { margin: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; background: #e2e8f0; }
.badge.succeeded { background: #dcfce7; color: #166534; }
.badge.failed, .badge.aborted { background: #fee2e2; color: #991b1b; }
.badge.running { background: #dbeafe; color: #1e40af; }
.error { margin-top: 12px; padding: 10px 14px; background: #fef2f2; border-left: 4px solid #dc2626; white-space: pre-wrap; }
.note { padding: 10px 14px; background: #f8fafc; border-left: 4px solid #94a3b8; color: #334155; }
figure { margin: 12px 0; }
figcaption { font-weight: 600; margin-bottom: 6px; }
.chart { position: relative; width: 100%; }
.chart.wide { height: 300px; }
.chart.small { height: 220px; }
.chart.medium { height: 200px; max-width: 720px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px 20px; }
.grid figure { margin: 0; }
.panel { padding: 12px 16px; border-radius: 8px; margin-bottom: 12px; background: #f8fafc; border-left: 4px solid #94a3b8; }
.panel.promoted { border-left-color: #16a34a; background: #f0fdf4; }
.panel.canary { border-left-color: #d97706; background: #fffbeb; }
.panel.held { border-left-color: #dc2626; background: #fef2f2; }
.verdict { font-size: 16px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
th { background: #f8fafc; font-weight: 600; }
table.numeric td { font-variant-numeric: tabular-nums; }
section { overflow-x: auto; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
footer { color: #64748b; font-size: 12px; text-align: center; }
`;

/** Inline `<script>` text may not contain `</script`; JSON gets `<` escaped, code is checked. */
function inlineScript(source: string, label: string): string {
  if (/<\/script/i.test(source)) {
    throw new ReportError(`${label} contains "</script" and cannot be inlined into the report page; use another build of it`, {
      code: 'CHART_LIBRARY_MISSING',
      context: { label },
    });
  }
  return source;
}

/**
 * The whole report page, self-contained: styles, the run's data as JSON, the chart library and
 * the page script inline, nothing fetched. Tables are plain HTML, so they read without scripts.
 */
export function renderRunReport(data: RunReportData, options: { chartLibrary: string }): string {
  const json = JSON.stringify(data)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="agentflow report v${data.reportVersion}">
<title>${escapeHtml(data.project)} · ${escapeHtml(data.runId)} · agentflow run report</title>
<style>${STYLE}</style>
</head>
<body data-charts-expected="${data.charts.length}" data-charts-rendered="0">
<main>
${header(data)}
<p id="render-status" class="muted"></p>
${planSection(data)}
${searchSection(data)}
${tuningSection(data)}
${modelSection(data)}
${promotionSection(data)}
${servingSection(data)}
${loopSection(data)}
${trialsSection(data)}
<footer>agentflow run report · generated ${escapeHtml(data.generatedAt)}</footer>
</main>
<script type="application/json" id="report-data">${json}</script>
<script>${inlineScript(options.chartLibrary, 'the chart library')}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
