/**
 * The report page's own script, run in the browser after the inlined Chart.js. It draws every
 * chart the data lists, then marks each canvas with what it drew (`data-rendered`, the count of
 * painted pixels and a checksum of them) and the body with the totals, so a headless browser's
 * DOM dump shows whether the page really rendered. Plain ES5-style JavaScript in a string: it is
 * never compiled with the project, and the page must not depend on a bundler.
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var palette = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c'];
  var errors = [];
  var rendered = 0;

  function color(index, alpha) {
    var hex = palette[index % palette.length];
    if (alpha === undefined) return hex;
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + alpha + ')';
  }
  function fmt(value, digits) {
    return value === null || value === undefined || !isFinite(value) ? '—' : Number(value).toFixed(digits === undefined ? 4 : digits);
  }

  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#334155';

  // FNV-1a over a sample of the pixels plus the count of non-transparent ones: enough to tell a
  // drawn canvas from a blank one and two drawings apart, cheap on a 1280-px-wide page.
  function markRendered(canvas) {
    var context = canvas.getContext('2d');
    var pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    var painted = 0;
    var hash = 0x811c9dc5;
    for (var i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] !== 0) {
        painted++;
        hash ^= pixels[i] ^ (pixels[i + 1] << 8) ^ (pixels[i + 2] << 16);
        hash = Math.imul(hash, 0x01000193) >>> 0;
      }
    }
    canvas.setAttribute('data-rendered', 'true');
    canvas.setAttribute('data-painted-pixels', String(painted));
    canvas.setAttribute('data-checksum', hash.toString(16));
    canvas.setAttribute('data-pixel-width', String(canvas.width));
    canvas.setAttribute('data-pixel-height', String(canvas.height));
  }

  function draw(id, config) {
    var canvas = document.getElementById('chart-' + id);
    if (!canvas) {
      errors.push(id + ': no canvas');
      return;
    }
    try {
      new Chart(canvas, config);
      markRendered(canvas);
      rendered++;
    } catch (error) {
      var message = (error && error.message) || String(error);
      canvas.setAttribute('data-render-error', message);
      errors.push(id + ': ' + message);
    }
  }

  function axisTitle(text) {
    return { display: true, text: text, color: '#475569' };
  }

  var trials = data.trials;
  var labels = trials.map(function (t) { return t.trialId; });
  // Generations get their own hues, none of them red or green, which mean failed and best here.
  var generationPalette = ['#2563eb', '#7c3aed', '#0891b2', '#d97706', '#db2777', '#475569', '#0d9488', '#9333ea'];
  function generationColor(generation, alpha) {
    var n = parseInt(generationPalette[(generation - 1) % generationPalette.length].slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + alpha + ')';
  }
  var tooltipTitle = function (items) { return items.length ? trials[items[0].dataIndex] ? trials[items[0].dataIndex].trialId : '' : ''; };

  function rewardChart() {
    var byGeneration = {};
    trials.forEach(function (t) { (byGeneration[t.generation] = byGeneration[t.generation] || []).push(t); });
    var points = [];
    var best = [];
    var bestLine = [];
    // Trials of a generation spread around its tick; the best-so-far line steps through them in run order.
    Object.keys(byGeneration).map(Number).sort(function (a, b) { return a - b; }).forEach(function (g) {
      var group = byGeneration[g];
      var spread = Math.min(0.6, 0.12 * (group.length - 1));
      group.forEach(function (t, i) {
        var x = group.length === 1 ? g : g - spread / 2 + (spread * i) / (group.length - 1);
        if (t.bestSoFar !== null) bestLine.push({ x: x, y: t.bestSoFar });
        if (t.reward === null) return;
        (t.best ? best : points).push({ x: x, y: t.reward, trialId: t.trialId });
      });
    });
    draw('reward', {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'trial reward', data: points, backgroundColor: color(0, 0.55), borderColor: color(0), pointRadius: 5 },
          { label: 'best trial', data: best, backgroundColor: color(2), borderColor: '#14532d', pointRadius: 8, pointStyle: 'star', borderWidth: 2 },
          { label: 'best so far', type: 'line', data: bestLine, borderColor: color(2), backgroundColor: color(2, 0.15), stepped: 'before', borderWidth: 2, pointRadius: 0 },
        ],
      },
      options: {
        scales: {
          x: {
            type: 'linear',
            min: 0.5,
            max: data.generations + 0.5,
            afterBuildTicks: function (axis) {
              var ticks = [];
              for (var g = 1; g <= data.generations; g++) ticks.push({ value: g });
              axis.ticks = ticks;
            },
            title: axisTitle('generation'),
          },
          y: { title: axisTitle('reward (objective on validation)') },
        },
        plugins: { tooltip: { callbacks: { label: function (c) { return (c.raw.trialId ? c.raw.trialId + ': ' : 'best so far: ') + fmt(c.raw.y); } } } },
      },
    });
  }

  function lambdaChart() {
    draw('lambda', {
      type: 'line',
      data: {
        labels: labels,
        datasets: data.tasks.map(function (task, i) {
          return {
            label: 'λ ' + task.name,
            data: trials.map(function (t) { return t.lambda[task.name] === undefined ? null : t.lambda[task.name]; }),
            borderColor: color(i),
            backgroundColor: color(i, 0.2),
            pointRadius: 4,
          };
        }),
      },
      options: {
        scales: { x: { title: axisTitle('trial (run order)') }, y: { beginAtZero: true, title: axisTitle('task weight λ') } },
        plugins: { tooltip: { callbacks: { title: tooltipTitle } } },
      },
    });
  }

  function metricChart(task, index) {
    var values = trials.map(function (t) { return t.metrics[task.name] === undefined ? null : t.metrics[task.name]; });
    var datasets = [
      {
        label: task.metric + ' (validation)',
        data: values,
        backgroundColor: trials.map(function (t) { return generationColor(t.generation, t.best ? 0.9 : 0.45); }),
        borderColor: trials.map(function (t) { return t.best ? '#0f172a' : generationColor(t.generation, 1); }),
        borderWidth: trials.map(function (t) { return t.best ? 2.5 : 1; }),
      },
    ];
    if (task.floor !== undefined) {
      datasets.push({ label: 'floor ' + task.floor, type: 'line', data: trials.map(function () { return task.floor; }), borderColor: '#dc2626', borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0 });
    }
    var finite = values.filter(function (v) { return v !== null; }).concat(task.floor === undefined ? [] : [task.floor]);
    var low = Math.min.apply(null, finite);
    var high = Math.max.apply(null, finite);
    var pad = (high - low) * 0.15 || Math.abs(high) * 0.05 || 0.05;
    // Metrics where higher is better (auc, accuracy, F1, r2) top out at 1.
    var top = task.higherIsBetter && high <= 1 ? Math.min(1, high + pad) : high + pad;
    draw('metric-' + task.name, {
      type: 'bar',
      data: { labels: labels, datasets: datasets },
      options: {
        scales: {
          x: { ticks: { maxRotation: 60, autoSkip: true }, title: axisTitle('trial') },
          y: { min: finite.length ? low - pad : undefined, max: finite.length ? top : undefined, title: axisTitle(task.metric + (task.higherIsBetter ? ' (higher is better)' : ' (lower is better)')) },
        },
        plugins: { legend: { display: task.floor !== undefined }, tooltip: { callbacks: { title: tooltipTitle } } },
      },
    });
  }

  function promotionChart() {
    var p = data.promotion;
    var bars = [];
    if (p.candidateObjective !== undefined) bars.push({ label: 'candidate v' + p.version, value: p.candidateObjective, color: p.promoted ? '#16a34a' : p.outcome === 'canary' ? '#d97706' : '#dc2626' });
    if (p.championObjective !== undefined) {
      bars.push({ label: 'champion v' + p.championVersion, value: p.championObjective, color: '#64748b' });
      if (p.policy && p.policy.policy === 'if-better') bars.push({ label: 'needed (champion + margin ' + p.policy.margin + ')', value: p.championObjective + p.policy.margin, color: '#cbd5e1' });
    }
    draw('promotion', {
      type: 'bar',
      data: {
        labels: bars.map(function (b) { return b.label; }),
        datasets: [{ label: 'objective on the holdout', data: bars.map(function (b) { return b.value; }), backgroundColor: bars.map(function (b) { return b.color; }) }],
      },
      options: { indexAxis: 'y', scales: { x: { title: axisTitle('objective on this run\'s holdout') } }, plugins: { legend: { display: false } } },
    });
  }

  function trafficChart() {
    var arms = data.serving.arms;
    draw('traffic', {
      type: 'doughnut',
      data: {
        labels: arms.map(function (a) { return 'v' + a.version + ' (' + a.role + ')'; }),
        datasets: [{ label: 'feedback', data: arms.map(function (a) { return a.feedbackCount; }), backgroundColor: arms.map(function (a, i) { return color(i); }) }],
      },
      options: {
        plugins: {
          legend: { position: 'right' },
          tooltip: { callbacks: { label: function (c) { var a = arms[c.dataIndex]; return a.feedbackCount + ' rewarded requests (' + fmt(a.feedbackShare * 100, 1) + '%), mean reward ' + fmt(a.meanReward, 3); } } },
        },
      },
    });
  }

  data.charts.forEach(function (id) {
    if (id === 'reward') rewardChart();
    else if (id === 'lambda') lambdaChart();
    else if (id === 'promotion') promotionChart();
    else if (id === 'traffic') trafficChart();
    else if (id.indexOf('metric-') === 0) {
      var name = id.slice('metric-'.length);
      var index = data.tasks.findIndex(function (t) { return t.name === name; });
      if (index < 0) errors.push(id + ': no such task');
      else metricChart(data.tasks[index], index);
    } else errors.push(id + ': unknown chart');
  });

  document.body.setAttribute('data-charts-expected', String(data.charts.length));
  document.body.setAttribute('data-charts-rendered', String(rendered));
  document.body.setAttribute('data-render-errors', errors.join('; '));
  document.body.setAttribute('data-render-done', 'true');
  var status = document.getElementById('render-status');
  if (status && errors.length) status.textContent = 'Some charts failed to render: ' + errors.join('; ');
})();
`;
