import { UsageError } from '../foundation/errors.js';
import { BaseOptimizer } from './base.js';
import { cmaConstants, cmaUpdate, decompose, sampleDirection, type CmaConstants } from './cmaes-math.js';
import { compareResults } from './compare.js';
import { clampToBounds } from './ncs-math.js';
import type { CmaesAlgoState, CmaesState, EvalResult, InitKind, ResolvedOptions } from './types.js';

/**
 * CMA-ES, the (μ/μ_w, λ) covariance matrix adaptation evolution strategy with the tutorial's default parameters
 * (search/cmaes-math.ts). λ = popSize (default 4 + ⌊3 ln n⌋), μ = ⌊λ/2⌋. Candidates are ranked feasibility-first
 * (compareResults), so a feasible point always outranks an infeasible one and infeasible ones rank by violation.
 * Points outside the box are clamped into it (as the other optimisers do) and the clamped point is both evaluated
 * and used in the update. The initial distribution is N(x0, σ² C) with σ = max σ0_d and C = diag((σ0_d/σ)²);
 * σ is capped so that no coordinate's step exceeds twice its box width.
 *
 * Start: x0 with f0 → the mean, nothing to evaluate; x0 alone → evaluated first, then the mean; no x0 → a uniform
 * point as the mean (not evaluated). Generations: ⌊(budget − start-up evaluations)/λ⌋.
 */
export class CmaesOptimizer extends BaseOptimizer<'cmaes', CmaesAlgoState> {
  private a: CmaesAlgoState;
  private readonly k: CmaConstants;
  /** The eigendecomposition of C at generation g (not saved: recomputed from C after a restore, identically). */
  private decomposition: { g: number; basis: number[][]; d: number[] } | null = null;

  constructor(o: ResolvedOptions, state?: CmaesState) {
    super('cmaes', o, state);
    const n = o.dimension;
    const lambda = o.popSize;
    if (lambda < 2) throw new UsageError(`cmaes: popSize must be >= 2, got ${lambda}`);
    this.k = cmaConstants(n, lambda);
    if (state) {
      this.a = structuredClone(state.algo);
      return;
    }
    const init: InitKind = o.x0 ? (o.f0 ? 'given' : 'x0') : 'uniform';
    const initEvals = init === 'x0' ? 1 : 0;
    const gmax = Math.floor((o.budget - initEvals) / lambda);
    if (gmax < 1) throw new UsageError(`cmaes: budget ${o.budget} leaves no generation; needs at least ${initEvals + lambda} (${initEvals} to start + popSize ${lambda})`);
    const sigma = Math.max(...o.sigma0);
    this.a = {
      phase: init === 'x0' ? 'init' : 'search',
      init,
      mean: o.x0 ? o.x0.slice() : null,
      sigma,
      C: o.sigma0.map((s, i) => o.sigma0.map((_, j) => (i === j ? (s / sigma) ** 2 : 0))),
      pSigma: new Array<number>(n).fill(0),
      pc: new Array<number>(n).fill(0),
      g: 0,
      gmax,
    };
    if (init === 'given') this.offerBest(o.x0!, o.f0!);
  }

  protected propose(): number[][] {
    const a = this.a;
    if (a.phase === 'init') return [a.mean!.slice()];
    if (!a.mean) a.mean = this.uniformPoint();
    const { basis, d } = this.decomposed();
    const xs: number[][] = [];
    for (let i = 0; i < this.k.lambda; i++) {
      const z = Array.from({ length: this.dimension }, () => this.rng.normal());
      const y = sampleDirection(basis, d, z);
      xs.push(clampToBounds(a.mean.map((m, j) => m + a.sigma * y[j]!), this.o.bounds));
    }
    return xs;
  }

  protected absorb(xs: number[][], rs: EvalResult[]): void {
    const a = this.a;
    xs.forEach((x, i) => this.offerBest(x, rs[i]!));
    if (a.phase === 'init') {
      a.phase = 'search';
      return;
    }
    const order = xs.map((_, i) => i).sort((i, j) => compareResults(rs[i]!, rs[j]!) || i - j);
    const mean = a.mean!;
    const steps = order.slice(0, this.k.mu).map((i) => xs[i]!.map((v, j) => (v - mean[j]!) / a.sigma));
    const { basis, d } = this.decomposed();
    const next = cmaUpdate({ mean, sigma: a.sigma, C: a.C, pSigma: a.pSigma, pc: a.pc, g: a.g }, this.k, steps, basis, d);
    const { lower, upper } = this.o.bounds;
    // No coordinate's step wider than twice its box: beyond that every sample lands on the clamp.
    const cap = Math.min(...next.C.map((row, i) => (2 * (upper[i]! - lower[i]!)) / Math.sqrt(Math.max(row[i]!, 1e-300))));
    const finite = Number.isFinite(next.sigma) && next.C.every((row) => row.every(Number.isFinite)) && next.mean.every(Number.isFinite);
    if (finite) {
      a.mean = next.mean;
      a.sigma = Math.min(next.sigma, cap);
      a.C = next.C;
      a.pSigma = next.pSigma;
      a.pc = next.pc;
    } else {
      // Degenerate numerics (a collapsed or exploded distribution): restart the shape around the best point.
      a.mean = this.bestPoint ? this.bestPoint.x.slice() : mean;
      a.sigma = Math.max(...this.o.sigma0);
      a.C = this.o.sigma0.map((s, i) => this.o.sigma0.map((_, j) => (i === j ? (s / a.sigma) ** 2 : 0)));
      a.pSigma = a.pSigma.map(() => 0);
      a.pc = a.pc.map(() => 0);
    }
    a.g = next.g;
  }

  private decomposed(): { basis: number[][]; d: number[] } {
    if (!this.decomposition || this.decomposition.g !== this.a.g) this.decomposition = { g: this.a.g, ...decompose(this.a.C) };
    return this.decomposition;
  }

  protected isDone(): boolean {
    return this.a.phase === 'search' && this.a.g >= this.a.gmax;
  }

  protected algoState(): CmaesAlgoState {
    return this.a;
  }
}
