/**
 * Sweeps on BullMQ and Redis, against a real redis-server started here (test/redis-server.ts): three worker processes
 * drain six runs, each finished once; collect and report work on the result; a worker killed with SIGKILL in the
 * middle of a run has it continued elsewhere from its checkpoint, to the uninterrupted report and events; Redis
 * killed and restarted mid-sweep loses nothing and runs nothing twice; a worker stopped with SIGTERM hands its run
 * back; a run leased by a live worker is left alone; a run that fails every attempt ends failed after three; malformed
 * jobs, bad URLs, Redis down and a wrong password each give one line.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { freePort, startRedis, type RedisServer } from '../bench/lib/redis-server.js';
import { enqueueSweep, runWorker, sweepStatus, type WorkerEvent } from '../src/queue/index.js';
import { RunStore } from '../src/queue/store.js';
import { QUEUE_NAME } from '../src/queue/job.js';
import { loadModel } from '../models/io.js';
import { bin, lines, runCli, type CliResult } from './run-cli.js';


let work: string;
let redis: RedisServer;
const env = (): NodeJS.ProcessEnv => ({ ...process.env, PRUNUS_RESULTS: join(work, 'results') });

function prunus(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(args, { cwd: work, env: { ...env(), ...extraEnv } });
}


/** A `prunus worker --json` process: its events as they come. */
interface WorkerProc {
  proc: ChildProcess;
  events: WorkerEvent[];
  stderr: () => string;
  waitFor(pred: (e: WorkerEvent) => boolean, timeoutMs?: number): Promise<WorkerEvent>;
  exited: Promise<number | null>;
}

function startWorker(name: string, args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): WorkerProc {
  const proc = spawn(process.execPath, [bin, 'worker', '--queue', redis.url, '--json', '--drain', '--lock-seconds', '2', '--dir', join(work, 'workers', name), ...args], {
    cwd: work,
    env: { ...env(), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: WorkerEvent[] = [];
  const waiters: { pred: (e: WorkerEvent) => boolean; res: (e: WorkerEvent) => void }[] = [];
  let buf = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.trim()) continue;
      const e = JSON.parse(line) as WorkerEvent;
      events.push(e);
      for (const w of waiters.splice(0)) (w.pred(e) ? w.res(e) : waiters.push(w));
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    proc,
    events,
    stderr: () => err,
    exited,
    waitFor: (pred, timeoutMs = 120_000) => {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`worker ${name}: event not seen in ${timeoutMs} ms; events: ${JSON.stringify(events)}; stderr: ${err}`)), timeoutMs);
        waiters.push({ pred, res: (e) => (clearTimeout(t), res(e)) });
      });
    },
  };
}

/** Runs of the quick preset cut short (three searches, a checkpoint every 20 iterations): a few seconds each. */
const SHORT = { model: 'lenet-300-100', quick: true, iterations: 81, 'prune-until': 60, 'search-period': 20, 'log-period': 20, 'checkpoint-period': 20, 'reference-iterations': 40, 'search-budget': 15, backend: 'wasm', workers: 0 };
/** The whole quick preset, checkpointed every 25 iterations: long enough to be interrupted in the middle. */
const LONG = { model: 'lenet-300-100', quick: true, 'checkpoint-period': 25, backend: 'wasm', workers: 0 };
const LONG_ARGV = ['--model', 'lenet-300-100', '--quick', '--checkpoint-period', '25', '--backend', 'wasm', '--workers', '0'];

function writeSweep(name: string, spec: object): string {
  const f = join(work, `${name}.json`);
  writeFileSync(f, JSON.stringify(spec));
  return f;
}

/** A report without what differs between machines and attempts: timings and the reference cache's path. */
const comparable = (r: Record<string, unknown>) => ({ ...r, wallTimeMs: 0, runDir: '', reference: { ...(r.reference as object), source: '' } });
const eventsOf = (dir: string) =>
  readFileSync(join(dir, 'events.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      return { ...e, elapsedMs: 0, ...(typeof e.reason === 'string' ? { reason: e.reason.replace(/reference \S+/, 'reference') } : {}) };
    });

