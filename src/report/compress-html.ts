/**
 * The report page of a compress run: run details, the final network's figures and budgets, the joint search's Pareto
 * front, channels kept and layer densities, the exports, and the OLMP stage. Inline CSS and SVG only, as the other
 * report pages.
 */
import { relative } from 'node:path';
import { backendLabel } from './charts.js';
import { candidateRows, type CandidateRow } from './compress-charts.js';
import type { CompressRunData } from './compress-load.js';
import { esc, figureHtml, pageShell, type RenderedFigure } from './html.js';
import { formatDuration } from '../sweep/summary.js';

export interface CompressPage {
  data: CompressRunData;
  /** Rendered figures by id (a figure that could not be drawn is absent). */
  figures: Map<string, RenderedFigure>;
  /** The OLMP stage's figures (from olmp/events.jsonl). */
  olmpFigures: RenderedFigure[];
}

const CSS = `
table.summary tr.chosen td { background: #fff1f0; font-weight: 600; }
.met { color: #1a7f37; } .not-met { color: #b42318; font-weight: 600; }
p.chosen { font-size: 13px; }
`;

const pct = (v: unknown, digits = 2) => (typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(digits)}%` : '—');
const int = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—');
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
const met = (ok: boolean, yes = 'met', no = 'NOT met') => `<span class="${ok ? 'met' : 'not-met'}">${ok ? yes : no}</span>`;

/** A table; cells are HTML already escaped by the caller; columns named in `numeric` are right-aligned. */
function table(head: string[], rows: string[][], numeric: number[] = [], rowClass: (i: number) => string = () => ''): string {
  const th = head.map((h, j) => `<th${numeric.includes(j) ? ' class="num"' : ''}>${esc(h)}</th>`).join('');
  const body = rows
    .map((r, i) => {
      const cls = rowClass(i);
      return `<tr${cls ? ` class="${cls}"` : ''}>${r.map((c, j) => `<td${numeric.includes(j) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`;
    })
    .join('\n');
  return `<div class="table-wrap"><table class="summary"><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

function meta(rows: [string, string][]): string {
  return `<dl class="meta">${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

function runHtml(d: CompressRunData): string {
  const r = d.report;
  const c = d.config;
  const detail = typeof c.backend.detail === 'string' && c.backend.detail ? ` — ${c.backend.detail}` : '';
  const rows: [string, string][] = [
    ['model', r.model],
    ['dataset', String(r.dataset ?? c.dataset ?? '')],
    ['mode', r.mode],
    ['method', r.mode === 'olmp' ? `${r.method} (unused: mode olmp removes no channels)` : r.method],
    ['objective', String(r.objective ?? '')],
    ['seed', String(r.seed)],
    ['backend', `${backendLabel(r.backend ?? c.backend)}${detail}`],
    ['status', 'finished'],
    ['wall time', typeof r.wallTimeMs === 'number' ? formatDuration(r.wallTimeMs) : '—'],
    ['stages', Object.entries(r.phasesMs ?? {}).map(([k, v]) => `${k} ${formatDuration(v)}`).join(', ') || '—'],
  ];
  const versions = r.versions ?? c.versions;
  if (versions) rows.push(['versions', Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')]);
  if ((c.options as { quick?: unknown } | undefined)?.quick === true) rows.push(['preset', 'quick']);
  return `<section class="compress-run" data-run="${esc(d.name)}">
<h2>${esc(d.name)}</h2>
${meta(rows)}
</section>`;
}

function finalHtml(p: CompressPage): string {
  const r = p.data.report;
  const a = r.accuracy;
  const b = r.budgets;
  const accuracy = table(
    ['network', 'validation accuracy', 'test accuracy', 'test vs baseline'],
    [
      ['baseline (unpruned)', pct(a.baseline.validation), pct(a.baseline.test), ''],
      ...(a.start ? [[r.mode === 'olmp' ? 'start of OLMP (baseline)' : 'after the channel stage', pct(a.start.validation), pct(a.start.test), esc(delta(a.start.test - a.baseline.test))]] : []),
      ['final', pct(a.final.validation), pct(a.final.test), esc(delta(a.final.test - a.baseline.test))],
    ],
    [1, 2, 3],
  );
  const budgets: string[][] = [
    ['max accuracy drop', esc(`${b.maxAccDrop} (validation ≥ ${pct(a.baseline.validation - b.maxAccDrop)})`), esc(`validation ${pct(a.final.validation)}`), met(a.withinDrop)],
  ];
  if (b.flopsBudget !== null) budgets.push(['FLOPs budget', esc(`${b.flopsBudget} (slimmed MACs ≤ ${int(b.flopsBudget * r.macs.dense)})`), esc(`${int(r.macs.slimmed)} (${pct(r.macs.slimmed / r.macs.dense, 1)})`), met(r.macs.withinBudget)]);
  if (b.targetCompression !== null) budgets.push(['target compression', esc(`${b.targetCompression}×`), esc(`${r.compression.toFixed(2)}×`), met(r.reachedTarget === true, 'reached', 'NOT reached')]);
  if (typeof b.timeBudget === 'number') budgets.push(['time budget', esc(formatDuration(b.timeBudget * 1000)), esc(formatDuration(r.wallTimeMs)), met(r.wallTimeMs <= b.timeBudget * 1000)]);
  const inf = r.inference;
  const rows: [string, string][] = [
    ['compression', `${r.compression.toFixed(2)}× (${int(r.nonZero)} of ${int(r.params)} weights non-zero)`],
    ['MACs per image', `dense ${int(r.macs.dense)} → slimmed ${int(r.macs.slimmed)} (${pct(r.macs.slimmed / r.macs.dense, 1)}) → sparse kernels ${int(r.macs.sparse)} (${pct(r.macs.sparse / r.macs.dense, 1)})`],
    ['test accuracy', `${pct(a.final.test)} (baseline ${pct(a.baseline.test)})`],
    ['validation accuracy', `${pct(a.final.validation)} (baseline ${pct(a.baseline.validation)})`],
  ];
  if (inf && typeof inf.tfjsImagesPerSec === 'number') {
    rows.push(['inference', `${int(inf.tfjsImagesPerSec)} images/s (exported tfjs model), ${int(inf.sparseImagesPerSec)} images/s (prunus sparse evaluator) over ${int(inf.images)} test images`]);
  }
  const fig = p.figures.get('footprint');
  return `<section class="final" data-section="final">
<h2>Final network</h2>
${meta(rows)}
<h3>Accuracy</h3>
${accuracy}
<h3>Budgets</h3>
${table(['budget', 'limit', 'reached', ''], budgets)}
${fig ? figureHtml(fig) : ''}
</section>`;
}

function delta(v: number): string {
  return Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v * 100).toFixed(2)} points` : '—';
}

function candidateCells(c: CandidateRow, chosen: boolean, crates: boolean): string[] {
  return [
    esc(c.index >= 0 ? `#${c.index}` : 'best') + (chosen ? ' ★' : ''),
    esc(c.keep),
    ...(crates ? [esc(c.crates)] : []),
    int(c.nonZero),
    c.compression !== null ? esc(`${c.compression.toFixed(2)}×`) : '—',
    pct(c.macRatio, 1),
    pct(c.accuracy),
    c.status === 'feasible' ? met(true, 'feasible') : esc(`${c.status} (violation ${c.violation.toFixed(3)})`),
  ];
}

