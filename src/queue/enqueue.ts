/**
 * `prunus sweep FILE --queue URL`: validates the sweep exactly as a local sweep, records it in Redis and adds one
 * BullMQ job per run, with the job id `<sweep>/<run id>`. Adding is idempotent (BullMQ keeps one job per id), so a
 * sweep enqueued twice adds nothing and a finished run is never run again; runs that failed every attempt are tried
 * again, as a local sweep does on its next start.
 */
import { Queue } from 'bullmq';
import { UsageError } from '../../foundation/errors.js';
import { loadSweep } from '../sweep/sweep.js';
import { flagsToArgv, type Flags, type SweepSpec } from '../sweep/spec.js';
import { openRedis, parseQueueUrl, probeRedis } from './connection.js';
import { QUEUE_NAME, type JobData } from './job.js';
import { RunStore, runName } from './store.js';

export interface EnqueueOptions {
  /** redis://[user:pass@]host:port[/db] or rediss://... */
  queue: string;
  /** --backend for every run (overrides base.backend). */
  backend?: string;
  /** Attempts per run before it ends failed (default 3). */
  attempts?: number;
  /** First retry delay in ms, doubled at each retry (default 30 000). */
  retryDelayMs?: number;
}

/** The sweep as recorded in Redis: what `collect` writes as sweep.json (with parallel/workers/cores of a local sweep). */
export interface QueuedSweep {
  prunusSweep: 1;
  name: string;
  command: string;
  source: string | null;
  spec: SweepSpec;
  runs: { id: string; flags: Flags; origin: string; dir: string; argv: string[] }[];
}

export interface EnqueueResult {
  name: string;
  queue: string;
  total: number;
  /** Run ids added now. */
  added: string[];
  /** Run ids already in the queue, with their state (waiting, active, delayed, completed, ...). */
  present: { id: string; state: string }[];
  /** Failed runs put back to wait. */
  retried: string[];
}

const canonical = (f: Flags) => JSON.stringify(Object.keys(f).sort().map((k) => [k, f[k]]));

export async function enqueueSweep(input: string | SweepSpec, opts: EnqueueOptions): Promise<EnqueueResult> {
  const loaded = await loadSweep(input, opts.backend !== undefined ? { backend: opts.backend } : {});
  if (loaded.command !== 'search') throw new UsageError(`${loaded.label}: only 'search' sweeps can be queued`);
  const address = parseQueueUrl(opts.queue);
  await probeRedis(address);
  const connection = openRedis(address);
  const queue = new Queue(QUEUE_NAME, { connection });
  queue.on('error', () => undefined); // a failing command rejects its own promise, which is what we report
  try {
    const store = new RunStore(connection);
    const name = loaded.spec.name;
    const runs = loaded.runs.map((r) => ({
      id: r.id,
      flags: r.flags,
      origin: r.origin,
      dir: `runs/${r.id}`,
      argv: [loaded.command, ...flagsToArgv(r.flags), '--out', `runs/${r.id}`, '--json'],
    }));
    // A run id already queued with other flags would mix two experiments under one name, as a local sweep refuses.
    const before = await store.loadSweep<QueuedSweep>(name);
    const kept = before ? before.runs.filter((r) => !runs.some((n) => n.id === r.id)) : [];
    for (const r of runs) {
      const old = before?.runs.find((o) => o.id === r.id);
      if (old && canonical(old.flags) !== canonical(r.flags)) {
        throw new UsageError(`${loaded.label}: run '${r.id}' is already queued in sweep '${name}' with other flags (${JSON.stringify(old.flags)}); give the sweep another name`);
      }
    }
    const record: QueuedSweep = { prunusSweep: 1, name, command: loaded.command, source: loaded.source, spec: loaded.spec, runs: [...runs, ...kept] };
    await store.saveSweep(name, record);
    const result: EnqueueResult = { name, queue: address.display, total: runs.length, added: [], present: [], retried: [] };
    for (const r of runs) {
      const jobId = runName(name, r.id);
      const existing = await queue.getJob(jobId);
      if (existing) {
        const state = await existing.getState();
        if (state === 'failed') {
          await existing.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
          result.retried.push(r.id);
        } else {
          result.present.push({ id: r.id, state });
        }
        continue;
      }
      const data: JobData = { sweep: name, runId: r.id, command: 'search', flags: r.flags };
      await queue.add(name, data, {
        jobId,
        attempts: opts.attempts ?? 3,
        backoff: { type: 'exponential', delay: opts.retryDelayMs ?? 30_000 },
        removeOnComplete: false,
        removeOnFail: false,
      });
      result.added.push(r.id);
    }
    return result;
  } finally {
    await queue.close();
    connection.disconnect();
  }
}
