import { parseFlags } from '../cli-args.js';
import { UsageError, parseNumber } from '../../foundation/errors.js';
import { createProgress } from '../progress.js';
import { sweep, type SweepEvent } from '../sweep/index.js';

export const summary = 'prunus sweep: run a grid of searches as a resumable batch (kill it any time; run it again to carry on)';
export const usage = `usage: prunus sweep <sweep.json | sweep-dir> [--parallel N] [--out DIR] [--backend B] [--json]

  sweep.json   { "name": "...", "out"?: "...", "parallel"?: N,
                 "base": { flags of every run }, "grid"?: { "flag": [values], ... }, "runs"?: [ { flags }, ... ] }
               flags are the search command's, without dashes (model, seed, optimizer, max-acc-drop, quick, ...);
               the grid is their cartesian product, explicit runs are added to it.
  sweep-dir    a sweep folder (continues it as it was resolved)
  --parallel N runs at once (default: cores / workers per run; each run gets --workers cores/N unless base.workers)
  --out DIR    sweep folder (default: the file's "out", relative to the file, else results/sweeps/<name>)
  --backend B  backend of every run (default: base.backend, else auto)
  --json       print the summary as one JSON object on stdout (progress stays on stderr)

Each run lives in <sweep>/runs/<id> (a prunus search run directory). Finished runs are never run again,
interrupted ones are resumed. Summary: <sweep>/summary.csv and summary.md. Exit code 0 when every run finished,
1 when some failed, 130 when interrupted, 2 on a bad sweep file.`;

const FLAGS = {
  parallel: { type: 'string' },
  out: { type: 'string' },
  backend: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'sweep');
  if (positionals.length !== 1) throw new UsageError('sweep: give exactly one sweep file or sweep folder');
  const json = Boolean(v.json);
  const parallel = v.parallel === undefined ? undefined : parseNumber('--parallel', v.parallel, { min: 1, max: 256, integer: true });
  const abort = new AbortController();
  let signalled: NodeJS.Signals | null = null;
  const onSignal = (s: NodeJS.Signals) => {
    if (signalled) return;
    signalled = s;
    progress?.log(`sweep: ${s}: stopping the running runs (they stay resumable)`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let progress: ReturnType<typeof createProgress> | undefined;
  let done = 0;
  let failed = 0;
  const runningIds = new Set<string>();
  const fields = () => ({ running: runningIds.size, failed: failed || undefined });
  const onEvent = (e: SweepEvent) => {
    switch (e.type) {
      case 'start':
        done = e.finished;
        progress = createProgress({ total: e.total, label: `sweep ${e.name}`, json, intervalMs: 30_000 });
        progress.log(`sweep ${e.name}: ${e.total} runs in ${e.dir}, ${e.finished} already finished; ${e.parallel} at once, --workers ${e.workers} each`);
        progress.update(done, fields());
        break;
      case 'run-start':
        runningIds.add(e.id);
        progress?.log(`${e.action === 'resume' ? 'resuming' : 'starting'} ${e.id} (attempt ${e.attempt}, pid ${e.pid})`);
        progress?.update(done, fields());
        break;
      case 'run-wait':
        runningIds.add(e.id);
        progress?.log(`waiting for ${e.id}: still running from an earlier sweep (pid ${e.pid})`);
        break;
      case 'run-end':
        runningIds.delete(e.id);
        if (e.status === 'finished') done++;
        if (e.status === 'failed') failed++;
        progress?.log(`${e.status} ${e.id}${e.wallMs ? ` in ${(e.wallMs / 1000).toFixed(1)} s` : ''}${e.error ? `: ${e.error}` : ''}`);
        progress?.update(done, fields());
        break;
      default:
        break;
    }
  };
  try {
    const result = await sweep(positionals[0]!, {
      ...(v.out !== undefined ? { out: v.out } : {}),
      ...(parallel !== undefined ? { parallel } : {}),
      ...(v.backend !== undefined ? { backend: v.backend } : {}),
      signal: abort.signal,
      onEvent,
    });
    progress?.stop();
    if (json) {
      process.stdout.write(JSON.stringify({ name: result.name, dir: result.dir, finished: result.finished, failed: result.failed, pending: result.pending, interrupted: result.interrupted, files: result.files, runs: result.rows }) + '\n');
    } else {
      const { readFileSync } = await import('node:fs');
      process.stdout.write(readFileSync(result.files.markdown, 'utf8'));
      process.stdout.write(`\nsummary: ${result.files.csv}\n`);
    }
    if (result.interrupted) return signalled === 'SIGTERM' ? 143 : 130;
    return result.failed > 0 ? 1 : 0;
  } finally {
    progress?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
