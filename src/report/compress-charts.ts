/**
 * The figures of a compress run's report as Vega-Lite specs (pure functions of the loaded folder): the joint search's
 * candidates and their Pareto front (non-zeros × MACs, and accuracy × non-zeros), per-group keep ratios, per-layer
 * densities, and the final network's MACs and exported sizes. Every figure names seed and backend.
 */
import { CONFIG, WIDTH, backendLabel, type Figure, type VlSpec } from './charts.js';
import type { CandidateAsRead, CompressRunData, CompressSearchData } from './compress-load.js';

/** "lenet-5 · joint di · seed 1 · backend wasm" */
export function compressTag(d: CompressRunData): string {
  const r = d.report;
  return `${r.model} · ${r.mode}${r.mode === 'olmp' ? '' : ` ${r.method}`} · seed ${r.seed} · backend ${backendLabel(r.backend ?? d.config.backend)}`;
}

/** A five-pointed star (a Vega symbol path in the unit square), the chosen candidate's mark. */
const STAR = 'M0,-1L0.224,-0.309L0.951,-0.309L0.363,0.118L0.588,0.809L0,0.382L-0.588,0.809L-0.363,0.118L-0.951,-0.309L-0.224,-0.309Z';
const STATUS = ['feasible', 'infeasible', 'stopped early'] as const;
const SHAPES = ['circle', 'cross', 'square'];
const pct = (v: number, digits = 1) => `${(v * 100).toFixed(digits)}%`;
const int = (v: number) => Math.round(v).toLocaleString('en-US');

export interface CandidateRow {
  /** Index in search.json's outcome.points (-1: the chosen point, when it is not among them). */
  index: number;
  nonZero: number | null;
  compression: number | null;
  macs: number;
  macRatio: number;
  accuracy: number | null;
  status: (typeof STATUS)[number];
  front: boolean;
  keep: string;
  crates: string;
  violation: number;
}

function row(p: CandidateAsRead, index: number, denseMacs: number, front: Set<number>): CandidateRow {
  return {
    index,
    nonZero: typeof p.nonZero === 'number' && Number.isFinite(p.nonZero) ? p.nonZero : null,
    compression: typeof p.compression === 'number' && Number.isFinite(p.compression) ? p.compression : null,
    macs: p.macs,
    macRatio: p.macs / denseMacs,
    accuracy: p.accuracy,
    // An evaluated candidate without an accuracy was stopped early (it could not reach the search's floor).
    status: p.result.feasible ? 'feasible' : p.accuracy === null && p.nonZero !== null ? 'stopped early' : 'infeasible',
    front: front.has(index),
    keep: p.keep.join('/'),
    crates: p.crates.map((c) => c.toFixed(2)).join(', '),
    violation: p.result.violation,
  };
}

/** Every candidate of the search as a table row, and the chosen one. */
export function candidateRows(s: CompressSearchData, denseMacs: number): { rows: CandidateRow[]; chosen: CandidateRow } {
  const front = new Set(s.pareto);
  const rows = s.points.map((p, i) => row(p, i, denseMacs, front));
  return { rows, chosen: s.chosen >= 0 ? rows[s.chosen]! : row(s.best, -1, denseMacs, front) };
}

const TOOLTIP = [
  { field: 'index', title: 'candidate #' },
  { field: 'keep', title: 'channels kept per group' },
  { field: 'crates' },
  { field: 'nonZero', title: 'non-zeros', format: ',' },
  { field: 'compression', format: '.2f' },
  { field: 'macRatio', title: 'MACs (share of dense)', format: '.1%' },
  { field: 'accuracy', title: 'validation accuracy', format: '.2%' },
  { field: 'status' },
];

const shapeEncoding = { field: 'status', type: 'nominal', title: 'candidate', scale: { domain: [...STATUS], range: SHAPES } };