function paretoHtml(p: CompressPage): string {
  const d = p.data;
  const open = '<section class="pareto" data-section="pareto">\n<h2>Joint search: the Pareto front</h2>';
  if (!d.search) {
    const why =
      d.report.mode === 'olmp'
        ? 'No Pareto front: mode olmp runs no joint search (OLMP alone prunes the baseline), so the run has no search candidates.'
        : 'No Pareto front: search.json is missing from the run folder, so the search candidates are not known.';
    return `${open}\n<p class="note">${esc(why)}</p>\n</section>`;
  }
  const s = d.search;
  const { rows, chosen } = candidateRows(s, d.report.macs.dense);
  const front = s.pareto.map((i) => rows[i]!).sort((x, y) => (x.nonZero ?? 0) - (y.nonZero ?? 0));
  const list = chosen.front ? front : [...front, chosen];
  const isChosen = (c: CandidateRow) => c === chosen;
  // Modes chained and channels search keep ratios alone: every crate is 0 (no magnitude pruning in the search).
  const crates = s.settings.searchCrates !== false;
  const figs = ['pareto', 'pareto-accuracy'].map((id) => p.figures.get(id)).filter((f): f is RenderedFigure => Boolean(f));
  const chosenLine =
    `Chosen: candidate ${chosen.index >= 0 ? `#${chosen.index}` : '(not among the recorded points)'} — channels kept ${chosen.keep}${crates ? `, crates ${chosen.crates}` : ''}; ` +
    `${chosen.nonZero !== null ? `${int(chosen.nonZero)} non-zeros (${chosen.compression!.toFixed(2)}×)` : 'size unknown'}, MACs ${pct(chosen.macRatio, 1)} of dense, ` +
    `validation ${pct(chosen.accuracy)} before finetuning, ${chosen.status === 'feasible' ? 'feasible' : `${chosen.status} (violation ${chosen.violation.toFixed(3)})`}` +
    `${chosen.front ? ', on the front' : ', not on the front'}.`;
  return `${open}
<p class="chosen" data-chosen="${esc(chosen.index)}">${esc(chosenLine)}</p>
${figs.map((f) => figureHtml(f)).join('\n')}
${figs.length === 0 ? '<p class="note">No candidate of the search has a known size, so there is nothing to draw.</p>' : ''}
<h3>Candidates on the front (${front.length} of ${rows.length})</h3>
${table(
  ['candidate', 'channels kept', ...(crates ? ['crates'] : []), 'non-zeros', 'compression', 'MACs', 'validation accuracy', 'feasible'],
  list.map((c) => candidateCells(c, isChosen(c), crates)),
  crates ? [3, 4, 5, 6] : [2, 3, 4, 5],
  (i) => (isChosen(list[i]!) ? 'chosen' : ''),
)}
</section>`;
}

