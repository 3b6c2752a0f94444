/** The sweep's summary table over all its runs, as rows, CSV and Markdown. */
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

/** One row from a run directory (report.json, else config.json, else the sweep's flags). */
export function summaryRow(sweepDir: string, run: { id: string; flags: Flags; dir: string }, state: StateLike | null): SummaryRow {
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
  return row;
}

export function buildSummary(sweepDir: string, runs: { id: string; flags: Flags; dir: string }[], stateOf: (id: string) => StateLike | null): SummaryRow[] {
  return runs.map((r) => summaryRow(sweepDir, r, existsSync(join(sweepDir, 'state', `${r.id}.json`)) ? stateOf(r.id) : null));
}

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

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function summaryCsv(rows: SummaryRow[]): string {
  return [CSV_COLUMNS.map((c) => c[0]).join(','), ...rows.map((r) => CSV_COLUMNS.map(([, f]) => csvCell(f(r))).join(','))].join('\n') + '\n';
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

export function summaryMarkdown(rows: SummaryRow[], opts: { name?: string } = {}): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const head = TABLE_COLUMNS.map((c) => c[0]);
  const lines = [
    ...(opts.name ? [`## Sweep ${opts.name}`, ''] : []),
    `| ${head.join(' | ')} |`,
    `|${head.map((h, i) => (i >= 5 && i <= 8 ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${TABLE_COLUMNS.map(([, f]) => esc(f(r))).join(' | ')} |`),
  ];
  const done = rows.filter((r) => r.status === 'finished').length;
  lines.push('', `${done}/${rows.length} runs finished.`);
  return lines.join('\n') + '\n';
}