/** The layers every candidate scatter shares: the front ringed, the candidates, and the chosen one starred. */
function candidateLayers(rows: CandidateRow[], chosen: CandidateRow | null, colour: Record<string, unknown>, x: object, y: object, yField: 'macRatio' | 'accuracy'): object[] {
  const shown = rows.filter((r) => r.nonZero !== null && r[yField] !== null);
  const coloured = shown.filter((r) => r.accuracy !== null);
  const grey = shown.filter((r) => r.accuracy === null);
  const front = shown.filter((r) => r.front);
  const layers: object[] = [];
  if (front.length) layers.push({ data: { values: front }, mark: { type: 'point', size: 330, strokeWidth: 1.5, color: '#222', filled: false }, encoding: { x, y } });
  if (coloured.length) layers.push({ data: { values: coloured }, mark: { type: 'point', filled: true, size: 80, opacity: 0.9 }, encoding: { x, y, shape: shapeEncoding, color: colour, tooltip: TOOLTIP } });
  if (grey.length) layers.push({ data: { values: grey }, mark: { type: 'point', filled: true, size: 60, color: '#a0a0a0' }, encoding: { x, y, shape: shapeEncoding, tooltip: TOOLTIP } });
  if (chosen && chosen.nonZero !== null && chosen[yField] !== null) {
    layers.push(
      { data: { values: [chosen] }, mark: { type: 'point', shape: STAR, size: 650, filled: false, stroke: '#d62728', strokeWidth: 2.5 }, encoding: { x, y, tooltip: TOOLTIP } },
      { data: { values: [chosen] }, mark: { type: 'text', align: 'left', dx: 16, dy: -10, color: '#d62728', fontWeight: 'bold', fontSize: 12, text: 'chosen' }, encoding: { x, y } },
    );
  }
  return layers;
}

/**
 * A horizontal reference line at y = `value`, labelled at the left edge (where few candidates lie: small networks
 * rarely keep the accuracy), above the line or below it so that two close lines keep their labels apart.
 */
function yRule(field: string, value: number, label: string, colour: string, dashed: boolean, y: object, side: 'above' | 'below' = 'above'): object[] {
  const values = [{ [field]: value, label }];
  return [
    { data: { values }, mark: { type: 'rule', color: colour, strokeWidth: 1.5, ...(dashed ? { strokeDash: [6, 4] } : {}) }, encoding: { y } },
    {
      data: { values },
      mark: { type: 'text', align: 'left', baseline: side === 'above' ? 'bottom' : 'top', dy: side === 'above' ? -3 : 3, color: colour, fontSize: 11 },
      encoding: { x: { value: 4 }, y, text: { field: 'label' } },
    },
  ];
}

const nonZeroAxis = { field: 'nonZero', type: 'quantitative', scale: { type: 'log', nice: false, padding: 16 }, axis: { format: '~s' }, title: 'non-zero weights (log scale)' };

function counts(d: CompressRunData, rows: CandidateRow[]): string {
  const s = d.search!;
  const stopped = rows.filter((r) => r.status === 'stopped early').length;
  const rejected = rows.filter((r) => r.nonZero === null).length;
  return `${rows.length} candidates: ${rows.length - stopped - rejected} evaluated${stopped ? `, ${stopped} stopped early` : ''}${rejected ? `, ${rejected} rejected over the FLOPs budget` : ''}, ${s.pareto.length} on the front`;
}

/**
 * Colour scales leave out the palest end of their scheme, which barely shows on white. Vega estimates text widths
 * without a canvas (generously), so subtitles stay in short lines and axis titles short, or the figure pads out.
 */
const scheme = (name: string) => ({ scheme: { name, extent: [0, 0.88] } });

