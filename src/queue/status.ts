/**
 * Where the queued sweeps stand (`prunus sweep status --queue URL`), and bringing one home as a sweep folder
 * (`prunus sweep collect --queue URL --out DIR`): the same runs/<id>/, state/, summary.csv and summary.md as a local
 * sweep, so `prunus report DIR` works on it unchanged.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { writeFileAtomic, writeJsonAtomic } from '../../foundation/atomic.js';
import { UsageError } from '../../foundation/errors.js';
import { acquireLease } from '../../foundation/lease.js';
import { readJsonObject } from '../../foundation/json.js';
import { buildSummary, summaryCsv, summaryMarkdown } from '../sweep/summary.js';
import type { Attempt, RunState, SweepResult } from '../sweep/sweep.js';
import { openRedis, parseQueueUrl, probeRedis } from './connection.js';
import type { QueuedSweep } from './enqueue.js';
import { QUEUE_NAME } from './job.js';
import { writeFolder } from './run-files.js';
import { RunStore, runName, type AttemptRecord } from './store.js';
import type { JobResult } from './worker.js';

export interface QueueRunStatus {
  id: string;
  /** BullMQ's state (waiting, active, delayed, prioritized, completed, failed), or 'missing' when no job is queued. */
  state: string;
  progress: { phase: string; iteration: number; total: number; compression: number; worker: string } | null;
  /** Attempts that ran (stored attempt records). */
  attempts: number;
  compression: number | null;
  testError: number | null;
  error?: string;
}

export interface SweepStatus {
  name: string;
  runs: QueueRunStatus[];
  /** Runs per state. */
  counts: Record<string, number>;
}

interface Opened {
  store: RunStore;
  queue: Queue;
  display: string;
  close(): Promise<void>;
}

async function open(url: string): Promise<Opened> {
  const address = parseQueueUrl(url);
  await probeRedis(address);
  const connection = openRedis(address);
  const queue = new Queue(QUEUE_NAME, { connection });
  queue.on('error', () => undefined); // a failing command rejects its own promise, which is what we report
  return {
    store: new RunStore(connection),
    queue,
    display: address.display,
    close: async () => {
      await queue.close();
      connection.disconnect();
    },
  };
}

/** The sweep named, or the only one in the queue; a UsageError otherwise. */
async function pickSweep(store: RunStore, display: string, name?: string): Promise<QueuedSweep> {
  if (name !== undefined) {
    const s = await store.loadSweep<QueuedSweep>(name);
    if (!s) throw new UsageError(`no sweep '${name}' in the queue at ${display}`);
    return s;
  }
  const names = await store.sweepNames();
  if (names.length === 0) throw new UsageError(`no sweeps in the queue at ${display}`);
  if (names.length > 1) throw new UsageError(`the queue at ${display} holds several sweeps (${names.join(', ')}); pass --sweep NAME`);
  return (await store.loadSweep<QueuedSweep>(names[0]!))!;
}

async function runStatus(o: Opened, sweep: string, id: string): Promise<{ status: QueueRunStatus; job: Job | undefined; attempts: AttemptRecord[] }> {
  const job = await o.queue.getJob(runName(sweep, id));
  const attempts = await o.store.attempts(runName(sweep, id));
  const state = job ? await job.getState() : 'missing';
  const progress = job && typeof job.progress === 'object' && job.progress !== null && state === 'active' ? (job.progress as QueueRunStatus['progress']) : null;
  const rv = (job?.returnvalue ?? null) as JobResult | null;
  const status: QueueRunStatus = { id, state, progress, attempts: attempts.length, compression: rv?.compression ?? null, testError: rv?.testError ?? null };
  if (state === 'failed' && job?.failedReason) status.error = job.failedReason;
  return { status, job, attempts };
}

/** The state of each run of one sweep (or of every sweep in the queue). */
export async function sweepStatus(opts: { queue: string; sweep?: string }): Promise<{ queue: string; sweeps: SweepStatus[] }> {
  const o = await open(opts.queue);
  try {
    const names = opts.sweep !== undefined ? [(await pickSweep(o.store, o.display, opts.sweep)).name] : await o.store.sweepNames();
    const sweeps: SweepStatus[] = [];
    for (const name of names) {
      const record = (await o.store.loadSweep<QueuedSweep>(name))!;
      const runs: QueueRunStatus[] = [];
      for (const r of record.runs) runs.push((await runStatus(o, name, r.id)).status);
      const counts: Record<string, number> = {};
      for (const r of runs) counts[r.state] = (counts[r.state] ?? 0) + 1;
      sweeps.push({ name, runs, counts });
    }
    return { queue: o.display, sweeps };
  } finally {
    await o.close();
  }
}

