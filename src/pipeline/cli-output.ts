/** How the pipeline commands talk to a terminal: progress on stderr, the final report on stdout. */
import type { OlmpReport, PipelineHooks } from './olmp.js';

export function pipelineProgress(json: boolean): { hooks: PipelineHooks; stop(): void } {
  const tty = Boolean(process.stderr.isTTY) && !json;
  let last = 0;
  let lastLine = '';
  const write = (line: string, force = false) => {
    const now = Date.now();
    if (tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      lastLine = line;
    } else if (force || now - last > 5000) {
      process.stderr.write(line + '\n');
      last = now;
    }
  };
  const hooks: PipelineHooks = {
    onProgress: (p) => {
      const acc = Number.isFinite(p.accuracy) ? ` val acc ${(p.accuracy * 100).toFixed(2)}%` : '';
      write(`[${p.phase}] iteration ${p.iteration}/${p.total}  compression ${p.compression.toFixed(1)}x${acc}`);
    },
    onEvent: (e) => {
      if (e.type === 'search') {
        if (tty) process.stderr.write('\n');
        write(`search at t=${e.iteration} over ${e.layers.join(',')}: ${e.compression.toFixed(1)}x, accuracy ${(e.accuracy * 100).toFixed(2)}% (floor ${(e.accuracy * 100 >= 0 ? (e.accuracyFloor * 100).toFixed(2) : '?')}%), ${e.evaluations} evaluations in ${(e.elapsedMs / 1000).toFixed(1)} s`, true);
      } else if (e.type === 'phase') {
        if (tty) process.stderr.write('\n');
        write(`phase ${e.phase} at t=${e.iteration}${e.reason ? ` (${e.reason})` : ''}`, true);
      }
    },
  };
  return {
    hooks,
    stop: () => {
      if (tty && lastLine) process.stderr.write('\n');
    },
  };
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