/** Non-zeros (x, log) × MACs of the slimmed network (y), coloured by validation accuracy; front ringed, chosen starred. */
export function paretoFigure(d: CompressRunData): Figure | null {
  if (!d.search) return null;
  const { rows, chosen } = candidateRows(d.search, d.report.macs.dense);
  if (!rows.some((r) => r.nonZero !== null)) return null;
  const budget = d.report.budgets.flopsBudget;
  const y = { field: 'macRatio', type: 'quantitative', scale: { zero: false, padding: 16 }, axis: { format: '.0%' }, title: 'MACs / dense MACs' };
  const colour = { field: 'accuracy', type: 'quantitative', scale: scheme('viridis'), legend: { format: '.0%' }, title: 'validation accuracy' };
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: 'Search candidates: non-zeros against MACs',
      subtitle: [compressTag(d), counts(d, rows), `ringed: Pareto front · ★ chosen · MACs of the slimmed network, dense ${int(d.report.macs.dense)}`],
    },
    width: WIDTH,
    height: 320,
    layer: [...(budget !== null ? yRule('macRatio', budget, `FLOPs budget ${pct(budget, 0)}`, '#e45756', true, y) : []), ...candidateLayers(rows, chosen, colour, nonZeroAxis, y, 'macRatio')],
  };
  const rejected = rows.filter((r) => r.nonZero === null).length;
  return {
    id: 'pareto',
    title: 'Search candidates: non-zeros against MACs',
    spec,
    caption: `From search.json: every distinct candidate of the joint search, coloured by its validation accuracy before any finetuning; grey squares were stopped early (below the search's accuracy floor, accuracy unknown); ringed points are the Pareto front over non-zeros × MACs × validation accuracy.${rejected ? ` ${rejected === 1 ? '1 candidate' : `${rejected} candidates`} over the FLOPs budget ${rejected === 1 ? 'was' : 'were'} rejected without being run: ${rejected === 1 ? 'its' : 'their'} size is unknown, so ${rejected === 1 ? 'it is' : 'they are'} not drawn.` : ''}`,
  };
}

/** Validation accuracy (y) against non-zeros (x, log), coloured by MACs, with the search's floor and the final model. */
export function accuracyFigure(d: CompressRunData): Figure | null {
  if (!d.search) return null;
  const { rows, chosen } = candidateRows(d.search, d.report.macs.dense);
  if (!rows.some((r) => r.nonZero !== null && r.accuracy !== null)) return null;
  const s = d.search;
  const base = typeof s.settings.baselineAccuracy === 'number' ? s.settings.baselineAccuracy : s.baselineValidationAccuracy;
  const floor = typeof s.settings.maxAccDrop === 'number' ? base - s.settings.maxAccDrop : null;
  const r = d.report;
  const final = { nonZero: r.nonZero, accuracy: r.accuracy.final.validation, label: 'final model' };
  // Accuracy is at most 1: the domain ends there rather than at a padded, rounded-up 110%.
  const ys = [...rows.flatMap((x) => (x.nonZero !== null && x.accuracy !== null ? [x.accuracy] : [])), base, final.accuracy, ...(floor !== null ? [floor] : [])];
  const lo = Math.max(0, Math.min(...ys) - 0.03);
  const hi = Math.min(1, Math.max(...ys) + 0.03);
  const y = { field: 'accuracy', type: 'quantitative', scale: { domain: [lo, hi], nice: false }, axis: { format: '.0%' }, title: 'validation accuracy' };
  const colour = { field: 'macRatio', type: 'quantitative', scale: scheme('plasma'), legend: { format: '.0%' }, title: 'MACs / dense' };
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: 'Search candidates: validation accuracy against non-zeros',
      subtitle: [compressTag(d), counts(d, rows), `before finetuning · ringed: Pareto front · ★ chosen · ◆ final model`],
    },
    width: WIDTH,
    height: 300,
    layer: [
      ...yRule('accuracy', base, `baseline ${pct(base, 2)}`, '#555', false, y, 'above'),
      ...(floor !== null ? yRule('accuracy', floor, `search floor ${pct(floor, 2)}`, '#e45756', true, y, 'below') : []),
      ...candidateLayers(rows, chosen, colour, nonZeroAxis, y, 'accuracy'),
      { data: { values: [final] }, mark: { type: 'point', shape: 'diamond', filled: true, size: 220, color: '#2ca02c', stroke: '#145214', strokeWidth: 1 }, encoding: { x: nonZeroAxis, y } },
      // Labelled on the left: the chosen star's label is on the right, and the two often lie close together.
      { data: { values: [final] }, mark: { type: 'text', align: 'right', dx: -12, color: '#1a7f37', fontWeight: 'bold', fontSize: 12 }, encoding: { x: nonZeroAxis, y, text: { field: 'label' } } },
    ],
  };
  return {
    id: 'pareto-accuracy',
    title: 'Search candidates: validation accuracy against non-zeros',
    spec,
    caption: `From search.json and report.json: candidates that ran to the end, their validation accuracy before finetuning, coloured by MACs; the search's accuracy floor (the baseline less the search's allowed drop); and the final model (after ${r.mode === 'channels' ? 'the finetune' : 'the finetune and OLMP'}), on the same validation images.`,
  };
}

