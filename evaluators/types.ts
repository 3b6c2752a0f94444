/**
 * Public types of the masked-model evaluators.
 *
 * An evaluator scores candidates against a context: the current network (dense weights and current masks), the
 * frozen DNS magnitude statistics and the evaluation images. Evaluation is stateless: a candidate's result depends
 * only on (context, candidate), so candidates may be evaluated in any order, in parallel, and cached.
 */
import type { Architecture } from '../models/graph.js';
import type { ModelParams, LayerMasks } from '../models/params.js';
import type { MagnitudeStats } from '../models/masks.js';
import type { ImageSet } from '../foundation/data/datasets.js';
import type { BackendInfo } from '../backends/backend.js';

export interface EvaluationContext {
  arch: Architecture;
  /** Dense weights (tfjs layouts), unmasked. */
  params: ModelParams;
  /** Current masks: the state every candidate starts from (DNS hysteresis reads them). */
  masks: LayerMasks[];
  /** Frozen magnitude statistics per prunable layer. */
  stats: MagnitudeStats[];
  /** Evaluation images (NHWC float32) and labels. */
  data: ImageSet;
}

/** OLMP candidate: one crate per prunable layer; `null` (or a crate of exactly 0, spec §2) keeps the layer's current masks. */
export interface CratesCandidate {
  kind: 'crates';
  crates: (number | null)[];
}

/**
 * The candidate kinds, keyed by `kind`. Other modules add kinds by declaration merging, e.g.
 *
 *   declare module '../evaluators/types.js' {
 *     interface CandidateKinds { channels: { kind: 'channels'; keep: number[][] } }
 *   }
 *
 * and register a {@link MaskBuilder} for them (see builders.ts).
 */
/** Explicit masks (e.g. the OLMP pipeline's stateful evaluation, where each candidate's masks follow from the previous one's). */
export interface MasksCandidate {
  kind: 'masks';
  masks: LayerMasks[];
}

export interface CandidateKinds {
  crates: CratesCandidate;
  masks: MasksCandidate;
}
export type Candidate = CandidateKinds[keyof CandidateKinds];

export interface Evaluation {
  /** correct / evaluated: accuracy over the images actually run (= correct / count unless earlyExit). */
  accuracy: number;
  /** Correct top-1 predictions among the images run. */
  correct: number;
  /** Images actually run (< count only when earlyExit). */
  evaluated: number;
  /** Images in the evaluation set. */
  count: number;
  /** Non-zero mask entries (weights + biases) of all prunable layers. */
  nonZero: number;
  /** Total prunable parameters / nonZero. */
  compression: number;
  /** MACs per image of the masked model (non-zero weights only). */
  macs: number;
  /** correct >= minCorrect (always true without minCorrect). */
  feasible: boolean;
  /**
   * 0 when feasible; otherwise how far the accuracy upper bound falls short of the floor, in accuracy units:
   * (minCorrect − (correct + count − evaluated)) / count.
   */
  violation: number;
  /** Stopped before the end because the floor had become unreachable (never set on a feasible candidate). */
  earlyExit: boolean;
  /** Result came from the cache (or from an identical candidate earlier in the same call): nothing was run. */
  cacheHit: boolean;
}

export interface EvaluateOptions {
  /**
   * Accuracy floor in correct images. A candidate stops as soon as its errors make the floor unreachable
   * (checked after every batch): infeasible, earlyExit true. Without it every image is evaluated.
   */
  minCorrect?: number;
}

export interface Evaluator {
  /** Installs a new context (new version); later evaluate() calls use it. Waits for evaluations in flight. */
  setContext(ctx: EvaluationContext): Promise<void>;
  /** Results in candidate order. */
  evaluate(cands: readonly Candidate[], opts?: EvaluateOptions): Promise<Evaluation[]>;
  close(): Promise<void>;
  readonly backend: BackendInfo;
}

/**
 * Which forward path runs each prunable layer: 'auto' picks the sparse (JS CSR, float64) path per layer below the
 * measured density crossover and the dense (tfjs fused conv2d/matMul) path above it; 'sparse' / 'dense' force one.
 */
export type PathMode = 'auto' | 'sparse' | 'dense';

export interface CommonEvaluatorOptions {
  /** Forward path selection (default 'auto'). */
  path?: PathMode;
  /** Images per batch; early exit is checked after each batch (default 1000). */
  batchSize?: number;
  /** Result cache: false disables it, a number sets its capacity in entries (default 100,000). */
  cache?: boolean | number;
}

/** Builds a candidate's masks. Pure: the masks depend only on (context, candidate). */
export interface MaskBuilder<C extends { kind: string } = { kind: string }> {
  kind: C['kind'];
  /** Throws a UsageError naming the problem when the candidate does not fit the context. */
  validate?(ctx: EvaluationContext, cand: C): void;
  build(ctx: EvaluationContext, cand: C): LayerMasks[];
  /**
   * Optional exact and cheap identity of build()'s masks within one context: equal keys ⇔ equal masks. When absent,
   * the calling thread builds the masks and hashes them (FNV-1a 64) for the cache, and ships them to the worker.
   */
  key?(ctx: PreparedContext, cand: C): string;
  /**
   * URL (or path) of a compiled JS module that registers this builder when imported. When set, pool workers import
   * it and build the masks themselves, and tasks carry only the candidate. Without it, masks are built in the
   * calling thread and shipped.
   */
  workerModule?: string;
}

/** A context plus per-context memoised helpers (sorted magnitudes and the like), built once per setContext. */
export interface PreparedContext {
  readonly ctx: EvaluationContext;
  readonly version: number;
  /** Value computed once per context under `name`. */
  memo<T>(name: string, make: () => T): T;
}