/** A collected sweep: as a local sweep's result, without `interrupted` (collecting is never interrupted). */
export type CollectResult = Omit<SweepResult, 'interrupted'>;

/** An attempt record of the queue as a local sweep's state file records it. */
function toAttempt(a: AttemptRecord): Attempt & { worker: string; from?: string } {
  return {
    n: a.n,
    action: a.action,
    pid: -1,
    start: null,
    startedAt: a.startedAt,
    ...(a.endedAt ? { endedAt: a.endedAt } : {}),
    ...(a.result ? { result: a.result === 'lost' ? 'interrupted' : a.result } : {}),
    ...(a.error ? { error: a.error } : {}),
    worker: a.worker,
    ...(a.from ? { from: a.from } : {}),
  };
}

/** Writes the sweep folder of a queued sweep: finished runs' folders, each run's attempts and logs, the summary. */
export async function collectSweep(opts: { queue: string; out: string; sweep?: string }): Promise<CollectResult> {
  const o = await open(opts.queue);
  try {
    const record = await pickSweep(o.store, o.display, opts.sweep);
    const dir = resolve(opts.out);
    const sweepFile = join(dir, 'sweep.json');
    if (existsSync(sweepFile)) {
      const other = readJsonObject(sweepFile) as { name?: unknown };
      if (other.name !== record.name) throw new UsageError(`--out ${opts.out} holds the sweep '${String(other.name)}', not '${record.name}'; choose another folder`);
    }
    mkdirSync(dir, { recursive: true });
    const lock = acquireLease(dir, 'prunus sweep collect', join(dir, 'sweep.lock'));
    try {
      for (const sub of ['runs', 'state', 'logs']) mkdirSync(join(dir, sub), { recursive: true });
      for (const r of record.runs) {
        const { status, job, attempts } = await runStatus(o, record.name, r.id);
        const result = await o.store.getResult(runName(record.name, r.id));
        if (result) writeFolder(join(dir, r.dir), result);
        const st: RunState = { id: r.id, flags: r.flags, attempts: attempts.map(toAttempt) };
        // A job that failed before any attempt ran (its data did not validate) still says why.
        if (status.state === 'failed' && (st.attempts.length === 0 || st.attempts.at(-1)!.result !== 'failed')) {
          st.attempts.push({ n: st.attempts.length + 1, action: 'search', pid: -1, start: null, startedAt: new Date(job?.processedOn ?? Date.now()).toISOString(), result: 'failed', error: status.error ?? 'failed' });
        }
        writeJsonAtomic(join(dir, 'state', `${r.id}.json`), st);
        if (job) {
          const logs = await o.queue.getJobLogs(job.id!, 0, -1, true);
          writeFileAtomic(join(dir, 'logs', `${r.id}.log`), logs.logs.map((l) => l + '\n').join(''));
        }
      }
      writeJsonAtomic(sweepFile, { ...record, queue: o.display });
      const rows = buildSummary(dir, record.runs, (id) => {
        try {
          return readJsonObject(join(dir, 'state', `${id}.json`)) as unknown as RunState;
        } catch {
          return null;
        }
      });
      const files = { sweep: sweepFile, csv: join(dir, 'summary.csv'), markdown: join(dir, 'summary.md'), json: join(dir, 'summary.json') };
      writeFileAtomic(files.csv, summaryCsv(rows));
      writeFileAtomic(files.markdown, summaryMarkdown(rows, { name: record.name }));
      writeJsonAtomic(files.json, { name: record.name, dir, rows });
      const finished = rows.filter((r) => r.status === 'finished').length;
      const failed = rows.filter((r) => r.status === 'failed').length;
      return { name: record.name, dir, rows, finished, failed, pending: rows.length - finished - failed, files };
    } finally {
      lock.release();
    }
  } finally {
    await o.close();
  }
}