/** The fraction of channels each group keeps in the final network. */
export function keepRatioFigure(d: CompressRunData): Figure | null {
  const g = d.report.groups;
  // Mode olmp removes no channels: every bar would be full.
  if (g.length === 0 || d.report.mode === 'olmp') return null;
  const values = g.map((x) => ({ group: x.name, keepRatio: x.keepRatio, label: `${x.kept} / ${x.channels}` }));
  const spec: VlSpec = {
    ...CONFIG,
    title: { text: 'Channels kept per group', subtitle: [compressTag(d), 'labels: channels kept / channels of the group'] },
    width: Math.max(260, Math.min(WIDTH, 90 * values.length)),
    height: 200,
    data: { values },
    encoding: {
      x: { field: 'group', type: 'nominal', sort: values.map((v) => v.group), axis: { labelAngle: 0 }, title: 'channel group' },
      y: { field: 'keepRatio', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '.0%' }, title: 'channels kept' },
    },
    layer: [
      { mark: { type: 'bar', color: '#72b7b2' }, encoding: { tooltip: [{ field: 'group' }, { field: 'keepRatio', format: '.1%' }, { field: 'label', title: 'kept / channels' }] } },
      { mark: { type: 'text', dy: -7, fontSize: 11 }, encoding: { text: { field: 'label' } } },
    ],
  };
  return { id: 'keep-ratios', title: 'Channels kept per group', spec, caption: "From report.json: the channels of each group the method's finetuner kept (the rest are sliced away)." };
}

/** Per prunable layer: the share of its weights left after channel removal, and the share non-zero at the end. */
export function layerDensityFigure(d: CompressRunData): Figure | null {
  const layers = d.report.layers;
  if (layers.length === 0) return null;
  const STAGES = ['after channel removal', 'non-zero (final)'];
  const values = layers.flatMap((l) => [
    { layer: l.name, stage: STAGES[0], share: l.slimmedParams / l.params, label: pct(l.slimmedParams / l.params), count: `${int(l.slimmedParams)} / ${int(l.params)}` },
    { layer: l.name, stage: STAGES[1], share: l.density, label: pct(l.density), count: `${int(l.nonZero)} / ${int(l.params)}` },
  ]);
  const r = d.report;
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: 'Per-layer density of the final network',
      subtitle: [compressTag(d), `${r.compression.toFixed(2)}× overall (${int(r.nonZero)} of ${int(r.params)} weights non-zero)`],
    },
    width: Math.max(300, Math.min(WIDTH, 130 * layers.length)),
    height: 220,
    data: { values },
    encoding: {
      x: { field: 'layer', type: 'nominal', sort: layers.map((l) => l.name), axis: { labelAngle: 0 }, title: 'layer' },
      xOffset: { field: 'stage', type: 'nominal', sort: STAGES },
      y: { field: 'share', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '.0%' }, title: 'share of weights' },
      color: { field: 'stage', type: 'nominal', sort: STAGES, scale: { domain: STAGES, range: ['#b5cde6', '#4c78a8'] }, title: null, legend: { orient: 'bottom', labelLimit: 300 } },
    },
    layer: [
      { mark: { type: 'bar' }, encoding: { tooltip: [{ field: 'layer' }, { field: 'stage' }, { field: 'share', format: '.2%' }, { field: 'count', title: 'weights / unpruned' }] } },
      { mark: { type: 'text', dy: -6, fontSize: 10 }, encoding: { text: { field: 'label' }, color: { value: '#333' } } },
    ],
  };
  return {
    id: 'layer-density',
    title: 'Per-layer density',
    spec,
    caption: "From report.json: weights (and biases) of each prunable layer left once the removed channels are sliced away, and those non-zero in the final model, over the unpruned layer's.",
  };
}

