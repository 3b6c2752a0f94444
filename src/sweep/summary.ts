/**
 * The sweep's summary table over all its runs, as rows, CSV and Markdown. Rows of compress runs carry the compress
 * report's measurements too (mode, method, MACs, the baseline's accuracy, whether the drop was met), and a sweep of
 * compress runs gets its own columns.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Flags } from './spec.js';

export type RunStatus = 'finished' | 'failed' | 'interrupted' | 'pending';

export interface SummaryRow {
  id: string;
  status: RunStatus;
  model: string;
  seed: number | null;
  optimizer: string;
  constraint: string;
  maxAccDrop: number | null;
  compression: number | null;
  nonZero: number | null;
  params: number | null;
  validationAccuracy: number | null;
  testAccuracy: number | null;
  testError: number | null;
  wallTimeMs: number | null;
  backend: string;
  evaluations: number | null;
  attempts: number;
  /** Relative to the sweep folder. */
  runDir: string;
  error?: string;
  /** The fields below are set on rows of `prunus compress` runs only (report.json: CompressReport). */
  command?: 'compress';
  mode?: string;
  method?: string;
  objective?: string;
  flopsBudget?: number | null;
  /** Dense MACs of the final network (removed channels gone) and of the unpruned one. */
  macsSlimmed?: number | null;
  macsDense?: number | null;
  baselineTestAccuracy?: number | null;
  /** Final validation accuracy >= the baseline's - maxAccDrop. */
  withinDrop?: boolean | null;
}

interface StateLike {
  attempts: { result?: string; error?: string; action?: string }[];
}

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const backendName = (b: unknown): string => (b && typeof b === 'object' && typeof (b as { name?: unknown }).name === 'string' ? (b as { name: string }).name : str(b));

const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});

/** The compress fields of a row (report.json, else config.json's options, else the sweep's flags). */
function compressFields(row: SummaryRow, report: Record<string, unknown> | null, options: Record<string, unknown>, flags: Flags): SummaryRow {
  const acc = obj(report?.accuracy);
  const final = obj(acc.final);
  const macs = obj(report?.macs);
  const budgets = obj(report?.budgets);
  const search = obj(report?.search);
  const olmp = obj(report?.olmp);
  const test = num(final.test);
  const evaluations = report ? (num(search.evaluations) ?? 0) + (num(olmp.evaluations) ?? 0) : null;
  return {
    ...row,
    optimizer: '',
    constraint: '',
    maxAccDrop: num(budgets.maxAccDrop ?? options.maxAccDrop ?? flags['max-acc-drop']),
    validationAccuracy: num(final.validation),
    testAccuracy: test,
    testError: test === null ? null : 1 - test,
    evaluations,
    command: 'compress',
    mode: str(report?.mode ?? options.mode ?? flags.mode ?? 'joint'),
    method: str(report?.method ?? options.method ?? flags.method ?? 'di'),
    objective: str(report?.objective ?? options.objective ?? flags.objective ?? 'size'),
    flopsBudget: num(budgets.flopsBudget ?? options.flopsBudget ?? flags['flops-budget']),
    macsSlimmed: num(macs.slimmed),
    macsDense: num(macs.dense),
    baselineTestAccuracy: num(obj(acc.baseline).test),
    withinDrop: typeof acc.withinDrop === 'boolean' ? acc.withinDrop : null,
  };
}

/**
 * One row from a run directory (report.json, else config.json, else the sweep's flags). `command` is the sweep's
 * (a run folder that says it is a compress run is read as one whatever it is).
 */
