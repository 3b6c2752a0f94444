/**
 * `report(dir, opts)`: a self-contained report.html for a run directory, a sweep directory or a compress run folder —
 * figures drawn with Vega-Lite, rendered to inline SVG in Node by Vega; no scripts, stylesheets or fonts to fetch.
 */
import { resolve, join } from 'node:path';
import { writeFileAtomic } from '../../foundation/atomic.js';
import { convergenceFigure, densityFigure, scatterFigure, trainingFigure, type Figure } from './charts.js';
import { pageHtml, type RenderedFigure, type RunSection } from './html.js';
import { isCompressRunDir, kindOf, loadRun, loadSweep, type RunData } from './load.js';
import { renderSvg } from './render.js';
import { loadCompressRun, type CompressRunData } from './compress-load.js';
import { accuracyFigure, footprintFigure, keepRatioFigure, layerDensityFigure, paretoFigure } from './compress-charts.js';
import { compressPageHtml } from './compress-html.js';

export { loadRun, loadSweep, kindOf, readEvents, type RunData, type SweepData, type RunEvent, type RunReport, type RunConfigFile } from './load.js';
export { trainingFigure, densityFigure, convergenceFigure, scatterFigure, paretoFront, type Figure, type VlSpec } from './charts.js';
export { renderSvg } from './render.js';
export { loadCompressRun, type CompressRunData, type CompressSearchData, type CandidateAsRead } from './compress-load.js';
export { paretoFigure, accuracyFigure, keepRatioFigure, layerDensityFigure, footprintFigure } from './compress-charts.js';

export interface ReportOptions {
  /** Output file (default <dir>/report.html). */
  out?: string;
  /** Fixed "generated" time for reproducible pages (default now). */
  now?: Date;
}

export interface ReportResult {
  kind: 'run' | 'sweep' | 'compress';
  out: string;
  /** Figures in page order: id, title and (for run figures) the run's folder name. */
  figures: { id: string; title: string; run?: string }[];
  html: string;
  /** Warnings of the chart compiler/renderer (empty when every figure compiled cleanly). */
  warnings: string[];
}

async function render(f: Figure, warnings: string[], where = ''): Promise<RenderedFigure> {
  const w: string[] = [];
  const svg = await renderSvg(f.spec, w);
  warnings.push(...w.map((x) => `${f.id}${where ? ` of ${where}` : ''}: ${x}`));
  return { id: f.id, title: f.title, caption: f.caption, svg };
}

async function runSection(run: RunData, warnings: string[]): Promise<RunSection> {
  const render1 = (f: Figure) => render(f, warnings, run.name);
  const figures: RenderedFigure[] = [];
  const missing: string[] = [];
  const t = trainingFigure(run);
  if (t) figures.push(await render1(t));
  else missing.push('No log events yet: compression and accuracy over iterations appear after the first log period.');
  const d = densityFigure(run);
  if (d) figures.push(await render1(d));
  else missing.push('The run has not finished: per-layer density appears with report.json.');
  const c = convergenceFigure(run);
  if (c) figures.push(await render1(c));
  else missing.push('No search yet: the convergence plot appears after the first search.');
  return { run, figures, missing };
}

/** A compress run inside a sweep: its own figures (the Pareto front and the rest) once it has finished. */
async function compressRunSection(run: RunData, warnings: string[]): Promise<RunSection> {
  let d: CompressRunData;
  try {
    d = loadCompressRun(run.dir);
  } catch (e) {
    return { run, figures: [], missing: [e instanceof Error ? e.message : String(e)] };
  }
  const figures: RenderedFigure[] = [];
  for (const make of [footprintFigure, paretoFigure, accuracyFigure, keepRatioFigure, layerDensityFigure]) {
    const f = make(d);
    if (f) figures.push(await render(f, warnings, run.name));
  }
  return { run, figures, missing: [] };
}

/** A compress run's page: its own figures, then the OLMP stage's (olmp/ is an ordinary search run folder). */
async function compressHtml(d: CompressRunData, title: string, subtitle: string, figures: ReportResult['figures'], warnings: string[]): Promise<string> {
  const rendered = new Map<string, RenderedFigure>();
  for (const make of [footprintFigure, paretoFigure, accuracyFigure, keepRatioFigure, layerDensityFigure]) {
    const f = make(d);
    if (f) rendered.set(f.id, await render(f, warnings, d.name));
  }
  // The stage's own config names the start network's file as its model; its figures name the compressed model.
  const olmpFigures: RenderedFigure[] = [];
  if (d.olmp) {
    const run: RunData = { ...d.olmp, config: { ...d.olmp.config, model: `${d.report.model} (OLMP stage)` } };
    for (const f of [trainingFigure(run), convergenceFigure(run)]) {
      if (f) olmpFigures.push(await render({ ...f, id: `olmp-${f.id}` }, warnings, `${d.name}/olmp`));
    }
  }
  for (const f of rendered.values()) figures.push({ id: f.id, title: f.title, run: d.name });
  for (const f of olmpFigures) figures.push({ id: f.id, title: f.title, run: `${d.name}/olmp` });
  return compressPageHtml(title, subtitle, { data: d, figures: rendered, olmpFigures });
}

function version(): string {
  return process.env.npm_package_version ?? '';
}

export async function report(dir: string, opts: ReportOptions = {}): Promise<ReportResult> {
  const kind = kindOf(dir);
  const root = resolve(dir);
  const out = resolve(opts.out ?? join(root, 'report.html'));
  const stamp = (opts.now ?? new Date()).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  let html: string;
  const figures: ReportResult['figures'] = [];
  const warnings: string[] = [];
  if (kind === 'compress') {
    const d = loadCompressRun(root);
    html = await compressHtml(
      d,
      `prunus compress report — ${d.report.model}, ${d.report.mode}${d.report.mode === 'olmp' ? '' : ` ${d.report.method}`}, seed ${d.report.seed}`,
      `${root} · generated ${stamp}${version() ? ` by prunus ${version()}` : ''}`,
      figures,
      warnings,
    );
  } else if (kind === 'run') {
    const run = loadRun(root);
    const section = await runSection(run, warnings);
    section.figures.forEach((f) => figures.push({ id: f.id, title: f.title, run: run.name }));
    html = pageHtml({
      title: `prunus report — ${run.config.model}, seed ${run.config.seed}`,
      subtitle: `${root} · generated ${stamp}${version() ? ` by prunus ${version()}` : ''}`,
      runs: [section],
    });
  } else {
    const sw = loadSweep(root);
    const sf = scatterFigure(sw.rows, sw.name);
    const scatter = sf ? await render(sf, warnings) : null;
    if (scatter) figures.push({ id: scatter.id, title: scatter.title });
    const sections: RunSection[] = [];
    for (const run of sw.runs) {
      const s = isCompressRunDir(run.dir) ? await compressRunSection(run, warnings) : await runSection(run, warnings);
      s.figures.forEach((f) => figures.push({ id: f.id, title: f.title, run: run.name }));
      sections.push(s);
    }
    html = pageHtml({
      title: `prunus sweep report — ${sw.name}`,
      subtitle: `${root} · ${sw.rows.length} runs · generated ${stamp}`,
      sweep: { name: sw.name, rows: sw.rows, scatter },
      runs: sections,
    });
  }
  writeFileAtomic(out, html);
  return { kind, out, figures, html, warnings };
}
