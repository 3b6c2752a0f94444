/**
 * What both evaluators share: context versions, candidate validation, cache keys, the result cache, in-call
 * de-duplication, and turning raw counts into Evaluations. Subclasses only run jobs.
 */
import type { LayerMasks } from '../models/params.js';
import { UsageError } from '../foundation/errors.js';
import { getMaskBuilder, hashMasks, prepareContext, validateContext } from './builders.js';
import type { RawEvaluation } from './engine.js';
import type { Candidate, CommonEvaluatorOptions, EvaluateOptions, Evaluation, EvaluationContext, MaskBuilder, PathMode, PreparedContext } from './types.js';

export const DEFAULT_BATCH_SIZE = 1000;
export const DEFAULT_CACHE_ENTRIES = 100_000;

export interface Job {
  /** Position in the evaluate() call (for error messages). */
  index: number;
  cand: Candidate;
  builder: MaskBuilder<{ kind: string }>;
  /** Masks already built in this thread (builders without a key), else undefined. */
  masks?: LayerMasks[];
  minCorrect?: number;
}

export interface ResolvedOptions {
  path: PathMode;
  batchSize: number;
  cacheEntries: number; // 0 = off
}

export function resolveCommonOptions(o: CommonEvaluatorOptions): ResolvedOptions {
  const path = o.path ?? 'auto';
  if (!['auto', 'sparse', 'dense'].includes(path)) throw new UsageError(`evaluator: path must be auto, sparse or dense, got '${String(path)}'`);
  const batchSize = o.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError(`evaluator: batchSize must be an integer >= 1, got '${String(batchSize)}'`);
  let cacheEntries = DEFAULT_CACHE_ENTRIES;
  if (o.cache === false) cacheEntries = 0;
  else if (typeof o.cache === 'number') {
    if (!Number.isInteger(o.cache) || o.cache < 0) throw new UsageError(`evaluator: cache size must be an integer >= 0, got '${o.cache}'`);
    cacheEntries = o.cache;
  }
  return { path, batchSize, cacheEntries };
}