export function summaryRow(sweepDir: string, run: { id: string; flags: Flags; dir: string }, state: StateLike | null, command?: string): SummaryRow {
  const runDir = join(sweepDir, run.dir);
  const report = readJson(join(runDir, 'report.json'));
  const config = readJson(join(runDir, 'config.json'));
  const options = (config?.options ?? {}) as Record<string, unknown>;
  const last = state?.attempts.filter((a) => a.action !== 'wait').at(-1);
  let status: RunStatus;
  if (report && report.status === 'finished') status = 'finished';
  else if (last?.result === 'failed') status = 'failed';
  else if (config) status = 'interrupted';
  else status = 'pending';
  const pick = (k: string, flag: string) => report?.[k] ?? config?.[k] ?? options[k] ?? run.flags[flag];
  const row: SummaryRow = {
    id: run.id,
    status,
    model: str(pick('model', 'model')),
    seed: num(pick('seed', 'seed')),
    optimizer: str(report?.optimizer ?? options.optimizer ?? run.flags.optimizer ?? ''),
    constraint: str(report?.constraint ?? options.constraint ?? run.flags.constraint ?? ''),
    maxAccDrop: num(options.maxAccDrop ?? run.flags['max-acc-drop']),
    compression: num(report?.compression),
    nonZero: num(report?.nonZero),
    params: num(report?.params),
    validationAccuracy: num(report?.validationAccuracy),
    testAccuracy: num(report?.testAccuracy),
    testError: num(report?.testError),
    wallTimeMs: num(report?.wallTimeMs),
    backend: backendName(report?.backend ?? config?.backend ?? run.flags.backend ?? ''),
    evaluations: num(report?.evaluations),
    attempts: state?.attempts.filter((a) => a.action !== 'wait').length ?? 0,
    runDir: run.dir,
  };
  if (status === 'failed' && last?.error) row.error = last.error;
  const isCompress = (config?.command ?? report?.command ?? command) === 'compress';
  return isCompress ? compressFields(row, report, options, run.flags) : row;
}

/** Rows of every run; `command` defaults to the one the sweep folder's sweep.json names. */
export function buildSummary(sweepDir: string, runs: { id: string; flags: Flags; dir: string }[], stateOf: (id: string) => StateLike | null, command?: string): SummaryRow[] {
  const cmd = command ?? str(readJson(join(sweepDir, 'sweep.json'))?.command);
  return runs.map((r) => summaryRow(sweepDir, r, existsSync(join(sweepDir, 'state', `${r.id}.json`)) ? stateOf(r.id) : null, cmd));
}

/** Whether rows are of compress runs (they get the compress columns). */
const isCompressTable = (rows: SummaryRow[]) => rows.length > 0 && rows.every((r) => r.command === 'compress');

const CSV_COLUMNS: [string, (r: SummaryRow) => string | number | null][] = [
  ['id', (r) => r.id],
  ['status', (r) => r.status],
  ['model', (r) => r.model],
  ['seed', (r) => r.seed],
  ['optimizer', (r) => r.optimizer],
  ['constraint', (r) => r.constraint],
  ['max_acc_drop', (r) => r.maxAccDrop],
  ['compression', (r) => r.compression],
  ['non_zero', (r) => r.nonZero],
  ['params', (r) => r.params],
  ['validation_accuracy', (r) => r.validationAccuracy],
  ['test_accuracy', (r) => r.testAccuracy],
  ['test_error', (r) => r.testError],
  ['wall_time_s', (r) => (r.wallTimeMs === null ? null : Math.round(r.wallTimeMs) / 1000)],
  ['backend', (r) => r.backend],
  ['evaluations', (r) => r.evaluations],
  ['attempts', (r) => r.attempts],
  ['error', (r) => r.error ?? ''],
];