/** Live processes whose command line mentions `text`, after giving them up to 5 s to end. */
async function processesMentioning(text: string): Promise<number[]> {
  let found: number[] = [];
  for (let i = 0; i < 50; i++) {
    found = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text);
        } catch {
          return false;
        }
      })
      .map(Number);
    if (found.length === 0) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  return found;
}

const isLine = (re: RegExp) => (e: WorkerEvent) => e.type === 'line' && re.test(e.line);

/** The uninterrupted run of LONG with seed 21 (computed once). */
let baseline: { report: Record<string, unknown>; dir: string };

describe('sweeps on a queue (BullMQ on a real redis-server)', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'prunus-queue-'));
    redis = await startRedis();
    const dir = join(work, 'baseline');
    const r = await prunus(['search', ...LONG_ARGV, '--seed', '21', '--out', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    baseline = { report: JSON.parse(r.stdout) as Record<string, unknown>, dir };
  }, 120_000);

  afterAll(async () => {
    await redis?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('three workers drain six runs, each finished exactly once; enqueuing again adds nothing; collect and report work', async () => {
    const file = writeSweep('six', { name: 'six', base: SHORT, grid: { seed: [1, 2, 3, 4, 5, 6] } });
    const first = await prunus(['sweep', file, '--queue', redis.url]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^sweep six: 6 runs; 6 added to redis:\/\/127\.0\.0\.1:\d+$/m);
    const again = await prunus(['sweep', file, '--queue', redis.url]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^sweep six: 6 runs; 0 added to .+, 6 already queued \(6 waiting\)$/m);

    const workers = ['a', 'b', 'c'].map((n) => startWorker(`six-${n}`));
    const codes = await Promise.all(workers.map((w) => w.exited));
    expect(codes, workers.map((w) => w.stderr()).join('\n')).toEqual([0, 0, 0]);
    const finished = workers.flatMap((w) => w.events.filter((e) => e.type === 'finished').map((e) => (e as { run: string }).run)).sort();
    expect(finished).toEqual([1, 2, 3, 4, 5, 6].map((s) => `six/lenet-300-100_s${s}`));
    expect(workers.every((w) => !w.events.some((e) => e.type === 'failed' || e.type === 'lost'))).toBe(true);

    const status = await sweepStatus({ queue: redis.url, sweep: 'six' });
    expect(status.sweeps[0]!.counts).toEqual({ completed: 6 });
    expect(status.sweeps[0]!.runs.map((r) => r.attempts)).toEqual([1, 1, 1, 1, 1, 1]);

    const out = join(work, 'six-collected');
    const col = await prunus(['sweep', 'collect', '--queue', redis.url, '--sweep', 'six', '--out', out, '--json']);
    expect(col.code, col.stderr).toBe(0);
    const summary = JSON.parse(col.stdout) as { finished: number; runs: { id: string; status: string; compression: number; attempts: number }[] };
    expect(summary.finished).toBe(6);
    expect(summary.runs.every((r) => r.status === 'finished' && r.compression > 1 && r.attempts === 1)).toBe(true);
    expect(lines(readFileSync(join(out, 'summary.csv'), 'utf8'))).toHaveLength(7);
    for (const r of summary.runs) {
      const runDir = join(out, 'runs', r.id);
      const report = JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')) as { compression: number; nonZero: number };
      expect(report.compression).toBe(r.compression);
      expect(lines(readFileSync(join(runDir, 'events.jsonl'), 'utf8')).length).toBeGreaterThan(3);
      // The exported model came home with it: it loads, with the run's non-zeros.
      const { model } = loadModel(join(runDir, 'model'));
      expect(model.masks.reduce((n, m) => n + m.weight.reduce((a, b) => a + b, 0) + m.bias.reduce((a, b) => a + b, 0), 0)).toBe(report.nonZero);
    }
    const rep = await prunus(['report', out]);
    expect(rep.code, rep.stderr).toBe(0);
    expect(existsSync(join(out, 'report.html'))).toBe(true);

    // Finished runs are never run again: enqueued once more, a worker finds nothing to do.
    const third = await prunus(['sweep', file, '--queue', redis.url]);
    expect(third.stdout).toMatch(/0 added to .+, 6 already queued \(6 completed\)/);
    const idle = startWorker('six-idle');
    expect(await idle.exited).toBe(0);
    expect(idle.events.filter((e) => e.type === 'start')).toEqual([]);
  }, 300_000);

  it('a worker killed with SIGKILL mid-run: another resumes the run from its checkpoint, to the uninterrupted report and events', async () => {
    const file = writeSweep('kill', { name: 'kill', base: LONG, grid: { seed: [21] } });
    expect((await prunus(['sweep', file, '--queue', redis.url])).code).toBe(0);
    const a = startWorker('kill-a');
    await a.waitFor((e) => e.type === 'start');
    const b = startWorker('kill-b');
    await a.waitFor(isLine(/^search at t=100:/));
    a.proc.kill('SIGKILL');
    await a.exited;
    const resumed = await b.waitFor((e) => e.type === 'start');
    expect(resumed).toMatchObject({ type: 'start', run: 'kill/lenet-300-100_s21', action: 'resume', attempt: 2, from: expect.stringMatching(/^checkpoints\/ck-\d{6}$/) });
    expect(await b.exited, b.stderr()).toBe(0);
    // The killed worker's run process went with it (its IPC channel closed).
    expect(await processesMentioning(join(work, 'workers', 'kill-a'))).toEqual([]);
    const out = join(work, 'kill-collected');
    expect((await prunus(['sweep', 'collect', '--queue', redis.url, '--sweep', 'kill', '--out', out])).code).toBe(0);
    const runDir = join(out, 'runs', 'lenet-300-100_s21');
    expect(comparable(JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')))).toEqual(comparable(baseline.report));
    expect(eventsOf(runDir)).toEqual(eventsOf(baseline.dir));
    const state = JSON.parse(readFileSync(join(out, 'state', 'lenet-300-100_s21.json'), 'utf8')) as { attempts: { action: string; result: string; from?: string }[] };
    expect(state.attempts.map((x) => [x.action, x.result])).toEqual([
      ['search', 'interrupted'],
      ['resume', 'finished'],
    ]);
    expect(readFileSync(join(out, 'logs', 'lenet-300-100_s21.log'), 'utf8')).toMatch(/resuming from checkpoints\/ck-\d{6} \(attempt 2\)/);
  }, 300_000);

  it('redis-server killed and restarted mid-sweep: every run finishes once, nothing is lost or run twice', async () => {
    const file = writeSweep('restart', { name: 'restart', base: LONG, grid: { seed: [21, 22] } });
    expect((await prunus(['sweep', file, '--queue', redis.url])).code).toBe(0);
    const w = startWorker('restart');
    await w.waitFor(isLine(/^search at t=100:/));
    await redis.kill();
    await new Promise((r) => setTimeout(r, 3000)); // longer than the 2 s locks and leases
    await redis.start();
    expect(await w.exited, w.stderr()).toBe(0);
    expect(w.events.filter((e) => e.type === 'redis').map((e) => (e as { state: string }).state)).toEqual(['lost', 'back']);
    const status = await sweepStatus({ queue: redis.url, sweep: 'restart' });
    expect(status.sweeps[0]!.counts).toEqual({ completed: 2 });
    const out = join(work, 'restart-collected');
    expect((await prunus(['sweep', 'collect', '--queue', redis.url, '--sweep', 'restart', '--out', out])).code).toBe(0);
    for (const id of ['lenet-300-100_s21', 'lenet-300-100_s22']) {
      const st = JSON.parse(readFileSync(join(out, 'state', `${id}.json`), 'utf8')) as { attempts: { result: string }[] };
      expect(st.attempts.filter((x) => x.result === 'finished'), id).toHaveLength(1);
      const events = eventsOf(join(out, 'runs', id));
      expect(new Set(events.map((e) => JSON.stringify(e))).size, id).toBe(events.length);
    }
    const runDir = join(out, 'runs', 'lenet-300-100_s21');
    expect(comparable(JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')))).toEqual(comparable(baseline.report));
    expect(eventsOf(runDir)).toEqual(eventsOf(baseline.dir));
  }, 300_000);

  it('SIGTERM: the running run checkpoints and goes back to the queue; the next worker resumes it to the same result', async () => {
    const file = writeSweep('term', { name: 'term', base: LONG, grid: { seed: [21] } });
    expect((await prunus(['sweep', file, '--queue', redis.url])).code).toBe(0);
    const a = startWorker('term-a');
    await a.waitFor(isLine(/^search at t=100:/));
    a.proc.kill('SIGTERM');
    expect(await a.exited, a.stderr()).toBe(0);
    expect(a.events.find((e) => e.type === 'returned')).toMatchObject({ run: 'term/lenet-300-100_s21', reason: expect.stringMatching(/^worker stopping; checkpointed at checkpoints\/ck-\d{6}$/) });
    const status = await sweepStatus({ queue: redis.url, sweep: 'term' });
    expect(status.sweeps[0]!.runs[0]).toMatchObject({ state: 'waiting', attempts: 1 });
    const b = startWorker('term-b');
    expect(await b.exited, b.stderr()).toBe(0);
    expect(b.events.find((e) => e.type === 'start')).toMatchObject({ action: 'resume', attempt: 2 });
    const out = join(work, 'term-collected');
    expect((await prunus(['sweep', 'collect', '--queue', redis.url, '--sweep', 'term', '--out', out])).code).toBe(0);
    const runDir = join(out, 'runs', 'lenet-300-100_s21');
    expect(comparable(JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')))).toEqual(comparable(baseline.report));
    expect(eventsOf(runDir)).toEqual(eventsOf(baseline.dir));
  }, 300_000);

  it('a run leased by a live worker is left alone until the lease is released', async () => {
    const file = writeSweep('held', { name: 'held', base: SHORT, grid: { seed: [7] } });
    expect((await prunus(['sweep', file, '--queue', redis.url])).code).toBe(0);
    const conn = new Redis(redis.url);
    try {
      const store = new RunStore(conn);
      const lease = await store.acquire('held/lenet-300-100_s7', 'elsewhere/1', 3000);
      expect(lease.ok).toBe(true);
      const token = (lease as { token: string }).token;
      const keep = setInterval(() => void store.renew('held/lenet-300-100_s7', token, 3000), 500);
      const w = startWorker('held');
      const back = await w.waitFor((e) => e.type === 'returned');
      expect(back).toMatchObject({ run: 'held/lenet-300-100_s7', reason: expect.stringMatching(/^held by elsewhere\/1 since /) });
      expect(w.events.some((e) => e.type === 'start')).toBe(false);
      clearInterval(keep);
      await store.release('held/lenet-300-100_s7', token);
      expect(await w.exited, w.stderr()).toBe(0);
      expect(w.events.filter((e) => e.type === 'finished')).toHaveLength(1);
      expect(await store.attempts('held/lenet-300-100_s7')).toHaveLength(1);
    } finally {
      conn.disconnect();
    }
  }, 120_000);

  it('a run that fails every attempt ends failed after three, with its error; a malformed job fails at once and is not retried', async () => {
    await enqueueSweep({ name: 'failing', base: SHORT, grid: { seed: [8] } }, { queue: redis.url, retryDelayMs: 100 });
    const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE_NAME, { connection: conn });
    try {
      await queue.add('bad', { sweep: 'bad', runId: 'x', command: 'search', flags: { model: 'lenet-300-100', 'no-such-flag': 1 } }, { jobId: 'bad/x', attempts: 3 });
      await queue.add('bad', { sweep: 'bad', runId: 'y', command: 'sh -c reboot', flags: { model: 'lenet-300-100' } }, { jobId: 'bad/y', attempts: 3 });
      // Every write of a run fails as a full disk would (the first write of each attempt): exit 1, worth retrying.
      const w = startWorker('failing', [], { PRUNUS_TEST_WRITE_FAULT: '1' });
      expect(await w.exited, w.stderr()).toBe(0);
      const failing = await queue.getJob('failing/lenet-300-100_s8');
      expect(await failing!.getState()).toBe('failed');
      expect(failing!.attemptsMade).toBe(3);
      expect(failing!.failedReason).toMatch(/^cannot write .+: no space left on device$/);
      const x = await queue.getJob('bad/x');
      expect(await x!.getState()).toBe('failed');
      expect(x!.attemptsMade).toBe(1);
      expect(x!.failedReason).toBe("job bad/x: runs[0].no-such-flag is not a flag of 'prunus search'");
      const y = await queue.getJob('bad/y');
      expect(y!.attemptsMade).toBe(1);
      expect(y!.failedReason).toBe("job bad/y: command must be one of search, got 'sh -c reboot'");
      const st = await sweepStatus({ queue: redis.url, sweep: 'failing' });
      expect(st.sweeps[0]!.runs[0]).toMatchObject({ state: 'failed', attempts: 3, error: expect.stringMatching(/no space left on device$/) });
      // Enqueuing the sweep again puts the failed run back to wait, as a local sweep retries its failed runs.
      const again = await enqueueSweep({ name: 'failing', base: SHORT, grid: { seed: [8] } }, { queue: redis.url });
      expect(again.retried).toEqual(['lenet-300-100_s8']);
      expect(await (await queue.getJob('failing/lenet-300-100_s8'))!.getState()).toBe('waiting');
      await (await queue.getJob('failing/lenet-300-100_s8'))!.remove();
    } finally {
      await queue.close();
      conn.disconnect();
    }
  }, 120_000);

  it('bad URL, Redis down, a wrong or missing password: one line, exit 2', async () => {
    const secured = await startRedis({ password: 'sesame' });
    try {
      const file = writeSweep('never', { name: 'never', base: SHORT, grid: { seed: [9] } });
      const down = `redis://127.0.0.1:${await freePort()}`;
      const cases: [string[], RegExp][] = [
        [['worker', '--queue', 'http://127.0.0.1:6379'], /^prunus: --queue http:\/\/127\.0\.0\.1:6379: the scheme must be redis:\/\/ or rediss:\/\/, got http:\/\/$/],
        [['sweep', file, '--queue', 'redis://127.0.0.1:6379/x'], /^prunus: --queue redis:\/\/127\.0\.0\.1:6379\/x: the path must be a database number, got '\/x'$/],
        [['worker', '--queue', down], /^prunus: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: connection refused \(is redis-server running\?\)$/],
        [['sweep', file, '--queue', down], /^prunus: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: connection refused/],
        [['worker', '--queue', `redis://:wrong@127.0.0.1:${secured.port}`], /^prunus: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the user name or password$/],
        [['sweep', 'status', '--queue', `redis://127.0.0.1:${secured.port}`], /^prunus: Redis at redis:\/\/127\.0\.0\.1:\d+ needs a password \(redis:\/\/:PASSWORD@host:port\)$/],
        [['sweep', 'collect', '--queue', secured.url], /^prunus: sweep collect: --out DIR is required$/],
        [['sweep', 'collect', '--queue', secured.url, '--out', join(work, 'nothing')], /^prunus: no sweeps in the queue at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+$/],
      ];
      for (const [args, want] of cases) {
        const r = await prunus(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(lines(r.stderr), args.join(' ')).toEqual([expect.stringMatching(want)]);
      }
      expect(existsSync(join(work, 'nothing'))).toBe(false);
    } finally {
      await secured.stop();
    }
  }, 60_000);

  it('the library: runWorker runs two jobs at once; two runs that need the same reference share it (one trains, the other waits for its cache)', async () => {
    await enqueueSweep({ name: 'lib', base: SHORT, grid: { seed: [10], 'max-acc-drop': [0.05, 0.1] } }, { queue: redis.url });
    const events: WorkerEvent[] = [];
    const summary = await runWorker({ queue: redis.url, drain: true, lockMs: 2000, concurrency: 2, dir: join(work, 'workers', 'lib'), onEvent: (e) => events.push(e) });
    expect(summary).toMatchObject({ finished: 2, failed: 0, returned: 0 });
    const types = events.map((e) => e.type).filter((t) => t !== 'progress' && t !== 'line');
    expect(types[0]).toBe('ready');
    expect(types.slice(-2)).toEqual(['stopping', 'stopped']);
    expect(types.filter((t) => t === 'start')).toHaveLength(2);
    expect(types.filter((t) => t === 'finished')).toHaveLength(2);
    const pruning = events.filter((e) => e.type === 'line' && e.line.startsWith('phase pruning')).map((e) => (e as { line: string }).line);
    expect(pruning).toHaveLength(2);
    expect(pruning[0]).toBe(pruning[1]); // the same reference, by the same path, with the same accuracies
  }, 120_000);
});
