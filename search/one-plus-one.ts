import { BaseOptimizer } from './base.js';
import { compareResults, decodeResult, encodeResult } from './compare.js';
import { clampToBounds } from './ncs-math.js';
import type { EvalResult, InitKind, OnePlusOneAlgoState, OnePlusOneState, ResolvedOptions } from './types.js';

/**
 * (1+1)-ES with the 1/5 success rule in its per-step form (Kern et al. 2004; Auger & Hansen):
 * one offspring y = clamp(x + σ⊙z) per ask(); y replaces the parent unless it is worse (compareResults ≤ 0,
 * so the search drifts on plateaus); σ *= exp((success − 1/5)/d) with success = "strictly better than the
 * parent" and d = `damping` (default √(n+1)), so σ is stationary at a 1/5 success rate and shrinks on plateaus;
 * σ_d is capped at the box width ub_d − lb_d.
 *
 * Start: x0 with f0, x0 evaluated first, or without x0 a uniform point drawn and evaluated first.
 */
export class OnePlusOne extends BaseOptimizer<'one-plus-one', OnePlusOneAlgoState> {
  private a: OnePlusOneAlgoState;

  constructor(o: ResolvedOptions, state?: OnePlusOneState) {
    super('one-plus-one', o, state);
    if (state) {
      this.a = structuredClone(state.algo);
      return;
    }
    const init: InitKind = o.x0 ? (o.f0 ? 'given' : 'x0') : 'uniform';
    this.a = {
      phase: init === 'given' ? 'search' : 'init',
      init,
      parent: o.x0 ? o.x0.slice() : null,
      parentResult: init === 'given' ? encodeResult(o.f0!) : null,
      sigma: o.sigma0.slice(),
    };
    if (init === 'given') this.offerBest(o.x0!, o.f0!);
  }

  protected propose(): number[][] {
    const a = this.a;
    if (a.phase === 'init') {
      if (!a.parent) a.parent = this.uniformPoint();
      return [a.parent.slice()];
    }
    const p = a.parent!;
    const y = new Array<number>(this.dimension);
    for (let d = 0; d < this.dimension; d++) y[d] = p[d]! + a.sigma[d]! * this.rng.normal();
    return [clampToBounds(y, this.o.bounds)];
  }

  protected absorb(xs: number[][], rs: EvalResult[]): void {
    const a = this.a;
    const x = xs[0]!;
    const r = rs[0]!;
    this.offerBest(x, r);
    if (a.phase === 'init') {
      a.parentResult = encodeResult(r);
      a.phase = 'search';
      return;
    }
    const c = compareResults(r, decodeResult(a.parentResult!));
    if (c <= 0) {
      a.parent = x.slice();
      a.parentResult = encodeResult(r);
    }
    const factor = Math.exp(((c < 0 ? 1 : 0) - 0.2) / this.o.damping);
    const { lower, upper } = this.o.bounds;
    // Capped at the box width: a wider step only lands on the clamp.
    for (let d = 0; d < a.sigma.length; d++) a.sigma[d] = Math.min(a.sigma[d]! * factor, upper[d]! - lower[d]!);
  }

  protected isDone(): boolean {
    return this.evals >= this.o.budget;
  }

  protected algoState(): OnePlusOneAlgoState {
    return this.a;
  }
}
