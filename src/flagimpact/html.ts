/**
 * The report as one self-contained HTML page: no network assets, plain
 * JavaScript. The data is embedded as JSON; the script fills the sortable
 * table (click a header; again to reverse) and draws an inline SVG bar
 * chart of the top affected functions: by hotness with a profile, else by
 * size delta.
 */
import type { FlagImpactReport } from './report.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** JSON inside <script>: nothing in it may close the element or be a JS line break. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.summary { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
.summary dt { color: #555; }
.summary dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e3e3; text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; min-width: 10em; max-width: 18em; }
th { cursor: pointer; user-select: none; background: #f4f4f6; position: sticky; top: 0; }
th.sorted-asc::after { content: " \\25B2"; }
th.sorted-desc::after { content: " \\25BC"; }
td.pos { color: #b42318; }
td.neg { color: #067647; }
.bar.pos { fill: #e0605a; }
.bar.neg { fill: #3f9f6a; }
.bar.hot { fill: #d9822b; }
svg text { font: 12px system-ui, sans-serif; fill: #1d1d1f; }
code { font-size: 13px; }
ul.plain { padding-left: 18px; }
`;

const SCRIPT = `
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('flag-impact-data').textContent);
  var hasProfile = data.profile !== null;
  var columns = [
    { key: 'rank', label: '#', num: true, get: function (f) { return f.rank; } },
    { key: 'name', label: 'function', get: function (f) { return f.name; } },
    { key: 'file', label: 'file', get: function (f) { return f.file; } },
    { key: 'status', label: 'status', get: function (f) { return f.status; } },
    { key: 'kind', label: 'kind', get: function (f) { return f.kind; } },
    { key: 'cause', label: 'cause', get: function (f) { return f.cause; } },
    { key: 'evidence', label: 'evidence', get: function (f) { return f.evidence; } },
    { key: 'related', label: 'related', wrap: true, get: function (f) { return f.related.join(', '); } },
    { key: 'size', label: 'size', num: true, get: function (f) { return f.size.livepatch !== null ? f.size.livepatch : f.size.asIs; } },
    { key: 'dsize', label: '\\u0394size', num: true, signed: true, get: function (f) { return f.size.delta; } },
    { key: 'dinsns', label: '\\u0394insns', num: true, signed: true, get: function (f) { return f.instructions.delta; } }
  ];
  if (hasProfile) {
    columns.push({ key: 'self', label: 'self', num: true, get: function (f) { return f.profile ? f.profile.self : 0; } });
    columns.push({ key: 'hotness', label: 'hotness', num: true, get: function (f) { return f.profile ? f.profile.hotness : 0; } });
  }
  var table = document.getElementById('functions');
  var headRow = table.querySelector('thead tr');
  var body = table.querySelector('tbody');
  var sortKey = 'rank';
  var sortDir = 1;
  var rows = data.functions.slice();

  function fmt(c, v) {
    if (c.signed && v > 0) return '+' + v;
    return String(v);
  }
  function render() {
    var col = columns.filter(function (c) { return c.key === sortKey; })[0];
    rows.sort(function (a, b) {
      var x = col.get(a), y = col.get(b);
      var d = col.num ? x - y : (x < y ? -1 : x > y ? 1 : 0);
      return d !== 0 ? d * sortDir : a.rank - b.rank;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (f) {
      var tr = document.createElement('tr');
      columns.forEach(function (c) {
        var td = document.createElement('td');
        var v = c.get(f);
        td.textContent = fmt(c, v);
        if (c.num) td.className = 'num' + (c.signed ? (v > 0 ? ' pos' : v < 0 ? ' neg' : '') : '');
        else if (c.wrap) td.className = 'wrap';
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    body.textContent = '';
    body.appendChild(frag);
    Array.prototype.forEach.call(headRow.children, function (th) {
      th.className = (th.dataset.num ? 'num ' : '') + (th.dataset.key === sortKey ? (sortDir > 0 ? 'sorted-asc' : 'sorted-desc') : '');
    });
  }
  columns.forEach(function (c) {
    var th = document.createElement('th');
    th.textContent = c.label;
    th.dataset.key = c.key;
    if (c.num) th.dataset.num = '1';
    th.addEventListener('click', function () {
      if (sortKey === c.key) sortDir = -sortDir;
      else { sortKey = c.key; sortDir = c.num && c.key !== 'rank' ? -1 : 1; }
      render();
    });
    headRow.appendChild(th);
  });
  render();

  // Chart: top functions by hotness (profile) or by size delta.
  var svgNs = 'http://www.w3.org/2000/svg';
  var svg = document.getElementById('chart');
  var byHotness = hasProfile && data.functions.some(function (f) { return f.profile && f.profile.hotness > 0; });
  var value = byHotness ? function (f) { return f.profile.hotness; } : function (f) { return f.size.delta; };
  var top = data.functions.filter(function (f) { return value(f) !== 0; })
    .sort(function (a, b) { return Math.abs(value(b)) - Math.abs(value(a)) || a.rank - b.rank; })
    .slice(0, 20);
  document.getElementById('chart-title').textContent = top.length === 0
    ? 'No function changed size' + (hasProfile ? ' or was sampled' : '')
    : 'Top ' + top.length + ' affected functions by ' + (byHotness ? 'hotness (profile weight of the function and its callers)' : 'size change (bytes)');
  var labelW = 300, width = 960, barH = 18, gap = 6, pad = 24;
  var plotW = width - labelW - 80;
  var maxAbs = top.reduce(function (m, f) { return Math.max(m, Math.abs(value(f))); }, 0) || 1;
  var hasNeg = top.some(function (f) { return value(f) < 0; });
  var hasPos = top.some(function (f) { return value(f) > 0; });
  var zero = labelW + (hasNeg && hasPos ? plotW / 2 : hasNeg ? plotW : 0);
  var scale = (hasNeg && hasPos ? plotW / 2 : plotW) / maxAbs;
  var height = pad + top.length * (barH + gap) + pad;
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  function el(name, attrs, text) {
    var e = document.createElementNS(svgNs, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  }
  top.forEach(function (f, i) {
    var v = value(f);
    var y = pad + i * (barH + gap);
    var w = Math.max(1, Math.abs(v) * scale);
    var x = v >= 0 ? zero : zero - w;
    var label = f.name.length > 40 ? f.name.slice(0, 39) + '\\u2026' : f.name;
    el('text', { x: labelW - 8, y: y + barH - 4, 'text-anchor': 'end' }, label);
    var bar = el('rect', { x: x, y: y, width: w, height: barH, 'class': 'bar ' + (byHotness ? 'hot' : v > 0 ? 'pos' : 'neg') });
    var tip = document.createElementNS(svgNs, 'title');
    tip.textContent = f.name + ' (' + f.file + '): ' + f.cause + ', ' + (byHotness ? 'hotness ' + v : (v > 0 ? '+' : '') + v + ' bytes');
    bar.appendChild(tip);
    el('text', { x: v >= 0 ? x + w + 4 : x - 4, y: y + barH - 4, 'text-anchor': v >= 0 ? 'start' : 'end' }, (v > 0 && !byHotness ? '+' : '') + v);
  });
  if (top.length) el('line', { x1: zero, x2: zero, y1: pad - 4, y2: height - pad + 4, stroke: '#888' });
})();
`;

export function renderHtml(r: FlagImpactReport): string {
  const s = r.summary;
  const dl = (pairs: [string, string][]) => pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('\n');
  const list = <T>(items: T[], line: (x: T) => string) =>
    items.length ? `<ul class="plain">\n${items.map((x) => `<li>${line(x)}</li>`).join('\n')}\n</ul>` : '<p>None.</p>';
  const sign = (n: number) => (n > 0 ? `+${n}` : `${n}`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>klpgen flag-impact: ${esc(r.paths.join(' '))} on ${esc(r.target.abi)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Impact of <code>${esc(r.flags.livepatch)}</code> on ${esc(r.paths.join(' '))} (${esc(r.target.kernelRelease)})</h1>
<dl class="summary">
${dl([
  [
    'translation units',
    `${s.tus} compiled twice with Kbuild's flags + ${r.flags.added.join(' ')}; ${s.skipped} .c files skipped`,
  ],
  ['functions', `${s.functions.asIs} as-is, ${s.functions.livepatch} with the flag`],
  ['affected', `${s.changed} changed, ${s.added} added, ${s.removed} removed`],
  [
    'changed through a callee',
    `${s.callersChanged} (what they knew about a callee: ${r.attribution === 'measured' ? 'measured' : 'heuristic'})`,
  ],
  [
    'by cause',
    Object.entries(s.byCause)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none',
  ],
  ['code size', `${sign(s.sizeDelta)} bytes, ${sign(s.instructionDelta)} instructions`],
  [
    'inlining decisions',
    `${s.inlining.lost} lost, ${s.inlining.gained} gained; ${s.inlining.callDeletedAsIs} more inlined only because the as-is build deleted the calls (pure/const)`,
  ],
  ['clones', `${s.clones.disappeared} disappeared, ${s.clones.appeared} appeared`],
  ['objtool warnings', `${s.objtool.appeared} appeared, ${s.objtool.disappeared} disappeared`],
  ...(r.profile
    ? [
        [
          'profile',
          `${r.profile.format}, ${r.profile.symbols} symbols, ${r.profile.matched} affected functions sampled`,
        ] as [string, string],
      ]
    : []),
])}
</dl>
<h2 id="chart-title">Top affected functions</h2>
<svg id="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="chart-title"></svg>
<h2>Affected functions (${r.functions.length})</h2>
<table id="functions"><thead><tr></tr></thead><tbody></tbody></table>
<h2>objtool warnings that differ (${r.objtool.length})</h2>
${list(r.objtool, (w) => `${w.change === 'appeared' ? 'appeared' : 'disappeared'}: <code>${esc(w.warning)}</code>`)}
<h2>Clones that differ (${r.clones.length})</h2>
${list(r.clones, (c) => `${c.change}: <code>${esc(c.clone)}</code> (${esc(c.reason)} of <code>${esc(c.origin)}</code>, ${esc(c.file)})`)}
<h2>Inlining decisions that differ (${r.inlining.length})</h2>
${list(r.inlining, (c) => `${c.change === 'lost' ? 'inlined only as-is' : c.callDeletedAsIs ? 'inlined with the flag, call deleted as-is' : 'inlined only with the flag'}: <code>${esc(c.callee)}</code> into <code>${esc(c.into)}</code> (${esc(c.file)})`)}
<h2>Skipped .c files (${r.skipped.length})</h2>
<details><summary>show</summary>
${list(r.skipped, (x) => `<code>${esc(x.file)}</code>: ${esc(x.reason)}`)}
</details>
<script id="flag-impact-data" type="application/json">${scriptJson(r)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
