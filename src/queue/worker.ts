/**
 * `prunus worker`: drains the queue on any machine. Each job is one run, executed in a child process of its own
 * (run-child.ts) while this process keeps BullMQ's job lock and the run's lease in Redis alive and copies every
 * checkpoint to Redis, so a worker that dies loses at most the work since the last checkpoint: BullMQ's stalled-job
 * check hands the job to another worker, which lays the stored state out and resumes.
 *
 * At-least-once delivery is made safe by the run's lease (store.ts): a worker takes a run only with its lease, every
 * write of the run's state and result checks the lease in the same atomic script, and a worker whose lease was taken
 * stops its run. A job whose run is leased elsewhere goes back to the delayed set and is looked at again later; a
 * job whose run already finished returns the stored result without running anything.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DelayedError, Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { BackendName } from '../../backends/backend.js';
import { compiledModulePath } from '../../evaluators/builders.js';
import { writeFile } from '../../foundation/atomic.js';
import { openRedis, parseQueueUrl, probeRedis } from './connection.js';
import { EXIT_OTHER_WORKER, QUEUE_NAME, jobArgv, validateJob, type ChildMessage, type JobData, type RunChildTask } from './job.js';
import { finishedFiles, stateFiles, writeFiles } from './run-files.js';
import { RunStore, runName, type AttemptRecord } from './store.js';

export interface WorkerOptions {
  /** redis://[user:pass@]host:port[/db] or rediss://... */
  queue: string;
  /** Runs at once on this worker (default 1). */
  concurrency?: number;
  /** Backend for runs whose sweep names none (default: each run's own, else auto). */
  backend?: BackendName;
  /** Work folder: runs in progress, their logs, the reference cache (default results/worker). */
  dir?: string;
  /** BullMQ's job lock, its stalled-job check interval and the run lease's lifetime, in ms (default 30 000). */
  lockMs?: number;
  /** Stop once the queue holds nothing waiting, delayed or active. */
  drain?: boolean;
  /** Cores to share between the runs (default os.availableParallelism()): each run's --workers is cores / concurrency. */
  cores?: number;
  /** Aborting stops the worker: running runs checkpoint and go back to the queue. */
  signal?: AbortSignal;
  onEvent?: (e: WorkerEvent) => void;
}

export type WorkerEvent =
  | { type: 'ready'; worker: string; queue: string; concurrency: number; workers: number; dir: string }
  | { type: 'start'; run: string; action: 'search' | 'resume'; attempt: number; from?: string }
  | { type: 'progress'; run: string; phase: string; iteration: number; total: number; compression: number }
  | { type: 'line'; run: string; line: string }
  | { type: 'finished'; run: string; wallMs: number; compression: number | null; testError: number | null }
  | { type: 'skipped'; run: string; reason: string }
  | { type: 'failed'; run: string; error: string; retried: boolean }
  | { type: 'returned'; run: string; reason: string }
  | { type: 'lost'; run: string; reason: string }
  | { type: 'redis'; state: 'lost' | 'back'; detail: string }
  | { type: 'warning'; line: string }
  | { type: 'stopping'; reason: string }
  | { type: 'stopped'; finished: number; failed: number; returned: number };

export interface WorkerSummary {
  worker: string;
  finished: number;
  failed: number;
  returned: number;
}

/** What a finished job returns (BullMQ keeps it as the job's result; the run's files are in the run store). */
export interface JobResult {
  sweep: string;
  runId: string;
  compression: number | null;
  testError: number | null;
  worker: string;
  /** When this worker's run process started and ended (ms since the epoch; null when nothing ran here). */
  childStartedAt: number | null;
  childEndedAt: number | null;
}