/** The final network's MACs (dense → slimmed → sparse) and the sizes of its exports. */
export function footprintFigure(d: CompressRunData): Figure {
  const r = d.report;
  const e = r.exported;
  const macs = [
    { item: 'dense (unpruned)', value: r.macs.dense, label: int(r.macs.dense) },
    { item: 'slimmed', value: r.macs.slimmed, label: `${int(r.macs.slimmed)} (${pct(r.macs.slimmed / r.macs.dense)})` },
    { item: 'sparse kernels', value: r.macs.sparse, label: `${int(r.macs.sparse)} (${pct(r.macs.sparse / r.macs.dense)})` },
  ];
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const bytes = [
    { item: 'dense float32', value: e.denseFloat32Bytes / 1024, label: kib(e.denseFloat32Bytes) },
    { item: 'tfjs export', value: e.tfjs.bytes / 1024, label: kib(e.tfjs.bytes) },
    { item: 'tfjs, gzip', value: e.tfjs.gzipBytes / 1024, label: kib(e.tfjs.gzipBytes) },
    { item: 'sparse export', value: e.sparse.bytes / 1024, label: kib(e.sparse.bytes) },
    { item: 'sparse, gzip', value: e.sparse.gzipBytes / 1024, label: kib(e.sparse.gzipBytes) },
  ];
  // The value axis runs past the longest bar so that its label fits beside it.
  const panel = (title: string, values: { value: number }[], colour: string, format: string) => ({
    title: { text: title, fontSize: 12, subtitle: '' },
    width: 250,
    height: 22 * values.length,
    data: { values },
    encoding: {
      y: { field: 'item', type: 'nominal', sort: null, title: null, axis: { labelLimit: 200 } },
      x: { field: 'value', type: 'quantitative', axis: { format, tickCount: 4 }, scale: { domain: [0, 1.6 * Math.max(...values.map((v) => v.value))], nice: false }, title: null },
    },
    layer: [
      { mark: { type: 'bar', color: colour }, encoding: { tooltip: [{ field: 'item' }, { field: 'label', title: 'value' }] } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 }, encoding: { text: { field: 'label' } } },
    ],
  });
  const budget = r.budgets.flopsBudget;
  const spec: VlSpec = {
    ...CONFIG,
    title: {
      text: 'MACs and exported sizes of the final network',
      subtitle: [compressTag(d), ...(budget !== null ? [`FLOPs budget ${pct(budget, 0)} ${r.macs.withinBudget ? 'met' : 'NOT met'}`] : [])],
    },
    hconcat: [panel('MACs per image', macs, '#4c78a8', '~s'), panel('size (KiB)', bytes, '#f58518', ',.0f')],
    spacing: 40,
  };
  return {
    id: 'footprint',
    title: 'MACs and exported sizes',
    spec,
    caption: 'From report.json: MACs of one image through the unpruned network, the slimmed one, and what the sparse kernels execute; bytes of the export folders as written and gzipped, against the unpruned weights as dense float32.',
  };
}
