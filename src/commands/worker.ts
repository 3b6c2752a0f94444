import { parseFlags } from '../cli-args.js';
import { UsageError, parseNumber } from '../../foundation/errors.js';
import { parseBackendName } from '../../backends/backend.js';
import { runWorker, type WorkerEvent } from '../queue/index.js';
import { onStopSignals } from '../signals.js';

export const summary = 'prunus worker: drain a queue of sweep runs (BullMQ on Redis) on this machine; a worker that dies loses nothing';
export const usage = `usage: prunus worker --queue redis://[user:pass@]host:port[/db] [options]

  --queue URL        the Redis that sweeps were queued on (prunus sweep FILE --queue URL); rediss:// for TLS
  --concurrency N    runs at once on this machine (default 1); each gets --workers cores/N evaluator threads
                     unless its sweep sets workers
  --backend B        backend for runs whose sweep names none (default auto); a run continues on the backend it
                     started on, so a run is left for another worker when this one resolves another
  --dir DIR          work folder: runs in progress, their logs, the reference cache (default results/worker)
  --lock-seconds S   the job lock, the stalled-job check and the run lease (default 30): a worker that died is
                     noticed after about 2 x S, and its runs continue elsewhere from their last checkpoint
  --drain            stop once the queue holds nothing waiting, delayed or active
  --json             one JSON line per event on stdout

Every checkpoint of a run is copied to Redis; when a worker dies (kill -9, power off) BullMQ hands its jobs to
another worker, which continues them from the last checkpoint. SIGINT/SIGTERM stop the worker cleanly: running
runs checkpoint and go back to the queue. A job holds data only (sweep, run id, flags), checked as a sweep file.`;

const FLAGS = {
  queue: { type: 'string' },
  concurrency: { type: 'string' },
  backend: { type: 'string' },
  dir: { type: 'string' },
  'lock-seconds': { type: 'string' },
  drain: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function line(e: WorkerEvent): string | null {
  switch (e.type) {
    case 'ready':
      return `worker ${e.worker} on ${e.queue}: ${e.concurrency} run(s) at once, --workers ${e.workers} each, work folder ${e.dir}`;
    case 'start':
      return `${e.run}: ${e.action === 'resume' ? `resuming from ${e.from}` : 'starting'} (attempt ${e.attempt})`;
    case 'line':
      return `${e.run}: ${e.line}`;
    case 'finished':
      return `${e.run}: finished in ${(e.wallMs / 1000).toFixed(1)} s${e.compression !== null ? `, ${e.compression.toFixed(2)}x` : ''}${e.testError !== null ? `, test error ${(e.testError * 100).toFixed(2)}%` : ''}`;
    case 'skipped':
      return `${e.run}: ${e.reason}; its stored result is returned`;
    case 'failed':
      return `${e.run}: failed: ${e.error}${e.retried ? ' (will be tried again)' : ''}`;
    case 'returned':
      return `${e.run}: back to the queue: ${e.reason}`;
    case 'lost':
      return `${e.run}: stopped: ${e.reason}`;
    case 'redis':
      return e.state === 'lost' ? `lost Redis (${e.detail}); reconnecting, runs go on` : `Redis is back (${e.detail})`;
    case 'warning':
      return `warning: ${e.line}`;
    case 'stopping':
      return `stopping: ${e.reason}`;
    case 'stopped':
      return `stopped: ${e.finished} finished, ${e.failed} failed, ${e.returned} returned to the queue`;
    default:
      return null;
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'worker');
  if (positionals.length) throw new UsageError(`worker: unexpected argument '${positionals[0]}'`);
  if (typeof v.queue !== 'string') throw new UsageError('worker: --queue redis://host:port is required');
  const concurrency = v.concurrency === undefined ? 1 : parseNumber('--concurrency', v.concurrency, { min: 1, max: 256, integer: true });
  const lockSeconds = v['lock-seconds'] === undefined ? 30 : parseNumber('--lock-seconds', v['lock-seconds'], { min: 1, max: 3600 });
  const backend = v.backend === undefined ? undefined : parseBackendName(v.backend);
  const json = Boolean(v.json);
  const stop = onStopSignals();
  const onEvent = (e: WorkerEvent) => {
    if (json) {
      if (e.type !== 'progress') process.stdout.write(JSON.stringify(e) + '\n');
      return;
    }
    const l = line(e);
    if (l) process.stderr.write(`prunus: ${l}\n`);
  };
  try {
    await runWorker({
      queue: v.queue,
      concurrency,
      lockMs: Math.round(lockSeconds * 1000),
      ...(backend !== undefined ? { backend } : {}),
      ...(v.dir !== undefined ? { dir: v.dir } : {}),
      drain: Boolean(v.drain),
      signal: stop.signal,
      onEvent,
    });
  } finally {
    stop.dispose();
  }
  return 0;
}
