/**
 * The report's figures as Vega-Lite specs (pure functions of the loaded data). Every figure names seed and backend.
 */
import type { RunData, SearchEvent, LogEvent, PhaseEvent } from './load.js';
import type { SummaryRow } from '../sweep/summary.js';

export type VlSpec = Record<string, unknown>;

export interface Figure {
  /** Stable name, used as data-chart in the page. */
  id: string;
  title: string;
  spec: VlSpec;
  caption: string;
}

export const WIDTH = 640;
export const CONFIG = {
  background: 'white',
  padding: 8,
  config: {
    font: 'sans-serif',
    view: { stroke: '#ddd' },
    axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#eee' },
    legend: { labelFontSize: 11, titleFontSize: 11 },
    title: { fontSize: 15, subtitleFontSize: 12, subtitleColor: '#555', anchor: 'start', offset: 10 },
  },
};

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function backendLabel(b: unknown): string {
  if (!b || typeof b !== 'object') return String(b ?? 'unknown');
  const x = b as { name?: unknown; adapter?: unknown };
  const name = typeof x.name === 'string' ? x.name : 'unknown';
  return typeof x.adapter === 'string' && x.adapter ? `${name} (${x.adapter})` : name;
}

/** "lenet-5 · seed 981118 · backend cpu" */
export function runTag(run: RunData): string {
  return `${run.config.model} · seed ${run.config.seed} · backend ${backendLabel(run.report?.backend ?? run.config.backend)}`;
}

const iterationAxis = (maxIt: number, title: string | null) => ({
  field: 'iteration',
  type: 'quantitative',
  scale: { domain: [0, Math.max(1, maxIt)], nice: false },
  title,
});

/** Compression and accuracy over iterations, searches marked. Null when the run logged nothing yet. */
export function trainingFigure(run: RunData): Figure | null {
  const logs = run.events.filter((e): e is LogEvent => e.type === 'log');
  if (logs.length === 0) return null;
  const searches = run.events.filter((e): e is SearchEvent => e.type === 'search');
  const phases = run.events.filter((e): e is PhaseEvent => e.type === 'phase' && e.phase !== 'pruning' && e.phase !== 'reference');
  const maxIt = Math.max(...logs.map((l) => l.iteration), ...searches.map((s) => s.iteration), ...phases.map((p) => p.iteration));
  const compression = logs.filter((l) => Number.isFinite(l.compression) && l.compression > 0).map((l) => ({ iteration: l.iteration, compression: l.compression }));
  const accuracy = logs.flatMap((l) => {
    const out: { iteration: number; series: string; accuracy: number }[] = [];
    if (Number.isFinite(l.accuracy)) out.push({ iteration: l.iteration, series: 'training batch', accuracy: l.accuracy });
    if (typeof l.validationAccuracy === 'number' && Number.isFinite(l.validationAccuracy)) out.push({ iteration: l.iteration, series: 'validation', accuracy: l.validationAccuracy });
    return out;
  });
  const compValues = [...compression.map((c) => c.compression), ...searches.map((x) => x.compression).filter((c) => c > 0)];
  // A log scale once compression spans an order of magnitude; before that (short runs) it would be mostly empty.
  const compLog = Math.max(...compValues) / Math.min(...compValues) >= 5;
  const marks = searches.map((s) => ({ iteration: s.iteration, compression: s.compression, accuracy: s.accuracy, layers: s.layers.join(', '), feasible: s.feasible ? 'yes' : 'no' }));
  const phaseMarks = phases.map((p) => ({ iteration: p.iteration, phase: p.phase }));
  const rules = (y: 'compression' | 'accuracy') => [
    ...(marks.length
      ? [
          {
            data: { values: marks },
            mark: { type: 'rule', strokeDash: [4, 3], color: '#999', strokeWidth: 1 },
            encoding: { x: { field: 'iteration', type: 'quantitative' } },
          },
          {
            data: { values: marks.filter((m) => Number.isFinite(m[y]) && (y === 'accuracy' || m[y] > 0)) },
            mark: { type: 'point', shape: 'triangle-down', filled: true, size: 60, color: '#e45756' },
            encoding: {
              x: { field: 'iteration', type: 'quantitative' },
              y: { field: y, type: 'quantitative' },
              tooltip: [
                { field: 'iteration', title: 'search at iteration' },
                { field: 'layers', title: 'layers searched' },
                { field: 'compression', format: '.2f' },
                { field: 'accuracy', format: '.2%' },
                { field: 'feasible' },
              ],
            },
          },
        ]
      : []),
    ...(phaseMarks.length
      ? [
          { data: { values: phaseMarks }, mark: { type: 'rule', color: '#54a24b', strokeWidth: 1.5 }, encoding: { x: { field: 'iteration', type: 'quantitative' } } },
          ...(y === 'compression'
            ? [
                {
                  data: { values: phaseMarks },
                  mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, dy: 3, color: '#54a24b', fontSize: 11 },
                  encoding: { x: { field: 'iteration', type: 'quantitative' }, y: { value: 0 }, text: { field: 'phase' } },
                },
              ]
            : []),
        ]
      : []),
  ];
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: 'Compression and accuracy over iterations',
      subtitle: `${runTag(run)} · ${plural(searches.length, 'search', 'searches')} (dashed lines, ▼ result)`,
    },
    vconcat: [
      {
        width: WIDTH,
        height: 170,
        layer: [
          {
            data: { values: compression },
            mark: { type: 'line', color: '#4c78a8', strokeWidth: 2, point: compression.length <= 40 },
            encoding: {
              x: iterationAxis(maxIt, null),
              y: { field: 'compression', type: 'quantitative', scale: compLog ? { type: 'log' } : { zero: false }, title: compLog ? 'compression (×, log scale)' : 'compression (×)' },
              tooltip: [{ field: 'iteration' }, { field: 'compression', format: '.2f' }],
            },
          },
          ...rules('compression'),
        ],
      },
      {
        width: WIDTH,
        height: 170,
        layer: [
          {
            data: { values: accuracy },
            mark: { type: 'line', strokeWidth: 1.5, point: accuracy.length <= 80 },
            encoding: {
              x: iterationAxis(maxIt, 'iteration'),
              y: { field: 'accuracy', type: 'quantitative', scale: { zero: false }, axis: { format: '.1%' }, title: 'accuracy' },
              color: { field: 'series', type: 'nominal', title: 'accuracy on', scale: { range: ['#f58518', '#72b7b2'] }, legend: { orient: 'bottom' } },
              tooltip: [{ field: 'iteration' }, { field: 'series' }, { field: 'accuracy', format: '.2%' }],
            },
          },
          ...rules('accuracy'),
        ],
      },
    ],
    resolve: { scale: { color: 'independent' } },
  };
  return {
    id: 'training',
    title: 'Compression and accuracy over iterations',
    spec,
    caption: `From ${logs.length} log events of events.jsonl${run.status === 'finished' ? '' : ' (run not finished)'}.`,
  };
}

