import { Rng, restoreStream, type RandomStream } from '../foundation/rng.js';
import { checkResult, compareResults, copyResult, decodeResult, encodeResult } from './compare.js';
import { optionsToJson } from './options.js';
import type {
  BestPoint,
  Candidate,
  EvalResult,
  Optimizer,
  OptimizerName,
  OptimizerState,
  ResolvedOptions,
  StateCommon,
} from './types.js';
import { STATE_FORMAT, STATE_VERSION } from './types.js';

function copyCandidates(cs: readonly Candidate[]): Candidate[] {
  return cs.map((c) => ({ id: c.id, x: c.x.slice() }));
}

/**
 * Bookkeeping shared by every optimiser: the Rng, candidate ids, the pending generation, the evaluation and
 * generation counters, the best point, and (de)serialisation. Subclasses supply propose/absorb/isDone.
 */
export abstract class BaseOptimizer<N extends OptimizerName, A> implements Optimizer {
  readonly name: N;
  readonly dimension: number;
  readonly budget: number;
  protected readonly o: ResolvedOptions;
  protected rng: RandomStream;
  protected nextId = 0;
  protected pending: Candidate[] | null = null;
  protected evals = 0;
  protected gens = 0;
  protected bestPoint: BestPoint | null = null;

  protected constructor(name: N, o: ResolvedOptions, state?: StateCommon<N, A>) {
    this.name = name;
    this.o = o;
    this.dimension = o.dimension;
    this.budget = o.budget;
    if (state) {
      this.rng = restoreStream(structuredClone(state.rng));
      this.nextId = state.nextId;
      this.pending = state.pending ? copyCandidates(state.pending) : null;
      this.evals = state.evaluations;
      this.gens = state.generation;
      this.bestPoint = state.best ? { x: state.best.x.slice(), result: decodeResult(state.best.result) } : null;
    } else {
      this.rng = o.stream ?? new Rng(o.seed);
    }
  }

  /** Points of the next generation (called only when not done and nothing is pending). */
  protected abstract propose(): number[][];
  /** Takes in the results of the generation just told, in the order propose() returned the points. */
  protected abstract absorb(xs: number[][], results: EvalResult[]): void;
  /** True when no further generation fits in the budget. */
  protected abstract isDone(): boolean;
  /** The algorithm-specific part of state(), as plain JSON. */
  protected abstract algoState(): A;

  get evaluations(): number {
    return this.evals;
  }

  get generation(): number {
    return this.gens;
  }

  ask(): Candidate[] {
    if (this.pending) return copyCandidates(this.pending);
    if (this.isDone()) return [];
    const xs = this.propose();
    if (xs.length === 0) return [];
    this.pending = xs.map((x) => ({ id: this.nextId++, x }));
    return copyCandidates(this.pending);
  }

  tell(candidates: Candidate[], results: EvalResult[]): void {
    const pending = this.pending;
    if (!pending) throw new Error(`${this.name}: tell() without a pending ask()`);
    if (!Array.isArray(candidates) || !Array.isArray(results) || candidates.length !== results.length) {
      throw new Error(`${this.name}: tell() needs as many results as candidates`);
    }
    if (candidates.length !== pending.length) {
      throw new Error(`${this.name}: tell() got ${candidates.length} candidates, the pending generation has ${pending.length}`);
    }
    const byId = new Map<number, number>();
    candidates.forEach((c, i) => byId.set(c.id, i));
    const ordered = pending.map((p) => {
      const i = byId.get(p.id);
      if (i === undefined) throw new Error(`${this.name}: tell() is missing candidate id ${p.id} of the pending generation`);
      return checkResult(results[i], `${this.name}: result for candidate ${p.id}`);
    });
    this.pending = null;
    this.evals += ordered.length;
    this.gens += 1;
    this.absorb(
      pending.map((p) => p.x),
      ordered,
    );
  }

  best(): BestPoint | null {
    return this.bestPoint ? { x: this.bestPoint.x.slice(), result: copyResult(this.bestPoint.result) } : null;
  }

  done(): boolean {
    return this.pending === null && this.isDone();
  }

  /** Makes (x, r) the best point if it is strictly better (feasibility-first) than the current one. */
  protected offerBest(x: readonly number[], r: EvalResult): boolean {
    if (this.bestPoint && compareResults(r, this.bestPoint.result) >= 0) return false;
    this.bestPoint = { x: x.slice(), result: copyResult(r) };
    return true;
  }

  /** A point drawn uniformly in the bounds (one uniform per dimension, in order). */
  protected uniformPoint(): number[] {
    const { lower, upper } = this.o.bounds;
    const x = new Array<number>(this.dimension);
    for (let d = 0; d < this.dimension; d++) x[d] = lower[d]! + this.rng.uniform() * (upper[d]! - lower[d]!);
    return x;
  }

  state(): OptimizerState {
    const s: StateCommon<N, A> = {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      name: this.name,
      options: optionsToJson(this.o),
      rng: this.rng.state(),
      nextId: this.nextId,
      evaluations: this.evals,
      generation: this.gens,
      pending: this.pending ? copyCandidates(this.pending) : null,
      best: this.bestPoint ? { x: this.bestPoint.x.slice(), result: encodeResult(this.bestPoint.result) } : null,
      algo: structuredClone(this.algoState()),
    };
    // N and A are tied together by each subclass (NcsOptimizer is BaseOptimizer<'ncs', NcsAlgoState>, ...).
    return s as unknown as OptimizerState;
  }
}
