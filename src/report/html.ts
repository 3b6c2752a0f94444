/** The self-contained report page: inline CSS and inline SVG only (no scripts, stylesheets, fonts or images to fetch). */
import type { RunData } from './load.js';
import { backendLabel } from './charts.js';
import { tableColumns, formatDuration, type SummaryRow } from '../sweep/summary.js';

export interface RenderedFigure {
  id: string;
  title: string;
  svg: string;
  caption: string;
}

export interface RunSection {
  run: RunData;
  figures: RenderedFigure[];
  /** Figures that could not be drawn yet, with why. */
  missing: string[];
}

export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; background: #f6f7f9; color: #1d232b; }
header { background: #1f3a5f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 6px 0 0; opacity: 0.8; font-size: 13px; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 8px; padding: 16px 20px; margin: 18px 0; }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 4px 14px; font-size: 13px; margin: 0 0 8px; }
dl.meta dt { color: #57606a; }
dl.meta dd { margin: 0; font-variant-numeric: tabular-nums; }
figure { margin: 14px 0; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #57606a; margin-top: 4px; }
div.table-wrap { overflow-x: auto; }
table.summary { border-collapse: collapse; font-size: 12px; }
table.summary th, table.summary td { border-bottom: 1px solid #e1e4e8; padding: 4px 6px; text-align: left; white-space: nowrap; }
table.summary td.num, table.summary th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary td.wrap { white-space: normal; min-width: 16em; }
table.summary tr.failed td { color: #b42318; }
table.summary tr.pending td, table.summary tr.interrupted td { color: #8c959f; }
.note { font-size: 13px; color: #8a6d00; background: #fff8e1; border: 1px solid #f2e2a6; padding: 6px 10px; border-radius: 6px; }
.status-finished { color: #1a7f37; } .status-interrupted, .status-pending { color: #9a6700; } .status-failed { color: #b42318; }
a { color: #0b5cad; }
`;

export function figureHtml(f: RenderedFigure, runName?: string): string {
  return `<figure class="chart" data-chart="${esc(f.id)}"${runName ? ` data-run="${esc(runName)}"` : ''} aria-label="${esc(f.title)}">
${f.svg}
<figcaption>${esc(f.caption)}</figcaption>
</figure>`;
}

const pct = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(2)}%` : '—');

function runMeta(run: RunData): [string, string][] {
  const c = run.config;
  const r = run.report;
  const o = (c.options ?? {}) as Record<string, unknown>;
  const constraint = String(r?.constraint ?? o.constraint ?? '');
  const rows: [string, string][] = [
    ['model', c.model],
    ['dataset', String(c.dataset ?? '')],
    ['seed', String(c.seed)],
    ['backend', `${backendLabel(r?.backend ?? c.backend)}${typeof c.backend.detail === 'string' && c.backend.detail ? ` — ${c.backend.detail}` : ''}`],
    ['optimizer', String(r?.optimizer ?? o.optimizer ?? '')],
    [
      'constraint',
      constraint === 'validation' && typeof o.maxAccDrop === 'number'
        ? `validation (max accuracy drop ${o.maxAccDrop})`
        : constraint === 'batch' && typeof o.delta === 'number'
          ? `batch (δ ${o.delta})`
          : constraint,
    ],
    ['status', run.status],
    ['compression', r ? `${r.compression.toFixed(2)}× (${r.nonZero.toLocaleString('en-US')} / ${r.params.toLocaleString('en-US')} non-zero)` : '—'],
    ['test accuracy', r ? `${pct(r.testAccuracy)} (error ${pct(r.testError)})` : '—'],
    ['validation accuracy', r ? pct(r.validationAccuracy) : '—'],
    ['wall time', r && typeof r.wallTimeMs === 'number' ? formatDuration(r.wallTimeMs) : '—'],
    ['iterations / evaluations', r ? `${r.iterations ?? '—'} / ${r.evaluations ?? '—'}` : '—'],
  ];
  if (c.versions) rows.push(['versions', Object.entries(c.versions).map(([k, v]) => `${k} ${v}`).join(', ')]);
  if (o.quick === true) rows.push(['preset', 'quick']);
  return rows;
}

function runSectionHtml(s: RunSection, anchor: boolean): string {
  const meta = runMeta(s.run)
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${k === 'status' ? `<span class="status-${esc(v)}">${esc(v)}</span>` : esc(v)}</dd>`)
    .join('');
  return `<section class="run"${anchor ? ` id="run-${esc(s.run.name)}"` : ''} data-run="${esc(s.run.name)}">
<h2>${esc(s.run.name)}</h2>
<dl class="meta">${meta}</dl>
${s.run.badLines ? `<p class="note">${s.run.badLines} unreadable line(s) in events.jsonl were skipped.</p>` : ''}
${s.figures.map((f) => figureHtml(f, s.run.name)).join('\n')}
${s.missing.map((m) => `<p class="note">${esc(m)}</p>`).join('\n')}
</section>`;
}

/** The sweep's summary table: search or compress columns, as the sweep's runs are. */
export function summaryTableHtml(rows: SummaryRow[], linkRuns: boolean): string {
  const { columns, numeric } = tableColumns(rows);
  const NUMERIC = new Set(['seed', ...numeric]);
  const head = columns.map(([h]) => `<th${NUMERIC.has(h) ? ' class="num"' : ''}>${esc(h)}</th>`).join('');
  const body = rows
    .map((r) => {
      const cells = columns.map(([h, f]) => {
        const v = f(r);
        const inner = h === 'id' && linkRuns && r.status !== 'pending' ? `<a href="#run-${esc(r.id)}">${esc(v)}</a>` : esc(v);
        const cls = NUMERIC.has(h) ? ' class="num"' : h === 'status' && r.error ? ' class="wrap"' : '';
        return `<td${cls}>${inner}</td>`;
      }).join('');
      return `<tr class="${esc(r.status)}">${cells}</tr>`;
    })
    .join('\n');
  return `<div class="table-wrap"><table class="summary"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

/** The page around its sections: header (title, subtitle), inline CSS (`css` added to the shared rules). */
export function pageShell(title: string, subtitle: string, sections: string[], css = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}${css}</style>
</head>
<body>
<header><h1>${esc(title)}</h1><p>${esc(subtitle)}</p></header>
<main>
${sections.join('\n')}
</main>
</body>
</html>
`;
}

export function pageHtml(opts: {
  title: string;
  subtitle: string;
  sweep?: { name: string; rows: SummaryRow[]; scatter: RenderedFigure | null; note?: string };
  runs: RunSection[];
}): string {
  const parts: string[] = [];
  if (opts.sweep) {
    const s = opts.sweep;
    const finished = s.rows.filter((r) => r.status === 'finished').length;
    parts.push(`<section class="sweep" data-sweep="${esc(s.name)}">
<h2>Sweep ${esc(s.name)}: ${finished} of ${s.rows.length} runs finished</h2>
${s.scatter ? figureHtml(s.scatter) : '<p class="note">No finished run yet: the accuracy–compression plot appears once runs finish.</p>'}
<h3>Summary</h3>
${summaryTableHtml(s.rows, true)}
${s.note ? `<p class="note">${esc(s.note)}</p>` : ''}
</section>`);
  }
  for (const r of opts.runs) parts.push(runSectionHtml(r, Boolean(opts.sweep)));
  return pageShell(opts.title, opts.subtitle, parts);
}
