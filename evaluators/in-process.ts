/**
 * In-process evaluator: runs the hot path (engine.ts) on the calling thread's tfjs backend. Used by the pipeline
 * with --workers 0, by tests, and as the reference the pool must match.
 */
import { initBackend, currentBackend, type BackendInfo, type BackendName } from '../backends/backend.js';
import { buildMasks } from './builders.js';
import { EvaluatorCore, copyContext, resolveCommonOptions, type Job, type ResolvedOptions } from './core.js';
import { evaluateMasks, type RawEvaluation } from './engine.js';
import type { CommonEvaluatorOptions, EvaluationContext, Evaluator } from './types.js';

export interface InProcessEvaluatorOptions extends CommonEvaluatorOptions {
  /** Backend to activate first; by default the thread's current backend (initBackend('auto') if none yet). */
  backend?: BackendName;
}

class InProcessEvaluator extends EvaluatorCore implements Evaluator {
  private ctx: EvaluationContext | null = null;
  constructor(
    opts: ResolvedOptions,
    readonly backend: BackendInfo,
  ) {
    super(opts);
  }
  protected async install(ctx: EvaluationContext): Promise<EvaluationContext> {
    this.ctx = copyContext(ctx, false);
    return this.ctx;
  }
  protected async runJob(job: Job): Promise<RawEvaluation> {
    const ctx = this.ctx!;
    const masks = job.masks ?? buildMasks(ctx, job.cand);
    return evaluateMasks(ctx, masks, { path: this.opts.path, batchSize: this.opts.batchSize, ...(job.minCorrect !== undefined ? { minCorrect: job.minCorrect } : {}) });
  }
  protected async shutdown(): Promise<void> {
    this.ctx = null;
  }
}

export async function createInProcessEvaluator(opts: InProcessEvaluatorOptions = {}): Promise<Evaluator & { readonly cacheSize: number }> {
  const resolved = resolveCommonOptions(opts);
  const backend = opts.backend !== undefined ? await initBackend(opts.backend) : (currentBackend() ?? (await initBackend('auto')));
  return new InProcessEvaluator(resolved, backend);
}