/** Per-layer density of the final model (finished runs only). */
export function densityFigure(run: RunData): Figure | null {
  const r = run.report;
  if (!r || !Array.isArray(r.layers) || r.layers.length === 0) return null;
  const values = r.layers.map((l, i) => ({
    layer: l.name,
    order: i,
    density: l.density,
    label: `${(l.density * 100).toFixed(l.density < 0.1 ? 2 : 1)}%`,
    kept: `${l.nonZero.toLocaleString('en-US')} / ${l.params.toLocaleString('en-US')}`,
  }));
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: 'Per-layer density of the pruned model',
      subtitle: `${runTag(run)} · ${r.compression.toFixed(2)}× overall (${r.nonZero.toLocaleString('en-US')} of ${r.params.toLocaleString('en-US')} weights non-zero)`,
    },
    width: Math.max(260, Math.min(WIDTH, 90 * values.length)),
    height: 220,
    data: { values },
    encoding: {
      x: { field: 'layer', type: 'nominal', sort: values.map((v) => v.layer), axis: { labelAngle: 0 }, title: 'layer' },
      y: { field: 'density', type: 'quantitative', axis: { format: '.0%' }, title: 'density (non-zero / weights)' },
    },
    layer: [
      {
        mark: { type: 'bar', color: '#4c78a8' },
        encoding: { tooltip: [{ field: 'layer' }, { field: 'density', format: '.3%' }, { field: 'kept', title: 'non-zero / weights' }] },
      },
      { mark: { type: 'text', dy: -7, fontSize: 11 }, encoding: { text: { field: 'label' } } },
    ],
  };
  return { id: 'density', title: 'Per-layer density', spec, caption: 'From report.json: non-zero weights (and biases) over all parameters of each prunable layer.' };
}