const DEFAULT_LOCK_MS = 30_000;
const CONNECTION_ERROR = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|Connection is closed|connect ETIMEDOUT/;
/** A stall is a worker that died or lost Redis for longer than the lock; it is not the run's fault. */
const MAX_STALLS = 10;
/** How long a child may take to checkpoint and exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 120_000;

function childScript(): string {
  return compiledModulePath(new URL('./run-child' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url).href);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lastLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0 && !l.startsWith('prunus: backend '))
      .at(-1) ?? ''
  ).replace(/^prunus: /, '');
}

/** Runs a worker until it is stopped (opts.signal) or, with opts.drain, until the queue is empty. */
export async function runWorker(opts: WorkerOptions): Promise<WorkerSummary> {
  const address = parseQueueUrl(opts.queue);
  await probeRedis(address);
  const emit = (e: WorkerEvent) => opts.onEvent?.(e);
  const concurrency = opts.concurrency ?? 1;
  const lockMs = opts.lockMs ?? DEFAULT_LOCK_MS;
  const cores = opts.cores ?? availableParallelism();
  const evalWorkers = Math.max(1, Math.floor(cores / concurrency));
  const dir = resolve(opts.dir ?? join(process.env.PRUNUS_RESULTS ?? 'results', 'worker'));
  const name = `${hostname()}/${process.pid}`;
  mkdirSync(dir, { recursive: true });

  const connection = openRedis(address, (state, detail) => emit({ type: 'redis', state, detail }));
  const store = new RunStore(connection);
  const children = new Set<ChildProcess>();
  let stopping = false;
  const counts = { finished: 0, failed: 0, returned: 0 };

  const processor = async (job: Job, token?: string): Promise<JobResult> => {
    let data: JobData;
    try {
      data = validateJob(job.id, job.data);
    } catch (e) {
      emit({ type: 'failed', run: String(job.id), error: (e as Error).message, retried: false });
      counts.failed++;
      throw new UnrecoverableError((e as Error).message);
    }
    const run = runName(data.sweep, data.runId);
    const log = (line: string) => job.log(`${new Date().toISOString()} ${name}: ${line}`).catch(() => undefined);
    let childStartedAt: number | null = null;
    let childEndedAt: number | null = null;
    const resultOf = (files: Map<string, Buffer> | null): JobResult => {
      let report: Record<string, unknown> = {};
      try {
        report = JSON.parse(files?.get('report.json')?.toString('utf8') ?? '{}') as Record<string, unknown>;
      } catch {
        // a result without a readable report: the numbers stay null
      }
      const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
      return { sweep: data.sweep, runId: data.runId, compression: num(report.compression), testError: num(report.testError), worker: name, childStartedAt, childEndedAt };
    };
    if (await store.finished(run)) {
      emit({ type: 'skipped', run, reason: 'finished earlier' });
      await log('the run finished earlier; its stored result is returned');
      return resultOf(await store.getResult(run));
    }
    const lease = await store.acquire(run, name, lockMs);
    if (!lease.ok) {
      // At-least-once delivery: the run is someone else's (a worker still alive after its job was taken for stalled).
      await log(`the run is held by ${lease.holder}; looked at again later`);
      emit({ type: 'returned', run, reason: `held by ${lease.holder}` });
      await job.moveToDelayed(Date.now() + Math.max(lease.ttlMs, 1000) + 250, token);
      throw new DelayedError();
    }
    const leaseToken = lease.token;
    let lost: string | null = null;
    let child: ChildProcess | null = null;
    const loseLease = (why: string) => {
      if (lost) return;
      lost = why;
      child?.kill('SIGKILL');
    };
    // A fenced write refused because the lease expired untaken (Redis was away) is tried once more after taking it back.
    const fenced = async (write: () => Promise<boolean>): Promise<boolean> => (await write()) || ((await store.renew(run, leaseToken, lockMs)) && (await write()));
    const renew = setInterval(() => {
      store.renew(run, leaseToken, lockMs).then(
        (ok) => (ok ? undefined : loseLease('its lease was taken by another worker')),
        () => undefined, // Redis unreachable: the lease's own lifetime decides
      );
    }, Math.max(200, Math.floor(lockMs / 3)));
    const local = join(dir, 'runs', data.sweep, data.runId);
    const logFile = join(dir, 'logs', data.sweep, `${data.runId}.log`);
    const t0 = Date.now();
    try {
      rmSync(local, { recursive: true, force: true });
      const state = await store.getState(run);
      let action: 'search' | 'resume' = 'search';
      let from: string | undefined;
      if (state.has('config.json')) {
        writeFiles(local, state);
        // The reference cache is this machine's: point the run at ours.
        const cfgPath = join(local, 'config.json');
        const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
        cfg.resultsRoot = dir;
        writeFile(cfgPath, JSON.stringify(cfg, null, 2) + '\n');
        action = 'resume';
        const ptr = state.get('checkpoint.json');
        from = ptr ? `checkpoints/${(JSON.parse(ptr.toString('utf8')) as { dir: string }).dir}` : undefined;
      }
      const earlier = await store.attempts(run);
      const open = earlier.at(-1);
      // An attempt that never ended: its worker died or was cut off (this lease could only be taken after its expired).
      if (open && !open.endedAt) await store.endAttempt(run, leaseToken, { ...open, endedAt: new Date(t0).toISOString(), result: 'lost', error: 'its worker stopped answering (killed, or cut off from Redis)' });
      const attempt: AttemptRecord = { n: earlier.length + 1, worker: name, action, ...(from ? { from } : {}), startedAt: new Date(t0).toISOString() };
      if (!(await fenced(() => store.addAttempt(run, leaseToken, attempt)))) throw new Error('lost the run lease before starting');
      emit({ type: 'start', run, action, attempt: attempt.n, ...(from ? { from } : {}) });
      await log(action === 'resume' ? `resuming from ${from} (attempt ${attempt.n})` : `starting (attempt ${attempt.n})`);

      const argv = jobArgv(data, evalWorkers);
      if (opts.backend && data.flags.backend === undefined) argv.push('--backend', opts.backend);
      const task: RunChildTask = { action, runDir: local, argv, resultsRoot: dir };
      mkdirSync(dirname(logFile), { recursive: true });
      appendFileSync(logFile, `--- attempt ${attempt.n}: ${action}${from ? ` from ${from}` : ''} on ${name} at ${attempt.startedAt} ---\n`);
      childStartedAt = Date.now();
      const c = fork(childScript(), [JSON.stringify(task)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env } });
      child = c;
      children.add(c);
      let stderr = '';
      c.stderr!.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-20_000);
        appendFileSync(logFile, d);
      });
      // Checkpoints are copied one after another; each copy replaces the stored state as a whole.
      let copying: Promise<void> = Promise.resolve();
      let copied: string | null = null;
      const copyState = () => {
        copying = copying.then(async () => {
          if (lost) return;
          const snap = stateFiles(local);
          if (!snap || snap.from === copied) return;
          if (await fenced(() => store.putState(run, leaseToken, snap.files))) copied = snap.from;
          else loseLease('its lease was taken by another worker');
        });
      };
      let lastProgress = 0;
      c.on('message', (m: ChildMessage) => {
        if (m.type === 'checkpoint') copyState();
        else if (m.type === 'progress') {
          emit({ type: 'progress', run, phase: m.phase, iteration: m.iteration, total: m.total, compression: m.compression });
          if (Date.now() - lastProgress >= 1000) {
            lastProgress = Date.now();
            job.updateProgress({ phase: m.phase, iteration: m.iteration, total: m.total, compression: m.compression, worker: name }).catch(() => undefined);
          }
        } else if (m.type === 'event') {
          emit({ type: 'line', run, line: m.line });
          void log(m.line);
        }
      });
      const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
        c.once('exit', (code, signal) => res({ code, signal }));
        c.once('error', () => res({ code: null, signal: null }));
      });
      childEndedAt = Date.now();
      children.delete(c);
      copyState(); // a checkpoint written just before the exit (a stop writes one) may not have been announced
      await copying;
      const end = async (result: AttemptRecord['result'], error?: string) => {
        await fenced(() => store.endAttempt(run, leaseToken, { ...attempt, endedAt: new Date().toISOString(), result, ...(error ? { error } : {}) })).catch(() => false);
      };

      if (lost) {
        emit({ type: 'lost', run, reason: lost });
        await log(`stopped: ${lost}`);
        throw new Error(`stopped: ${lost}`);
      }
      if (exit.code === 0 && existsSync(join(local, 'report.json'))) {
        const files = finishedFiles(local);
        if (!(await fenced(() => store.putResult(run, leaseToken, files)))) {
          emit({ type: 'lost', run, reason: 'its lease was taken by another worker' });
          throw new Error('finished, but its lease was taken by another worker before the result was stored');
        }
        await end('finished');
        const result = resultOf(files);
        counts.finished++;
        emit({ type: 'finished', run, wallMs: Date.now() - t0, compression: result.compression, testError: result.testError });
        await log(`finished in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        return result;
      }
      const why = lastLine(stderr) || (exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`);
      if (stopping && (exit.code === 143 || exit.code === 130 || exit.signal === 'SIGTERM' || exit.signal === 'SIGKILL')) {
        await end('interrupted', 'the worker stopped');
        counts.returned++;
        emit({ type: 'returned', run, reason: `worker stopping; checkpointed at ${copied ?? 'nothing yet'}` });
        await log(`worker stopping: back to the queue (state at ${copied ?? 'the start'})`);
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (exit.code === EXIT_OTHER_WORKER) {
        await end('interrupted', why);
        emit({ type: 'returned', run, reason: why });
        await log(`${why}: left for another worker`);
        await job.moveToDelayed(Date.now() + 5000, token);
        throw new DelayedError();
      }
      await end('failed', why);
      const retried = exit.code !== 2 && job.attemptsMade + 1 < (job.opts.attempts ?? 1);
      counts.failed++;
      emit({ type: 'failed', run, error: why, retried });
      await log(`failed: ${why}`);
      if (exit.code === 2) throw new UnrecoverableError(why);
      throw new Error(why);
    } finally {
      clearInterval(renew);
      if (child) children.delete(child);
      await store.release(run, leaseToken).catch(() => undefined);
      rmSync(local, { recursive: true, force: true });
    }
  };

  const worker = new Worker(QUEUE_NAME, processor, {
    connection,
    concurrency,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: MAX_STALLS,
    autorun: false,
  });
  // Connection errors are said once by the connection ('lost Redis ...'); the rest once per distinct message.
  let warned = '';
  const warn = (e: Error) => {
    const line = e.message.split('\n')[0]!;
    if (CONNECTION_ERROR.test(line) || line === warned) return;
    warned = line;
    emit({ type: 'warning', line });
  };
  worker.on('error', warn);
  const queue = new Queue(QUEUE_NAME, { connection });
  queue.on('error', warn);

  let resolveStop!: (reason: string) => void;
  const stopRequested = new Promise<string>((r) => (resolveStop = r));
  const onAbort = () => resolveStop(String(opts.signal?.reason ?? 'stop requested'));
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort);

  emit({ type: 'ready', worker: name, queue: address.display, concurrency, workers: evalWorkers, dir });
  const running = worker.run();
  let drainLoop: Promise<void> = Promise.resolve();
  if (opts.drain) {
    drainLoop = (async () => {
      // Empty twice in a row, a quarter of a second apart: a job between two states is not missed.
      let emptyBefore = false;
      while (!stopping) {
        await sleep(250);
        const c = await queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
        const empty = Object.values(c).every((n) => n === 0) && children.size === 0;
        if (empty && emptyBefore) {
          resolveStop('the queue is empty');
          return;
        }
        emptyBefore = empty;
      }
    })();
  }
  const reason = await stopRequested;
  stopping = true;
  emit({ type: 'stopping', reason });
  for (const c of children) c.kill('SIGTERM');
  const killer = setTimeout(() => {
    for (const c of children) c.kill('SIGKILL');
  }, STOP_GRACE_MS);
  try {
    await worker.close();
    await running;
    await drainLoop;
  } finally {
    clearTimeout(killer);
    opts.signal?.removeEventListener('abort', onAbort);
    await queue.close();
    connection.disconnect();
  }
  emit({ type: 'stopped', ...counts });
  return { worker: name, ...counts };
}