function structureHtml(p: CompressPage): string {
  const r = p.data.report;
  const keep = p.figures.get('keep-ratios');
  const density = p.figures.get('layer-density');
  const groups = r.groups.length
    ? table(['group', 'channels', 'kept', 'keep ratio'], r.groups.map((g) => [esc(g.name), int(g.channels), int(g.kept), pct(g.keepRatio, 1)]), [1, 2, 3])
    : '<p class="note">The network has no channel groups that can be pruned.</p>';
  const layers = table(
    ['layer', 'weights', 'after channel removal', 'non-zero', 'density'],
    r.layers.map((l) => [esc(l.name), int(l.params), int(l.slimmedParams), int(l.nonZero), pct(l.density)]),
    [1, 2, 3, 4],
  );
  return `<section class="structure" data-section="structure">
<h2>Channels kept and layer densities</h2>
${keep ? figureHtml(keep) : r.mode === 'olmp' ? '<p class="note">Mode olmp removes no channels: every group keeps all of its channels.</p>' : ''}
<h3>Channel groups</h3>
${groups}
${density ? figureHtml(density) : ''}
<h3>Layers</h3>
${layers}
</section>`;
}

function exportsHtml(p: CompressPage): string {
  const d = p.data;
  const e = d.report.exported;
  const dense = e.denseFloat32Bytes;
  const where = (dir: string) => esc(relative(d.dir, dir) || dir);
  const rows = [
    ['tfjs (LayersModel)', where(e.tfjs.dir), int(e.tfjs.bytes), esc(kib(e.tfjs.bytes)), int(e.tfjs.gzipBytes), esc(kib(e.tfjs.gzipBytes)), pct(e.tfjs.gzipBytes / dense, 1)],
    ['sparse', where(e.sparse.dir), int(e.sparse.bytes), esc(kib(e.sparse.bytes)), int(e.sparse.gzipBytes), esc(kib(e.sparse.gzipBytes)), pct(e.sparse.gzipBytes / dense, 1)],
    ['unpruned weights, dense float32', '', int(dense), esc(kib(dense)), '', '', pct(1, 1)],
  ];
  return `<section class="exports" data-section="exports">
<h2>Exported model</h2>
${table(['export', 'folder', 'bytes', '', 'gzip bytes', '', 'gzip vs dense float32'], rows, [2, 3, 4, 5, 6])}
</section>`;
}

function olmpHtml(p: CompressPage): string {
  const d = p.data;
  const o = d.report.olmp;
  const open = '<section class="olmp" data-section="olmp">\n<h2>OLMP stage</h2>';
  if (d.report.mode === 'channels') return `${open}\n<p class="note">Mode channels has no OLMP stage: the network is the finetuned, slimmed one.</p>\n</section>`;
  const rows: [string, string][] = o
    ? [
        ['compression of the stage', `${o.compression.toFixed(2)}× (of its start network)`],
        ['iterations', int(o.iterations)],
        ['searches / evaluations', `${o.searches} / ${o.evaluations}`],
        ['stopped by', o.stoppedBy],
        ['final crates', o.crates.map((c) => c.toFixed(3)).join(', ')],
      ]
    : [];
  return `${open}
${meta(rows)}
${p.olmpFigures.map((f) => figureHtml(f, 'olmp')).join('\n')}
${d.olmpProblem ? `<p class="note">${esc(`The stage's figures are missing: ${d.olmpProblem}.`)}</p>` : ''}
</section>`;
}

export function compressPageHtml(title: string, subtitle: string, p: CompressPage): string {
  return pageShell(title, subtitle, [runHtml(p.data), finalHtml(p), paretoHtml(p), structureHtml(p), exportsHtml(p), olmpHtml(p)], CSS);
}