/** The optimiser's convergence: best fitness per generation, one line per search. */
export function convergenceFigure(run: RunData): Figure | null {
  const searches = run.events.filter((e): e is SearchEvent => e.type === 'search');
  const values = searches.flatMap((s, k) =>
    s.generations
      .filter((g) => Number.isFinite(g.bestFitness))
      .map((g) => ({ search: `#${k + 1} t=${s.iteration}`, iteration: s.iteration, generation: g.generation, evaluations: g.evaluations, bestFitness: g.bestFitness })),
  );
  if (values.length === 0) return null;
  const optimizer = String(run.report?.optimizer ?? run.config.options?.optimizer ?? '');
  const fit = values.map((v) => v.bestFitness);
  const logY = Math.min(...fit) > 0 && Math.max(...fit) / Math.min(...fit) >= 5;
  const many = searches.length > 6;
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: `Convergence of the optimiser${optimizer ? ` (${optimizer})` : ''}`,
      subtitle: `${runTag(run)} · best fitness after each generation, one line per search (${searches.length})`,
    },
    width: WIDTH,
    height: 240,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5, point: values.length <= 60 },
    encoding: {
      x: { field: 'generation', type: 'quantitative', title: 'generation', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'bestFitness', type: 'quantitative', scale: logY ? { type: 'log' } : { zero: false }, title: `best fitness (lower is better${logY ? ', log scale' : ''})`, axis: { format: '.3~g' } },
      color: many
        ? { field: 'iteration', type: 'quantitative', scale: { scheme: 'viridis' }, title: 'search at iteration' }
        : { field: 'search', type: 'nominal', sort: { field: 'iteration' }, title: 'search' },
      detail: { field: 'search', type: 'nominal' },
      tooltip: [{ field: 'search' }, { field: 'generation' }, { field: 'evaluations' }, { field: 'bestFitness', format: '.5f' }],
    },
  };
  return {
    id: 'convergence',
    title: 'Convergence of the optimiser',
    spec,
    caption: 'From the search events: fitness is the fraction of weights kept when the accuracy constraint holds (infeasible points score above 1).',
  };
}

/** Non-dominated rows (higher compression and higher accuracy are better), by model, sorted by compression. */
export function paretoFront<T extends { model: string; compression: number; testAccuracy: number }>(rows: T[]): T[] {
  const out: T[] = [];
  const byModel = new Map<string, T[]>();
  for (const r of rows) byModel.set(r.model, [...(byModel.get(r.model) ?? []), r]);
  for (const list of byModel.values()) {
    const sorted = [...list].sort((a, b) => b.compression - a.compression || b.testAccuracy - a.testAccuracy);
    let best = -Infinity;
    const front: T[] = [];
    for (const r of sorted) {
      if (r.testAccuracy > best) {
        front.push(r);
        best = r.testAccuracy;
      }
    }
    out.push(...front.reverse());
  }
  return out;
}

function listLabel(values: (string | number)[], max = 8): string {
  const u = [...new Set(values.map(String))];
  return u.length <= max ? u.join(', ') : `${u.slice(0, max).join(', ')} … (${u.length})`;
}

/** Sweeps: test accuracy against compression (log x), with the Pareto front per model. */
export function scatterFigure(rows: SummaryRow[], sweepName: string): Figure | null {
  const pts = rows
    .filter((r) => r.status === 'finished' && r.compression !== null && r.testAccuracy !== null && r.compression > 0)
    .map((r) => ({ id: r.id, model: r.model, seed: r.seed ?? 0, optimizer: r.optimizer || '?', constraint: r.constraint, compression: r.compression!, testAccuracy: r.testAccuracy!, backend: r.backend }));
  if (pts.length === 0) return null;
  const front = paretoFront(pts);
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: 'Test accuracy against compression',
      subtitle: `sweep ${sweepName} · ${plural(pts.length, 'finished run', 'finished runs')} · seeds ${listLabel(pts.map((p) => p.seed))} · backend ${listLabel(pts.map((p) => p.backend))} · dashed: Pareto front per model`,
    },
    width: WIDTH,
    height: 300,
    encoding: {
      x: { field: 'compression', type: 'quantitative', scale: { type: 'log', nice: false, padding: 12 }, title: 'compression (×, log scale)' },
      y: { field: 'testAccuracy', type: 'quantitative', scale: { zero: false, padding: 12 }, axis: { format: '.2%' }, title: 'test accuracy' },
      color: { field: 'model', type: 'nominal', title: 'model' },
    },
    layer: [
      { data: { values: front }, mark: { type: 'line', strokeDash: [6, 4], strokeWidth: 1.5 } },
      { data: { values: front }, mark: { type: 'point', size: 260, strokeWidth: 1.2, color: '#333', opacity: 0.7 }, encoding: { color: { value: '#333' } } },
      {
        data: { values: pts },
        mark: { type: 'point', filled: true, size: 90, opacity: 0.9 },
        encoding: {
          shape: { field: 'optimizer', type: 'nominal', title: 'optimizer' },
          tooltip: [{ field: 'id' }, { field: 'seed' }, { field: 'optimizer' }, { field: 'constraint' }, { field: 'compression', format: '.2f' }, { field: 'testAccuracy', format: '.2%', title: 'test accuracy' }, { field: 'backend' }],
        },
      },
    ],
  };
  return {
    id: 'scatter',
    title: 'Test accuracy against compression',
    spec,
    caption: `Each point is a finished run; circled points are on the Pareto front of their model (no other run of that model is both more compressed and more accurate).`,
  };
}
