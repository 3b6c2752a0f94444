/**
 * `prunus compress --compare`: at one accuracy budget, on LeNet-5 (MNIST) and the residual CNN (Fashion-MNIST),
 * (a) joint search, (b) channels then OLMP (chained), (c) OLMP alone, (d) channels alone, with DI, DCP and GFBS
 * wherever channels are involved, for each seed. One run folder per cell under <dir>/runs/ (a finished one is read
 * back, an interrupted one resumed, so a killed comparison continues where it stopped); the table as Markdown, CSV
 * and JSON in <dir>.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BackendName } from '../../backends/backend.js';
import { writeFileAtomic, writeJsonAtomic } from '../../foundation/atomic.js';
import { readJsonObject } from '../../foundation/json.js';
import type { MethodName } from '../channels/config.js';
import { COMPRESS_MODES, type CompressConfig, type CompressMode } from './config.js';
import type { CompressReport } from './finish.js';
import { compress, resumeCompress } from './run.js';
import { utcStamp } from '../run-dir.js';

export const COMPARE_MODELS = ['lenet-5', 'resnet-bn'];
export const COMPARE_METHODS: MethodName[] = ['di', 'dcp', 'gfbs'];

export interface CompressCompareRow {
  model: string;
  mode: CompressMode;
  method: string;
  seed: number;
  compression: number;
  nonZero: number;
  macs: { dense: number; slimmed: number; sparse: number };
  accuracy: { baselineTest: number; finalTest: number; finalValidation: number; withinDrop: boolean };
  exportedBytes: { tfjs: number; sparse: number; sparseGzip: number };
  imagesPerSec: { tfjs: number; sparse: number };
  wallTimeMs: number;
  runDir: string;
}

export interface CompressComparison {
  quick: boolean;
  seeds: number[];
  maxAccDrop: number;
  flopsBudget: number | null;
  backend: Record<string, unknown>;
  rows: CompressCompareRow[];
  runDir: string;
  files: { markdown: string; csv: string; json: string };
  wallTimeMs: number;
}

export interface CompressCompareOptions {
  quick: boolean;
  backend?: BackendName;
  seeds?: number[];
  maxAccDrop?: number;
  flopsBudget?: number;
  models?: string[];
  methods?: MethodName[];
  modes?: CompressMode[];
  workers?: number;
  out?: string;
  resultsRoot?: string;
  overrides?: Partial<CompressConfig>;
  log?: (line: string) => void;
}

function rowOf(r: CompressReport): CompressCompareRow {
  return {
    model: r.model,
    mode: r.mode,
    method: r.mode === 'olmp' ? '-' : r.method,
    seed: r.seed,
    compression: r.compression,
    nonZero: r.nonZero,
    macs: { dense: r.macs.dense, slimmed: r.macs.slimmed, sparse: r.macs.sparse },
    accuracy: { baselineTest: r.accuracy.baseline.test, finalTest: r.accuracy.final.test, finalValidation: r.accuracy.final.validation, withinDrop: r.accuracy.withinDrop },
    exportedBytes: { tfjs: r.exported.tfjs.bytes, sparse: r.exported.sparse.bytes, sparseGzip: r.exported.sparse.gzipBytes },
    imagesPerSec: { tfjs: r.inference.tfjsImagesPerSec, sparse: r.inference.sparseImagesPerSec },
    wallTimeMs: r.wallTimeMs,
    runDir: r.runDir,
  };
}

const pct = (x: number) => (x * 100).toFixed(2);
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** The table: one line per model × mode × method, means over the seeds (each seed's figures in the CSV). */
export function compressComparisonMarkdown(r: Pick<CompressComparison, 'rows' | 'quick' | 'seeds' | 'backend' | 'maxAccDrop' | 'flopsBudget'>): string {
  const head = [
    `prunus compress --compare (${r.quick ? 'quick preset' : 'full preset'}, seeds ${r.seeds.join(', ')}${r.seeds.length > 1 ? ': means' : ''}, backend ${String(r.backend.name)}, max validation-accuracy drop ${r.maxAccDrop}${r.flopsBudget !== null ? `, FLOPs budget ${r.flopsBudget}` : ''})`,
    '',
    '| model | pipeline | method | compression | MACs after (dense, slimmed) | MACs executed sparse | test acc % (baseline) | exported sparse bytes (gzip) | tfjs images/s | sparse images/s | wall s |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const keys: string[] = [];
  const byKey = new Map<string, CompressCompareRow[]>();
  for (const x of r.rows) {
    const k = `${x.model}|${x.mode}|${x.method}`;
    if (!byKey.has(k)) {
      keys.push(k);
      byKey.set(k, []);
    }
    byKey.get(k)!.push(x);
  }
  const lines = keys.map((k) => {
    const xs = byKey.get(k)!;
    const x = xs[0]!;
    const m = (f: (y: CompressCompareRow) => number) => mean(xs.map(f));
    const miss = xs.filter((y) => !y.accuracy.withinDrop).length;
    return `| ${x.model} | ${x.mode} | ${x.method} | ${m((y) => y.compression).toFixed(1)}x | ${pct(m((y) => y.macs.slimmed / y.macs.dense))}% | ${pct(m((y) => y.macs.sparse / y.macs.dense))}% | ${pct(m((y) => y.accuracy.finalTest))}${miss ? '*'.repeat(1) : ''} (${pct(m((y) => y.accuracy.baselineTest))}) | ${m((y) => y.exportedBytes.sparse).toFixed(0)} (${m((y) => y.exportedBytes.sparseGzip).toFixed(0)}) | ${m((y) => y.imagesPerSec.tfjs).toFixed(0)} | ${m((y) => y.imagesPerSec.sparse).toFixed(0)} | ${(m((y) => y.wallTimeMs) / 1000).toFixed(0)} |`;
  });
  const note = r.rows.some((x) => !x.accuracy.withinDrop) ? ['', '\\* in at least one seed the final validation accuracy fell below baseline − max drop.'] : [];
  return [...head, ...lines, ...note].join('\n');
}

export function compressComparisonCsv(rows: CompressCompareRow[]): string {
  const header = 'model,mode,method,seed,compression,non_zero,macs_dense,macs_slimmed,macs_sparse,test_acc_baseline,test_acc_final,val_acc_final,within_drop,tfjs_bytes,sparse_bytes,sparse_gzip_bytes,tfjs_images_per_s,sparse_images_per_s,wall_s,run_dir';
  const lines = rows.map((x) =>
    [x.model, x.mode, x.method, x.seed, x.compression.toFixed(4), x.nonZero, x.macs.dense, x.macs.slimmed, x.macs.sparse, x.accuracy.baselineTest.toFixed(6), x.accuracy.finalTest.toFixed(6), x.accuracy.finalValidation.toFixed(6), x.accuracy.withinDrop, x.exportedBytes.tfjs, x.exportedBytes.sparse, x.exportedBytes.sparseGzip, x.imagesPerSec.tfjs.toFixed(1), x.imagesPerSec.sparse.toFixed(1), (x.wallTimeMs / 1000).toFixed(1), JSON.stringify(x.runDir)].join(','),
  );
  return [header, ...lines].join('\n') + '\n';
}

export function formatCompressComparison(r: CompressComparison): string {
  return `${compressComparisonMarkdown(r)}\n\nfiles: ${r.files.markdown}, ${r.files.csv}, ${r.files.json}`;
}

/** Runs (or continues) the comparison. */
export async function runCompressComparison(opts: CompressCompareOptions): Promise<CompressComparison> {
  const t0 = Date.now();
  const seeds = opts.seeds ?? [1];
  const resultsRoot = resolve(opts.resultsRoot ?? process.env.PRUNUS_RESULTS ?? 'results');
  const dir = resolve(opts.out ?? join(resultsRoot, `compress-compare-${opts.quick ? 'quick' : 'full'}-${utcStamp()}`));
  const models = opts.models ?? COMPARE_MODELS;
  const methods = opts.methods ?? COMPARE_METHODS;
  const modes = opts.modes ?? [...COMPRESS_MODES];
  const rows: CompressCompareRow[] = [];
  let backend: Record<string, unknown> = {};
  for (const model of models) {
    for (const seed of seeds) {
      for (const mode of modes) {
        for (const method of mode === 'olmp' ? [methods[0]!] : methods) {
          const runDir = join(dir, 'runs', `${model}-s${seed}-${mode}${mode === 'olmp' ? '' : `-${method}`}`);
          opts.log?.(`== ${model} seed ${seed}: ${mode}${mode === 'olmp' ? '' : ` ${method}`}`);
          let r: CompressReport;
          if (existsSync(join(runDir, 'report.json'))) r = readJsonObject(join(runDir, 'report.json')) as unknown as CompressReport;
          else if (existsSync(join(runDir, 'config.json'))) r = await resumeCompress(runDir, { log: opts.log });
          else {
            r = await compress({
              model,
              method,
              mode,
              quick: opts.quick,
              seed,
              maxAccDrop: opts.maxAccDrop,
              flopsBudget: opts.flopsBudget,
              workers: opts.workers,
              backend: opts.backend,
              overrides: opts.overrides,
              out: runDir,
              resultsRoot,
              log: opts.log,
            });
          }
          backend = r.backend;
          rows.push(rowOf(r));
        }
      }
    }
  }
  const files = { markdown: join(dir, 'table.md'), csv: join(dir, 'table.csv'), json: join(dir, 'table.json') };
  const first = rows[0];
  const result: CompressComparison = {
    quick: opts.quick,
    seeds,
    maxAccDrop: opts.maxAccDrop ?? (first ? (readJsonObject(join(first.runDir, 'report.json')) as unknown as CompressReport).budgets.maxAccDrop : 0.01),
    flopsBudget: opts.flopsBudget ?? null,
    backend,
    rows,
    runDir: dir,
    files,
    wallTimeMs: Date.now() - t0,
  };
  writeFileAtomic(files.markdown, compressComparisonMarkdown(result) + '\n');
  writeFileAtomic(files.csv, compressComparisonCsv(rows));
  writeJsonAtomic(files.json, result);
  return result;
}
