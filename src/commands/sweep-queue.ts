/** The queue side of `prunus sweep`: enqueue a sweep file (`--queue URL`), `status` and `collect`. */
import { readFileSync } from 'node:fs';
import { parseFlags } from '../cli-args.js';
import { UsageError } from '../../foundation/errors.js';
import { collectSweep, enqueueSweep, sweepStatus, type QueueRunStatus } from '../queue/index.js';

const STATUS_FLAGS = {
  queue: { type: 'string' },
  sweep: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const COLLECT_FLAGS = { ...STATUS_FLAGS, out: { type: 'string' } } as const;

function requireQueue(v: { queue?: string }, what: string): string {
  if (typeof v.queue !== 'string') throw new UsageError(`sweep ${what}: --queue redis://host:port is required`);
  return v.queue;
}

/** `prunus sweep FILE --queue URL [--backend B]`: adds the sweep's runs to the queue. */
export async function enqueue(file: string, queue: string, backend: string | undefined, json: boolean): Promise<number> {
  const r = await enqueueSweep(file, { queue, ...(backend !== undefined ? { backend } : {}) });
  if (json) {
    process.stdout.write(JSON.stringify(r) + '\n');
    return 0;
  }
  const present = r.present.length ? `, ${r.present.length} already queued (${summarise(r.present.map((p) => p.state))})` : '';
  const retried = r.retried.length ? `, ${r.retried.length} failed ones put back to wait` : '';
  process.stdout.write(`sweep ${r.name}: ${r.total} runs; ${r.added.length} added to ${r.queue}${present}${retried}\n`);
  process.stdout.write(`drain it with: prunus worker --queue ${r.queue}   follow it with: prunus sweep status --queue ${r.queue}\n`);
  return 0;
}

function summarise(states: string[]): string {
  const c = new Map<string, number>();
  for (const s of states) c.set(s, (c.get(s) ?? 0) + 1);
  return [...c].map(([s, n]) => `${n} ${s}`).join(', ');
}

function progressText(r: QueueRunStatus): string {
  if (r.state === 'completed') return r.compression === null ? 'finished' : `${r.compression.toFixed(2)}x, test error ${r.testError === null ? '?' : `${(r.testError * 100).toFixed(2)}%`}`;
  if (r.state === 'failed') return r.error ?? '';
  if (r.progress) return `${r.progress.phase} ${r.progress.iteration}/${r.progress.total}, ${r.progress.compression.toFixed(1)}x on ${r.progress.worker}`;
  return '';
}

export async function status(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, STATUS_FLAGS, 'sweep status');
  if (positionals.length) throw new UsageError(`sweep status: unexpected argument '${positionals[0]}'`);
  const s = await sweepStatus({ queue: requireQueue(v, 'status'), ...(v.sweep !== undefined ? { sweep: v.sweep } : {}) });
  if (v.json) {
    process.stdout.write(JSON.stringify(s) + '\n');
    return 0;
  }
  if (s.sweeps.length === 0) process.stdout.write(`no sweeps in the queue at ${s.queue}\n`);
  for (const sw of s.sweeps) {
    process.stdout.write(`sweep ${sw.name} at ${s.queue}: ${summarise(sw.runs.map((r) => r.state))}\n`);
    const idW = Math.max(2, ...sw.runs.map((r) => r.id.length));
    const stW = Math.max(5, ...sw.runs.map((r) => r.state.length));
    process.stdout.write(`  ${'id'.padEnd(idW)}  ${'state'.padEnd(stW)}  attempts  progress / result\n`);
    for (const r of sw.runs) process.stdout.write(`  ${r.id.padEnd(idW)}  ${r.state.padEnd(stW)}  ${String(r.attempts).padStart(8)}  ${progressText(r)}\n`);
  }
  return 0;
}

export async function collect(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, COLLECT_FLAGS, 'sweep collect');
  if (positionals.length) throw new UsageError(`sweep collect: unexpected argument '${positionals[0]}'`);
  if (typeof v.out !== 'string') throw new UsageError('sweep collect: --out DIR is required');
  const r = await collectSweep({ queue: requireQueue(v, 'collect'), out: v.out, ...(v.sweep !== undefined ? { sweep: v.sweep } : {}) });
  if (v.json) {
    process.stdout.write(JSON.stringify({ name: r.name, dir: r.dir, finished: r.finished, failed: r.failed, pending: r.pending, files: r.files, runs: r.rows }) + '\n');
  } else {
    process.stdout.write(readFileSync(r.files.markdown, 'utf8'));
    process.stdout.write(`\nsweep folder: ${r.dir} (prunus report ${r.dir})\n`);
  }
  return 0;
}
