/**
 * Pool evaluator: Piscina worker threads (default one per core) evaluating a generation in parallel.
 *
 *  - setContext copies weights, masks and evaluation data once into SharedArrayBuffers and broadcasts them with a
 *    new version number on a BroadcastChannel; tasks carry only the candidate (or caller-built masks) and the
 *    version. A worker that lacks the version (started later, e.g. a replacement) asks for it on the channel.
 *  - Results come back in candidate order and are identical for any number of workers.
 *  - A task whose worker crashes (process.exit, uncaught error) or that throws is retried once, on a fresh worker
 *    when the old one died; a second failure rejects evaluate() with an error naming the candidate.
 */
import { availableParallelism } from 'node:os';
import { BroadcastChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { LayerMasks } from '../models/params.js';
import { UsageError } from '../foundation/errors.js';
import type { BackendInfo } from '../backends/backend.js';
import { compiledModuleUrl } from './builders.js';
import { EvaluatorCore, copyContext, describeCandidate, resolveCommonOptions, type Job, type ResolvedOptions } from './core.js';
import type { RawEvaluation } from './engine.js';
import type { ChannelMessage, PoolTask, PoolWorkerData } from './protocol.js';
import type { CommonEvaluatorOptions, EvaluationContext, Evaluator } from './types.js';

export interface PoolEvaluatorOptions extends CommonEvaluatorOptions {
  /** Worker threads (default os.availableParallelism()). */
  workers?: number;
  /**
   * Backend of every worker (default 'wasm'). 'auto' and 'tensorflow' also mean 'wasm': the native tfjs-node
   * backend is kept out of worker threads.
   */
  backend?: 'wasm' | 'cpu' | 'webgpu' | 'auto' | 'tensorflow';
}

/** Kinds the worker module registers on its own (see builders.ts). */
const BUILTIN_KINDS = new Set(['crates']);

let channelCounter = 0;

/** Compiled worker file, also when this module runs from TypeScript sources (vitest): evaluators/pool.ts → dist/evaluators/worker.js. */
export function workerFileUrl(): string {
  return compiledModuleUrl(new URL('./worker' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url).href);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class PoolEvaluator extends EvaluatorCore implements Evaluator {
  private message: ChannelMessage | null = null;
  private ctx: EvaluationContext | null = null;
  /** Tasks retried after a failure (for tests and reports). */
  retries = 0;

  constructor(
    opts: ResolvedOptions,
    private readonly pool: Piscina,
    private readonly channel: BroadcastChannel,
    readonly backend: BackendInfo,
    readonly workers: number,
  ) {
    super(opts);
    channel.onmessage = (ev: unknown) => {
      const msg = (ev as { data: ChannelMessage }).data;
      if (msg.type === 'need' && this.message && this.message.version >= msg.version) this.channel.postMessage(this.message);
    };
  }

  protected async install(ctx: EvaluationContext, version: number): Promise<EvaluationContext> {
    const shared = copyContext(ctx, true);
    this.ctx = shared;
    this.message = { type: 'context', version, ctx: shared };
    this.channel.postMessage(this.message);
    return shared;
  }

  protected async runJob(job: Job): Promise<RawEvaluation> {
    const task: PoolTask = { type: 'evaluate', version: this.version, ...(job.minCorrect !== undefined ? { minCorrect: job.minCorrect } : {}) };
    let masks: LayerMasks[] | undefined = job.masks;
    if (!masks && (BUILTIN_KINDS.has(job.cand.kind) || job.builder.workerModule)) {
      task.candidate = job.cand;
      if (job.builder.workerModule && !BUILTIN_KINDS.has(job.cand.kind)) task.modules = [compiledModuleUrl(job.builder.workerModule)];
    } else {
      masks ??= job.builder.build(this.ctx!, job.cand);
      task.masks = masks;
    }
    try {
      return (await this.pool.run(task)) as RawEvaluation;
    } catch (first) {
      this.retries++;
      try {
        return (await this.pool.run(task)) as RawEvaluation;
      } catch (second) {
        throw new Error(`evaluating candidate ${job.index} ${describeCandidate(job.cand)} failed twice: ${errText(second)} (first: ${errText(first)})`);
      }
    }
  }

  protected async shutdown(): Promise<void> {
    this.channel.onmessage = () => undefined;
    this.channel.close();
    this.message = null;
    this.ctx = null;
    await this.pool.destroy();
  }
}

export type PoolEvaluatorHandle = Evaluator & { readonly cacheSize: number; readonly retries: number; readonly workers: number };

export async function createPoolEvaluator(opts: PoolEvaluatorOptions = {}): Promise<PoolEvaluatorHandle> {
  const resolved = resolveCommonOptions(opts);
  const workers = opts.workers ?? availableParallelism();
  if (!Number.isInteger(workers) || workers < 1) throw new UsageError(`evaluator: workers must be an integer >= 1, got '${String(workers)}'`);
  const requested = opts.backend ?? 'wasm';
  if (!['wasm', 'cpu', 'webgpu', 'auto', 'tensorflow'].includes(requested)) throw new UsageError(`evaluator: unknown worker backend '${String(requested)}' (wasm, cpu, webgpu)`);
  const backend = requested === 'auto' || requested === 'tensorflow' ? 'wasm' : requested;
  const channelName = `prunus-eval-${process.pid}-${channelCounter++}`;
  const workerData: PoolWorkerData = { channel: channelName, backend, path: resolved.path, batchSize: resolved.batchSize };
  const pool = new Piscina({
    filename: workerFileUrl(),
    minThreads: workers,
    maxThreads: workers,
    idleTimeout: 2 ** 31 - 1,
    atomics: 'disabled',
    workerData,
  });
  // Uncaught errors of idle workers are reported here; without a listener they would crash the caller.
  pool.on('error', () => undefined);
  const channel = new BroadcastChannel(channelName);
  channel.unref();
  let info: BackendInfo;
  try {
    info = (await pool.run({ type: 'info' } satisfies PoolTask)) as BackendInfo;
  } catch (e) {
    channel.close();
    await pool.destroy();
    throw new UsageError(`evaluator pool: worker backend '${backend}' failed to start: ${errText(e)}`);
  }
  return new PoolEvaluator(resolved, pool, channel, info, workers);
}
