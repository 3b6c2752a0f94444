/**
 * How `prunus compress` and `prunus resume` of a compress run talk to a terminal: stage lines and the OLMP stage's
 * progress on stderr, the report on stdout (one JSON object with --json, otherwise a few lines a person reads).
 */
import type { CompressReport } from './finish.js';
import type { SessionHooks } from './run.js';
import { pipelineProgress } from '../pipeline/cli-output.js';
import { onStopSignals } from '../signals.js';

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

function kib(n: number): string {
  return n < 10_000 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;
}

export function formatCompressReport(r: CompressReport): string {
  const budget = [
    r.budgets.flopsBudget !== null ? `FLOPs budget ${r.budgets.flopsBudget} (${r.macs.withinBudget ? 'met' : 'NOT met'})` : null,
    r.budgets.targetCompression !== null ? `target ${r.budgets.targetCompression}x (${r.reachedTarget ? 'reached' : 'not reached'})` : null,
    `max accuracy drop ${r.budgets.maxAccDrop} (${r.accuracy.withinDrop ? 'met' : 'NOT met'})`,
  ].filter(Boolean);
  const lines = [
    `${r.model} (${r.dataset}) ${r.mode} ${r.mode === 'olmp' ? '' : r.method + ' '}seed ${r.seed}, backend ${String(r.backend.name)}: ${r.compression.toFixed(1)}x (${r.nonZero} / ${r.params} non-zero)`,
    `MACs: dense ${r.macs.dense} → slimmed ${r.macs.slimmed} (${pct(r.macs.slimmed / r.macs.dense)}), sparse kernels execute ${r.macs.sparse} (${pct(r.macs.sparse / r.macs.dense)})`,
    `accuracy (test): baseline ${pct(r.accuracy.baseline.test)}, after the channel stage ${pct(r.accuracy.start.test)}, final ${pct(r.accuracy.final.test)}; validation final ${pct(r.accuracy.final.validation)} (baseline ${pct(r.accuracy.baseline.validation)})`,
    `budgets: ${budget.join(', ')}`,
    ...r.groups.map((g) => `  ${g.name.padEnd(8)} keeps ${String(g.kept).padStart(4)} / ${g.channels} channels`),
    ...r.layers.map((l) => `  ${l.name.padEnd(8)} ${String(l.nonZero).padStart(7)} / ${String(l.params).padEnd(7)} ${pct(l.density)}`),
    `exported: tfjs ${kib(r.exported.tfjs.bytes)} (gzip ${kib(r.exported.tfjs.gzipBytes)}), sparse ${kib(r.exported.sparse.bytes)} (gzip ${kib(r.exported.sparse.gzipBytes)}); dense float32 ${kib(r.exported.denseFloat32Bytes)}`,
    `inference: ${r.inference.tfjsImagesPerSec.toFixed(0)} images/s (exported tfjs model), ${r.inference.sparseImagesPerSec.toFixed(0)} images/s (prunus sparse evaluator)`,
    `wall time ${(r.wallTimeMs / 1000).toFixed(1)} s (${Object.entries(r.phasesMs).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')})`,
    `run directory: ${r.runDir} (model/, export/tfjs, export/sparse, report.json)`,
  ];
  return lines.join('\n');
}

export function printCompressReport(r: CompressReport, json: boolean): void {
  process.stdout.write(json ? JSON.stringify(r) + '\n' : formatCompressReport(r) + '\n');
}

/**
 * Runs a compress session with progress and Ctrl-C / SIGTERM handling. In the OLMP stage the first signal makes it
 * checkpoint and stop (resumable); elsewhere nothing needs saving (each stage's output is written whole), so the
 * first signal exits at once.
 */
export async function runCompressSession(json: boolean, start: (session: Required<Pick<SessionHooks, 'hooks' | 'onStage'>> & SessionHooks) => Promise<CompressReport>): Promise<CompressReport> {
  const progress = pipelineProgress(json);
  let inOlmp = false;
  const stop = onStopSignals((s) => {
    if (!inOlmp) process.exit(s === 'SIGTERM' ? 143 : 130);
  });
  try {
    return await start({
      ...(json ? {} : { log: (line: string) => process.stderr.write(line + '\n') }),
      hooks: { ...progress.hooks, stop: stop.signal },
      onStage: (name) => (inOlmp = name === 'olmp'),
    });
  } finally {
    stop.dispose();
    progress.stop();
  }
}