const COMPRESS_CSV_COLUMNS: [string, (r: SummaryRow) => string | number | null][] = [
  ['id', (r) => r.id],
  ['status', (r) => r.status],
  ['model', (r) => r.model],
  ['mode', (r) => r.mode ?? ''],
  ['method', (r) => r.method ?? ''],
  ['seed', (r) => r.seed],
  ['objective', (r) => r.objective ?? ''],
  ['max_acc_drop', (r) => r.maxAccDrop],
  ['flops_budget', (r) => r.flopsBudget ?? null],
  ['compression', (r) => r.compression],
  ['non_zero', (r) => r.nonZero],
  ['params', (r) => r.params],
  ['macs_slimmed', (r) => r.macsSlimmed ?? null],
  ['macs_dense', (r) => r.macsDense ?? null],
  ['validation_accuracy', (r) => r.validationAccuracy],
  ['test_accuracy', (r) => r.testAccuracy],
  ['baseline_test_accuracy', (r) => r.baselineTestAccuracy ?? null],
  ['within_drop', (r) => (typeof r.withinDrop === 'boolean' ? String(r.withinDrop) : null)],
  ['wall_time_s', (r) => (r.wallTimeMs === null ? null : Math.round(r.wallTimeMs) / 1000)],
  ['backend', (r) => r.backend],
  ['evaluations', (r) => r.evaluations],
  ['attempts', (r) => r.attempts],
  ['error', (r) => r.error ?? ''],
];

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function summaryCsv(rows: SummaryRow[]): string {
  const columns = isCompressTable(rows) ? COMPRESS_CSV_COLUMNS : CSV_COLUMNS;
  return [columns.map((c) => c[0]).join(','), ...rows.map((r) => columns.map(([, f]) => csvCell(f(r))).join(','))].join('\n') + '\n';
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return '';
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const pct = (v: number | null) => (v === null ? '' : `${(v * 100).toFixed(2)}%`);

/** Columns of the human-readable table (Markdown and the HTML report). */
export const TABLE_COLUMNS: [string, (r: SummaryRow) => string][] = [
  ['id', (r) => r.id],
  ['model', (r) => r.model],
  ['seed', (r) => (r.seed === null ? '' : String(r.seed))],
  ['optimizer', (r) => r.optimizer],
  ['constraint', (r) => r.constraint + (r.constraint === 'validation' && r.maxAccDrop !== null ? ` (${r.maxAccDrop})` : '')],
  ['compression', (r) => (r.compression === null ? '' : `${r.compression.toFixed(2)}x`)],
  ['test accuracy', (r) => pct(r.testAccuracy)],
  ['test error', (r) => pct(r.testError)],
  ['wall time', (r) => formatDuration(r.wallTimeMs)],
  ['backend', (r) => r.backend],
  ['status', (r) => r.status + (r.error ? `: ${r.error}` : '')],
];

/** 1234567 → 1.23M: MAC counts in the table. */
function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** Columns of the human-readable table of a compress sweep. */
export const COMPRESS_TABLE_COLUMNS: [string, (r: SummaryRow) => string][] = [
  ['id', (r) => r.id],
  ['model', (r) => r.model],
  ['mode', (r) => r.mode ?? ''],
  ['method', (r) => r.method ?? ''],
  ['seed', (r) => (r.seed === null ? '' : String(r.seed))],
  ['compression', (r) => (r.compression === null ? '' : `${r.compression.toFixed(2)}x`)],
  ['non-zeros', (r) => (r.nonZero === null ? '' : String(r.nonZero))],
  ['MACs slimmed/dense', (r) => (r.macsSlimmed == null || r.macsDense == null ? '' : `${count(r.macsSlimmed)} / ${count(r.macsDense)} (${pct(r.macsSlimmed / r.macsDense)})`)],
  ['test accuracy', (r) => pct(r.testAccuracy)],
  ['baseline test', (r) => pct(r.baselineTestAccuracy ?? null)],
  ['within drop', (r) => (r.withinDrop == null ? '' : r.withinDrop ? 'yes' : 'no')],
  ['wall time', (r) => formatDuration(r.wallTimeMs)],
  ['backend', (r) => r.backend],
  ['status', (r) => r.status + (r.error ? `: ${r.error}` : '')],
];

/** The table's columns for these rows, and which of them are right-aligned (numbers). */
export function tableColumns(rows: SummaryRow[]): { columns: [string, (r: SummaryRow) => string][]; numeric: Set<string> } {
  return isCompressTable(rows)
    ? { columns: COMPRESS_TABLE_COLUMNS, numeric: new Set(['compression', 'non-zeros', 'MACs slimmed/dense', 'test accuracy', 'baseline test', 'wall time']) }
    : { columns: TABLE_COLUMNS, numeric: new Set(['compression', 'test accuracy', 'test error', 'wall time']) };
}

export function summaryMarkdown(rows: SummaryRow[], opts: { name?: string } = {}): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const { columns, numeric } = tableColumns(rows);
  const head = columns.map((c) => c[0]);
  const lines = [
    ...(opts.name ? [`## Sweep ${opts.name}`, ''] : []),
    `| ${head.join(' | ')} |`,
    `|${head.map((h) => (numeric.has(h) ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${columns.map(([, f]) => esc(f(r))).join(' | ')} |`),
  ];
  const done = rows.filter((r) => r.status === 'finished').length;
  lines.push('', `${done}/${rows.length} runs finished.`);
  return lines.join('\n') + '\n';
}
