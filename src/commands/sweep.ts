import { parseFlags } from '../cli-args.js';
import { UsageError, parseNumber } from '../../foundation/errors.js';
import { createProgress } from '../progress.js';
import { sweep, type SweepEvent } from '../sweep/index.js';
import { onStopSignals } from '../signals.js';

export const summary = 'prunus sweep: run a grid of searches or compress runs as a resumable batch (kill it any time; run it again to carry on)';
export const usage = `usage: prunus sweep <sweep.json | sweep-dir> [--parallel N] [--out DIR] [--backend B] [--json]
       prunus sweep <sweep.json> --queue redis://[user:pass@]host:port[/db] [--backend B]
       prunus sweep status --queue URL [--sweep NAME] [--json]
       prunus sweep collect --queue URL --out DIR [--sweep NAME] [--json]

  sweep.json   { "name": "...", "out"?: "...", "parallel"?: N, "command"?: "search" | "compress",
                 "base": { flags of every run }, "grid"?: { "flag": [values], ... }, "runs"?: [ { flags }, ... ] }
               each run is 'prunus <command>' (search by default); flags are that command's, without dashes
               (search: model, seed, optimizer, max-acc-drop, quick, ...; compress: model, method, mode,
               flops-budget, objective, seed, quick, ...); the grid is their cartesian product, explicit runs are
               added to it. Queued sweeps (--queue) run search only.
  sweep-dir    a sweep folder (continues it as it was resolved)
  --parallel N runs at once (default: cores / workers per run; each run gets --workers cores/N unless base.workers)
  --out DIR    sweep folder (default: the file's "out", relative to the file, else results/sweeps/<name>)
  --backend B  backend of every run (default: base.backend, else auto)
  --json       print the summary as one JSON object on stdout (progress stays on stderr)
  --queue URL  add the runs to the queue on that Redis instead (one job per run, id <sweep>/<run id>; enqueuing
               again adds nothing new, failed runs are tried again); 'prunus worker --queue URL' drains it on
               any machine; 'status' shows each run, 'collect' writes the sweep folder as a local sweep would

Each run lives in <sweep>/runs/<id> (a prunus search or compress run directory). Finished runs are never run
again, interrupted ones are resumed. Summary: <sweep>/summary.csv and summary.md (compress sweeps: compression,
non-zeros, MACs slimmed/dense, final and baseline test accuracy, whether the accuracy drop was met, wall time).
Exit code 0 when every run finished, 1 when some failed, 130 when interrupted, 2 on a bad sweep file.`;

const FLAGS = {
  queue: { type: 'string' },
  parallel: { type: 'string' },
  out: { type: 'string' },
  backend: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'status') return (await import('./sweep-queue.js')).status(argv.slice(1));
  if (argv[0] === 'collect') return (await import('./sweep-queue.js')).collect(argv.slice(1));
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'sweep');
  if (positionals.length !== 1) throw new UsageError('sweep: give exactly one sweep file or sweep folder');
  const json = Boolean(v.json);
  if (v.queue !== undefined) {
    if (v.parallel !== undefined || v.out !== undefined) throw new UsageError('sweep: --parallel and --out are for local sweeps (with --queue, each worker decides how many runs it takes)');
    return (await import('./sweep-queue.js')).enqueue(positionals[0]!, v.queue, v.backend, json);
  }
  const parallel = v.parallel === undefined ? undefined : parseNumber('--parallel', v.parallel, { min: 1, max: 256, integer: true });
  const stop = onStopSignals((s) => progress?.log(`sweep: ${s}: stopping the running runs (they checkpoint and stay resumable)`));
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
      signal: stop.signal,
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
    if (result.interrupted) return stop.received() === 'SIGTERM' ? 143 : 130;
    return result.failed > 0 ? 1 : 0;
  } finally {
    progress?.stop();
    stop.dispose();
  }
}
