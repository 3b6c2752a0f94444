/**
 * `prunus channels --compare`: every method × FLOPs budget (MAC reduction 50 % and 75 %) on both models, one full
 * channel-pruning run each (same seed, same budgets), tabulated as Markdown, CSV and JSON in the comparison folder.
 */
import { join, resolve } from 'node:path';
import type { BackendName } from '../../backends/backend.js';
import { writeFileAtomic, writeJsonAtomic } from '../../foundation/atomic.js';
import { METHOD_NAMES, type ChannelsConfig, type MethodName, type Objective } from './config.js';
import { pruneChannels } from './run.js';
import { CHANNEL_COMPARE_MODELS } from '../../models/zoo-cnn.js';

export const COMPARE_BUDGETS = [0.5, 0.25];

export interface CompareRow {
  model: string;
  dataset: string;
  method: MethodName;
  flopsBudget: number;
  macReduction: number;
  macs: { before: number; after: number };
  params: { before: number; after: number };
  accuracy: { baseline: number; pruned: number; afterPruningPhase: number; finetuned: number };
  searchFeasible: boolean;
  finetuneSteps: number;
  wallTimeMs: number;
  runDir: string;
}

export interface ComparisonResult {
  quick: boolean;
  seed: number;
  backend: Record<string, unknown>;
  maxAccDrop: number;
  rows: CompareRow[];
  runDir: string;
  files: { markdown: string; csv: string; json: string };
  wallTimeMs: number;
}

export interface CompareOptions {
  quick: boolean;
  backend?: BackendName;
  seed?: number;
  maxAccDrop?: number;
  objective?: Objective;
  models?: string[];
  methods?: MethodName[];
  budgets?: number[];
  out?: string;
  resultsRoot?: string;
  overrides?: (model: string) => Partial<ChannelsConfig>;
  workers?: number;
  log?: (line: string) => void;
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

const pct = (x: number) => (x * 100).toFixed(2);

export function comparisonMarkdown(r: Pick<ComparisonResult, 'rows' | 'quick' | 'seed' | 'backend' | 'maxAccDrop'>): string {
  const head = [
    `Channel pruning comparison (${r.quick ? 'quick preset' : 'full preset'}, seed ${r.seed}, backend ${String(r.backend.name)}, max validation-accuracy drop before finetuning ${r.maxAccDrop})`,
    '',
    '| model | method | MAC budget | MAC reduction | baseline acc % | pruned acc % (no finetune) | finetuned acc % | params after / before | wall s |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const rows = r.rows.map(
    (x) =>
      `| ${x.model} | ${x.method} | ${x.flopsBudget} | ${pct(x.macReduction)}% | ${pct(x.accuracy.baseline)} | ${pct(x.accuracy.pruned)}${x.searchFeasible ? '' : '*'} | ${pct(x.accuracy.finetuned)} | ${x.params.after} / ${x.params.before} | ${(x.wallTimeMs / 1000).toFixed(1)} |`,
  );
  const note = r.rows.some((x) => !x.searchFeasible) ? ['', '\\* the search found no configuration within the accuracy-drop constraint; the least-violating one within the FLOPs budget was used.'] : [];
  return [...head, ...rows, ...note].join('\n');
}

export function comparisonCsv(rows: CompareRow[]): string {
  const header = 'model,dataset,method,flops_budget,mac_reduction,macs_before,macs_after,params_before,params_after,acc_baseline,acc_pruned,acc_after_pruning_phase,acc_finetuned,search_feasible,finetune_steps,wall_s,run_dir';
  const lines = rows.map((x) =>
    [
      x.model,
      x.dataset,
      x.method,
      x.flopsBudget,
      x.macReduction.toFixed(6),
      x.macs.before,
      x.macs.after,
      x.params.before,
      x.params.after,
      x.accuracy.baseline.toFixed(6),
      x.accuracy.pruned.toFixed(6),
      x.accuracy.afterPruningPhase.toFixed(6),
      x.accuracy.finetuned.toFixed(6),
      x.searchFeasible,
      x.finetuneSteps,
      (x.wallTimeMs / 1000).toFixed(2),
      JSON.stringify(x.runDir),
    ].join(','),
  );
  return [header, ...lines].join('\n') + '\n';
}

export function formatComparison(r: ComparisonResult): string {
  return `${comparisonMarkdown(r)}\n\nfiles: ${r.files.markdown}, ${r.files.csv}, ${r.files.json}`;
}

/** Runs the comparison; each run lands in <dir>/runs/<model>-<method>-b<budget>, the tables in <dir>. */
export async function runComparison(opts: CompareOptions): Promise<ComparisonResult> {
  const t0 = Date.now();
  const seed = opts.seed ?? 1;
  const resultsRoot = resolve(opts.resultsRoot ?? process.env.PRUNUS_RESULTS ?? 'results');
  const dir = resolve(opts.out ?? join(resultsRoot, `channels-compare-${opts.quick ? 'quick' : 'full'}-s${seed}-${stamp()}`));
  const models = opts.models ?? CHANNEL_COMPARE_MODELS;
  const methods = opts.methods ?? [...METHOD_NAMES];
  const budgets = opts.budgets ?? COMPARE_BUDGETS;
  const rows: CompareRow[] = [];
  let backend: Record<string, unknown> = {};
  let maxAccDrop = opts.maxAccDrop ?? NaN;
  for (const model of models) {
    for (const method of methods) {
      for (const b of budgets) {
        opts.log?.(`== ${model} ${method} flops budget ${b}`);
        const r = await pruneChannels({
          model,
          method,
          quick: opts.quick,
          flopsBudget: b,
          maxAccDrop: opts.maxAccDrop,
          objective: opts.objective,
          seed,
          backend: opts.backend,
          workers: opts.workers,
          overrides: opts.overrides?.(model),
          out: join(dir, 'runs', `${model}-${method}-b${b}`),
          resultsRoot,
          log: opts.log,
        });
        backend = r.backend;
        maxAccDrop = r.maxAccDrop;
        rows.push({
          model,
          dataset: r.dataset,
          method,
          flopsBudget: b,
          macReduction: r.macs.reduction,
          macs: { before: r.macs.before, after: r.macs.after },
          params: { before: r.params.before, after: r.params.after },
          accuracy: { baseline: r.accuracy.baseline, pruned: r.accuracy.pruned, afterPruningPhase: r.accuracy.afterPruningPhase, finetuned: r.accuracy.finetuned },
          searchFeasible: r.search.feasible,
          finetuneSteps: r.budgets.finetuneSteps,
          wallTimeMs: r.wallTimeMs,
          runDir: r.runDir,
        });
      }
    }
  }
  const files = { markdown: join(dir, 'table.md'), csv: join(dir, 'table.csv'), json: join(dir, 'table.json') };
  const result: ComparisonResult = { quick: opts.quick, seed, backend, maxAccDrop, rows, runDir: dir, files, wallTimeMs: Date.now() - t0 };
  writeFileAtomic(files.markdown, comparisonMarkdown(result) + '\n');
  writeFileAtomic(files.csv, comparisonCsv(rows));
  writeJsonAtomic(files.json, result);
  return result;
}