function copyArray<T extends Float32Array | Uint8Array>(a: T, shared: boolean): T {
  // By element type, not a.constructor: a Node Buffer is a Uint8Array whose constructor is the deprecated Buffer().
  const C = (a instanceof Float32Array ? Float32Array : Uint8Array) as unknown as { new (buf: ArrayBufferLike): T; BYTES_PER_ELEMENT: number };
  const bytes = a.length * C.BYTES_PER_ELEMENT;
  const out = new C(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  out.set(a);
  return out;
}

/**
 * A private copy of a context (in SharedArrayBuffers when `shared`), so that later changes to the caller's arrays
 * cannot change results: evaluation depends only on what setContext saw.
 */
export function copyContext(ctx: EvaluationContext, shared: boolean): EvaluationContext {
  const per = ctx.data.shape[0] * ctx.data.shape[1] * ctx.data.shape[2];
  return {
    arch: structuredClone(ctx.arch),
    params: {
      layers: ctx.params.layers.map((l) => ({ weight: copyArray(l.weight, shared), bias: copyArray(l.bias, shared) })),
      batchNorms: ctx.params.batchNorms.map((b) => ({
        gamma: copyArray(b.gamma, shared),
        beta: copyArray(b.beta, shared),
        movingMean: copyArray(b.movingMean, shared),
        movingVariance: copyArray(b.movingVariance, shared),
      })),
    },
    masks: ctx.masks.map((m) => ({ weight: copyArray(m.weight, shared), bias: copyArray(m.bias, shared) })),
    stats: ctx.stats.map((s) => ({ mu: s.mu, sigma: s.sigma })),
    data: {
      images: copyArray(ctx.data.images.subarray(0, ctx.data.count * per), shared),
      labels: copyArray(ctx.data.labels.subarray(0, ctx.data.count), shared),
      count: ctx.data.count,
      shape: [...ctx.data.shape],
    },
  };
}

/** Short description of a candidate for error messages. */
export function describeCandidate(c: { kind: string }): string {
  const s = JSON.stringify(c, (_k, v: unknown) => (ArrayBuffer.isView(v) ? `<${v.constructor.name}>` : v));
  return s.length > 160 ? s.slice(0, 157) + '...' : s;
}

/** A cached raw result still answers a request with this floor (an early exit is only conclusive below it). */
function conclusive(raw: RawEvaluation, minCorrect: number | undefined): boolean {
  if (!raw.earlyExit) return true;
  return minCorrect !== undefined && raw.correct + (raw.count - raw.evaluated) < minCorrect;
}

export function toEvaluation(raw: RawEvaluation, minCorrect: number | undefined, cacheHit: boolean): Evaluation {
  const feasible = minCorrect === undefined || (!raw.earlyExit && raw.correct >= minCorrect);
  const upper = raw.correct + (raw.count - raw.evaluated);
  return {
    accuracy: raw.evaluated > 0 ? raw.correct / raw.evaluated : 0,
    correct: raw.correct,
    evaluated: raw.evaluated,
    count: raw.count,
    nonZero: raw.nonZero,
    compression: raw.nonZero === 0 ? Infinity : raw.params / raw.nonZero,
    macs: raw.macs,
    feasible,
    violation: feasible ? 0 : (minCorrect! - upper) / raw.count,
    earlyExit: raw.earlyExit,
    cacheHit,
  };
}

/** Least-recently-used map with a capacity. */
class LruCache<V> {
  private map = new Map<string, V>();
  constructor(private readonly capacity: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }
  clear(): void {
    this.map.clear();
  }
  get size(): number {
    return this.map.size;
  }
}

export abstract class EvaluatorCore {
  protected prep: PreparedContext | null = null;
  protected version = 0;
  protected closed = false;
  protected readonly opts: ResolvedOptions;
  private readonly cache: LruCache<RawEvaluation> | null;
  /** Serialises setContext / evaluate / close. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(opts: ResolvedOptions) {
    this.opts = opts;
    this.cache = opts.cacheEntries > 0 ? new LruCache(opts.cacheEntries) : null;
  }

  /** Number of cached results (for tests and reports). */
  get cacheSize(): number {
    return this.cache?.size ?? 0;
  }

  protected serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.chain.then(f, f);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Makes the new context current in the runner (copies, broadcasts); returns the private copy. */
  protected abstract install(ctx: EvaluationContext, version: number): Promise<EvaluationContext>;
  /** Evaluates one job against the current context. */
  protected abstract runJob(job: Job): Promise<RawEvaluation>;
  protected abstract shutdown(): Promise<void>;

  setContext(ctx: EvaluationContext): Promise<void> {
    return this.serial(async () => {
      if (this.closed) throw new Error('evaluator is closed');
      validateContext(ctx);
      const version = this.version + 1;
      const copy = await this.install(ctx, version);
      this.version = version;
      this.prep = prepareContext(copy, version);
      this.cache?.clear();
    });
  }

  evaluate(cands: readonly Candidate[], opts: EvaluateOptions = {}): Promise<Evaluation[]> {
    return this.serial(async () => {
      if (this.closed) throw new Error('evaluator is closed');
      const prep = this.prep;
      if (!prep) throw new Error('evaluate() called before setContext()');
      const minCorrect = opts.minCorrect;
      if (minCorrect !== undefined && !Number.isFinite(minCorrect)) throw new UsageError(`minCorrect must be a finite number, got '${minCorrect}'`);
      const results: Evaluation[] = new Array(cands.length);
      const inflight = new Map<string, Promise<RawEvaluation>>();
      const tasks: Promise<void>[] = [];
      // Validate everything before running anything.
      const jobs = cands.map((cand, index) => {
        if (!cand || typeof cand.kind !== 'string') throw new UsageError(`candidate ${index} has no kind`);
        const builder = getMaskBuilder(cand.kind);
        try {
          builder.validate?.(prep.ctx, cand);
        } catch (e) {
          if (e instanceof UsageError) throw new UsageError(`candidate ${index}: ${e.message}`);
          throw e;
        }
        return { index, cand, builder };
      });
      for (const { index, cand, builder } of jobs) {
        let masks: LayerMasks[] | undefined;
        let key: string | null = null;
        if (this.cache) {
          if (builder.key) key = `${prep.version}|${builder.key(prep, cand)}`;
          else {
            masks = builder.build(prep.ctx, cand);
            key = `${prep.version}|fnv:${cand.kind}:${hashMasks(masks)}`;
          }
          const hit = this.cache.get(key);
          if (hit && conclusive(hit, minCorrect)) {
            results[index] = toEvaluation(hit, minCorrect, true);
            continue;
          }
          const same = inflight.get(key);
          if (same) {
            // An identical candidate earlier in this call, with the same floor: its result answers this one.
            tasks.push(same.then((raw) => void (results[index] = toEvaluation(raw, minCorrect, true))));
            continue;
          }
        }
        const p = this.runJob({ index, cand, builder, ...(masks ? { masks } : {}), ...(minCorrect !== undefined ? { minCorrect } : {}) });
        if (key !== null) inflight.set(key, p);
        tasks.push(
          p.then((raw) => {
            results[index] = toEvaluation(raw, minCorrect, false);
            if (key !== null && this.cache) {
              const old = this.cache.get(key);
              if (!old || old.earlyExit || !raw.earlyExit) this.cache.set(key, raw);
            }
          }),
        );
      }
      const settled = await Promise.allSettled(tasks);
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      return results;
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      this.cache?.clear();
      await this.shutdown();
    });
  }
}
