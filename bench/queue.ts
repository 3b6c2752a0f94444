/**
 * The queue: how well workers share a sweep, and what the queue costs per job.
 *
 *   npm run bench -- queue [--json] [--runs N]
 *
 * Starts its own redis-server (append-only, on a free port), then drains a sweep of N quick runs (default 8, seeds
 * 1..N, `lenet-300-100 --quick --workers 0`: one core per run) with 1 worker process, then the same runs (another
 * sweep name) with 2 worker processes. Rows:
 *   drain      wall time from enqueue to the last worker's exit, and 1-worker wall / 2-worker wall;
 *   ceiling    what this machine gives two of anything: the same fixed JS loop in 2 threads at once against 1; and
 *              for this very workload without any queue, two plain `prunus search` processes of the same kind of
 *              quick run at once against two one after the other (a run's process uses more than one core: GC,
 *              compilation and I/O threads, so two at once contend even on an idle 2-core machine);
 *   overhead   per job, medians over the 2-worker drain: pickup (the job waiting for a free worker: enqueue or the
 *              worker's previous job's end → taken), setup (taken → run process started: lease, state, attempt),
 *              teardown (run process ended → job completed: result stored), and their sum against the median run.
 * Each worker's own start (Node, module loading) and its last empty-queue check are outside the per-job figures.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { UsageError } from '../foundation/errors.js';
import { enqueueSweep } from '../src/queue/enqueue.js';
import { QUEUE_NAME } from '../src/queue/job.js';
import type { JobResult } from '../src/queue/worker.js';
import { startRedis } from './lib/redis-server.js';
import { parallelCeiling } from './eval.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = join(repoRoot, 'bin', 'prunus.js');

interface Args {
  json: boolean;
  runs: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, runs: 8 };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    if (f === '--json') a.json = true;
    else if (f === '--runs') {
      a.runs = Number(argv[++i]);
      if (!Number.isInteger(a.runs) || a.runs < 1) throw new UsageError(`--runs must be a positive integer, got '${argv[i]}'`);
    } else throw new UsageError(`bench queue: unknown argument '${f}' (usage: npm run bench -- queue [--json] [--runs N])`);
  }
  return a;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
};

function worker(url: string, dir: string, env: NodeJS.ProcessEnv): Promise<number | null> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [bin, 'worker', '--queue', url, '--drain', '--dir', dir], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    p.on('error', rej);
    p.on('exit', (code) => (code === 0 ? res(code) : rej(new Error(`worker exited ${code}: ${err}`))));
  });
}

function plainSearch(seed: number, out: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((res, rej) => {
    const args = [bin, 'search', '--model', 'lenet-300-100', '--quick', '--backend', 'wasm', '--workers', '0', '--seed', String(seed), '--out', out, '--json'];
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'ignore'], env });
    p.on('error', rej);
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`prunus search --seed ${seed} exited ${code}`))));
  });
}

export interface QueueBenchRow {
  row: 'drain' | 'ceiling' | 'overhead';
  [k: string]: unknown;
}

export async function run(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const redis = await startRedis();
  const work = mkdtempSync(join(tmpdir(), 'prunus-bench-queue-'));
  const env = { ...process.env, PRUNUS_RESULTS: join(work, 'results') };
  const rows: QueueBenchRow[] = [];
  const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(QUEUE_NAME, { connection: conn });
  queue.on('error', () => undefined);
  try {
    const walls: Record<number, number> = {};
    let jobsOf2: Job[] = [];
    for (const n of [1, 2]) {
      const name = `bench-w${n}`;
      const seeds = Array.from({ length: args.runs }, (_, i) => i + 1);
      const t0 = Date.now();
      await enqueueSweep({ name, base: { model: 'lenet-300-100', quick: true, backend: 'wasm', workers: 0 }, grid: { seed: seeds } }, { queue: redis.url });
      await Promise.all(Array.from({ length: n }, (_, k) => worker(redis.url, join(work, `${name}-${k}`), env)));
      walls[n] = Date.now() - t0;
      const jobs = (await queue.getJobs(['completed'])).filter((j) => (j.data as { sweep: string }).sweep === name);
      if (jobs.length !== args.runs) throw new Error(`${name}: ${jobs.length} of ${args.runs} runs completed`);
      rows.push({ row: 'drain', workers: n, runs: args.runs, wallMs: walls[n], runsPerMinute: +((args.runs * 60_000) / walls[n]!).toFixed(2) });
      if (n === 2) jobsOf2 = jobs;
    }
    rows.push({ row: 'drain', workers: '2 vs 1', speedup: +(walls[1]! / walls[2]!).toFixed(3) });
    const ceiling = await parallelCeiling(2);
    rows.push({ row: 'ceiling', of: 'a fixed JS loop, 2 threads vs 1', speedup: ceiling.speedup, loadAverage: ceiling.loadAverage });
    const search = (seed: number) => plainSearch(seed, join(work, `plain-${seed}`), env);
    let t = Date.now();
    await search(901);
    await search(902);
    const sequential = Date.now() - t;
    t = Date.now();
    await Promise.all([search(903), search(904)]);
    const together = Date.now() - t;
    rows.push({ row: 'ceiling', of: 'two quick prunus search processes at once vs one after the other', sequentialMs: sequential, togetherMs: together, speedup: +(sequential / together).toFixed(3) });

    // Per job, from BullMQ's timestamps and the worker's record of its run process.
    const byWorker = new Map<string, Job[]>();
    for (const j of jobsOf2) {
      const w = (j.returnvalue as JobResult).worker;
      byWorker.set(w, [...(byWorker.get(w) ?? []), j]);
    }
    const pickup: number[] = [];
    const setup: number[] = [];
    const teardown: number[] = [];
    const runMs: number[] = [];
    for (const jobs of byWorker.values()) {
      jobs.sort((a, b) => a.processedOn! - b.processedOn!);
      jobs.forEach((j, i) => {
        const r = j.returnvalue as JobResult;
        // The first job of a worker waited for the worker to start, not for the queue.
        if (i > 0) pickup.push(j.processedOn! - Math.max(jobs[i - 1]!.finishedOn!, j.timestamp));
        setup.push(r.childStartedAt! - j.processedOn!);
        teardown.push(j.finishedOn! - r.childEndedAt!);
        runMs.push(r.childEndedAt! - r.childStartedAt!);
      });
    }
    const perJob = median(pickup) + median(setup) + median(teardown);
    rows.push({
      row: 'overhead',
      jobs: jobsOf2.length,
      pickupMs: median(pickup),
      setupMs: median(setup),
      teardownMs: median(teardown),
      perJobMs: perJob,
      runMs: median(runMs),
      percentOfRun: +((100 * perJob) / median(runMs)).toFixed(2),
    });
  } finally {
    await queue.close();
    conn.disconnect();
    await redis.stop();
    rmSync(work, { recursive: true, force: true });
  }
  if (args.json) {
    process.stdout.write(JSON.stringify({ bench: 'queue', backend: 'wasm', rows }) + '\n');
    return;
  }
  for (const r of rows) process.stdout.write(Object.entries(r).map(([k, v]) => `${k} ${v}`).join('  ') + '\n');
}
