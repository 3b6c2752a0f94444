/** How the pipeline commands talk to a terminal: progress on stderr (src/progress.ts), the final report on stdout. */
import type { OlmpReport, PipelineHooks } from './olmp.js';
import { createProgress, type Progress, type ProgressOptions } from '../progress.js';
import { onStopSignals } from '../signals.js';

/**
 * Progress of a search/resume/reproduce run: a live bar on a terminal, otherwise a plain line at most every 10 s and
 * at each phase change; each search and phase change is a line of its own.
 */
export function pipelineProgress(json: boolean, opts: Pick<ProgressOptions, 'stream' | 'intervalMs'> = {}): { hooks: PipelineHooks; stop(): void } {
  let bar: Progress | null = null;
  let total = -1;
  const display = (t: number): Progress => {
    if (!bar) bar = createProgress({ ...opts, total: t, label: 'prunus', json });
    if (t !== total) bar.setTotal(t);
    total = t;
    return bar;
  };
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const hooks: PipelineHooks = {
    // Notices go to stderr as they are, with --json too: they say what was survived.
    onNotice: (line) => (opts.stream ?? process.stderr).write(`prunus: ${line}\n`),
    onProgress: (p) => {
      display(p.total).update(p.iteration, { phase: p.phase, compression: p.compression, 'val acc': Number.isFinite(p.accuracy) ? p.accuracy : undefined });
    },
    onEvent: (e) => {
      if (e.type === 'search') {
        display(Math.max(total, 0)).log(
          `search at t=${e.iteration} over ${e.layers.join(',')}: ${e.compression.toFixed(1)}x, accuracy ${pct(e.accuracy)} (floor ${pct(e.accuracyFloor)}), ${e.evaluations} evaluations in ${(e.elapsedMs / 1000).toFixed(1)} s`,
        );
      } else if (e.type === 'phase') {
        display(Math.max(total, 0)).log(`phase ${e.phase} at t=${e.iteration}${e.reason ? ` (${e.reason})` : ''}`);
      }
    },
  };
  return { hooks, stop: () => (bar as Progress | null)?.stop() };
}

/**
 * Runs a pipeline command with its progress display and Ctrl-C / SIGTERM handling: the first signal makes the run
 * checkpoint at the next iteration and stop (a StoppedError), a second exits at once.
 */
export async function runWithProgress(json: boolean, start: (hooks: PipelineHooks) => Promise<OlmpReport>): Promise<OlmpReport> {
  const progress = pipelineProgress(json);
  const stop = onStopSignals();
  try {
    return await start({ ...progress.hooks, stop: stop.signal });
  } finally {
    stop.dispose();
    progress.stop();
  }
}

export function printReport(r: OlmpReport, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const lines = [
    `${r.model} seed ${r.seed} on ${String((r.backend as { name: string }).name)}: ${r.compression.toFixed(2)}x (${r.nonZero}/${r.params} non-zero), test error ${(r.testError * 100).toFixed(2)}%, validation accuracy ${(r.validationAccuracy * 100).toFixed(2)}%`,
    `optimizer ${r.optimizer}, constraint ${r.constraint}, ${r.searches} searches, ${r.evaluations} evaluations, ${(r.wallTimeMs / 1000).toFixed(1)} s, stopped by ${r.stoppedBy}`,
    ...r.layers.map((l) => `  ${l.name.padEnd(6)} ${String(l.nonZero).padStart(7)} / ${String(l.params).padEnd(7)} ${(l.density * 100).toFixed(2)}%`),
    `reference: validation ${(r.reference.validationAccuracy * 100).toFixed(2)}%, test ${(r.reference.testAccuracy * 100).toFixed(2)}%`,
    `run directory: ${r.runDir}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
