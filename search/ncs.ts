import { UsageError } from '../foundation/errors.js';
import { BaseOptimizer } from './base.js';
import { compareResults, decodeResult, encodeResult } from './compare.js';
import {
  LAMBDA_RANGE,
  clampToBounds,
  correlations,
  lambdaSigmaAfter,
  normalisedCorrelation,
  normalisedFitness,
  shouldReplace,
  successRuleUpdate,
} from './ncs-math.js';
import type { EvalResult, InitKind, NcsAlgoState, NcsState, ResolvedOptions } from './types.js';

/**
 * Scalar fitness NCS works on, consistent with compareResults (feasibility-first).
 *
 * Choice: within one generation let W be the largest finite fitness among the feasible results in play
 * (the processes x_i, the offspring u_i and the best so far), or 0 if none is feasible. A feasible result keeps
 * its fitness; an infeasible one scores W + violation (at least a hair above W). Every feasible result then
 * scores ≤ W < every infeasible one, and infeasible ones are ordered by violation, so the scalar agrees with
 * compareResults on everything NCS compares in that generation. NCS only uses differences and ratios of
 * fitness (f̃′ is invariant to shifting all values), so the choice of W only sets how far infeasible points sit
 * above the feasible ones. W is recomputed from the stored raw results every generation, so state holds only
 * raw results. With no constraints (all feasible) the scalar is the fitness itself.
 */
export function scalariseFeasibilityFirst(results: readonly EvalResult[]): (r: EvalResult) => number {
  let w = -Infinity;
  for (const r of results) if (r.feasible && Number.isFinite(r.fitness) && r.fitness > w) w = r.fitness;
  if (w === -Infinity) w = 0;
  const hair = 1e-12 * Math.max(1, Math.abs(w));
  return (r) => (r.feasible ? r.fitness : w + (r.violation > hair ? r.violation : Number.isNaN(r.violation) ? NaN : hair));
}

/**
 * NCS-C (Tang, Yang, Yao, IEEE JSAC 2016) as spec §4 describes it, without ncs.py's `f(u) < 0` gate.
 * N search processes, each with its own per-dimension σ, one Gaussian offspring each per generation.
 *
 * Start: with x0 and f0, N copies of x0 with result f0 (no evaluation, as ncs.py); with x0 only, the first
 * ask() is [x0] alone and its result is copied to the N processes; without x0, the first ask() is N points
 * uniform in the bounds (original NCS-C). Those start-up evaluations count against the budget;
 * the number of NCS generations is gmax = ⌊(budget − start-up evaluations)/N⌋, which sets s's schedule.
 *
 * RNG order per generation: N×n normals for the offspring (process-major) in ask(), then N normals for λ in
 * tell(), as ncs.py.
 */
export class NcsOptimizer extends BaseOptimizer<'ncs', NcsAlgoState> {
  private a: NcsAlgoState;

  constructor(o: ResolvedOptions, state?: NcsState) {
    super('ncs', o, state);
    if (state) {
      this.a = structuredClone(state.algo);
      return;
    }
    const N = o.popSize;
    const init: InitKind = o.x0 ? (o.f0 ? 'given' : 'x0') : 'uniform';
    const initEvals = init === 'given' ? 0 : init === 'x0' ? 1 : N;
    const gmax = Math.floor((o.budget - initEvals) / N);
    if (gmax < 1) {
      throw new UsageError(
        `ncs: budget ${o.budget} leaves no generation; needs at least ${initEvals + N} (${initEvals} to start + popSize ${N})`,
      );
    }
    this.a = {
      phase: init === 'given' ? 'search' : 'init',
      init,
      pop: init === 'given' ? Array.from({ length: N }, () => o.x0!.slice()) : [],
      popResults: init === 'given' ? Array.from({ length: N }, () => encodeResult(o.f0!)) : [],
      sigma: Array.from({ length: N }, () => o.sigma0.slice()),
      flags: new Array<number>(N).fill(0),
      lambdaSigma: LAMBDA_RANGE,
      g: 0,
      gmax,
    };
    if (init === 'given') this.offerBest(o.x0!, o.f0!);
  }

  protected propose(): number[][] {
    const a = this.a;
    if (a.phase === 'init') {
      if (a.init === 'x0') return [this.o.x0!.slice()];
      return Array.from({ length: this.o.popSize }, () => this.uniformPoint());
    }
    const n = this.dimension;
    return a.pop.map((x, i) => {
      const s = a.sigma[i]!;
      const u = new Array<number>(n);
      for (let d = 0; d < n; d++) u[d] = x[d]! + s[d]! * this.rng.normal();
      return clampToBounds(u, this.o.bounds);
    });
  }

  protected absorb(xs: number[][], rs: EvalResult[]): void {
    const a = this.a;
    const N = this.o.popSize;
    if (a.phase === 'init') {
      if (a.init === 'x0') {
        a.pop = Array.from({ length: N }, () => xs[0]!.slice());
        a.popResults = Array.from({ length: N }, () => encodeResult(rs[0]!));
      } else {
        a.pop = xs.map((x) => x.slice());
        a.popResults = rs.map(encodeResult);
      }
      xs.forEach((x, i) => this.offerBest(x, rs[i]!));
      a.phase = 'search';
      return;
    }

    // 2. best so far takes the best offspring if strictly better (first one on ties, as np.argmin).
    let bi = 0;
    for (let i = 1; i < rs.length; i++) if (compareResults(rs[i]!, rs[bi]!) < 0) bi = i;
    this.offerBest(xs[bi]!, rs[bi]!);

    // 3. normalised fitness on the feasibility-first scalar.
    const popRes = a.popResults.map(decodeResult);
    const best = this.bestPoint!.result;
    const scal = scalariseFeasibilityFirst([...popRes, ...rs, best]);
    const fstar = scal(best);
    const normFit = rs.map((r, i) => normalisedFitness(scal(popRes[i]!), scal(r), fstar));

    // 4. correlation (Bhattacharyya), normalised.
    const { c, cTrial } = correlations(a.pop, xs, a.sigma);
    const normCorr = c.map((ci, i) => normalisedCorrelation(ci, cTrial[i]!));

    // 5. λ_i = 1 + s·N(0,1) with s of the previous generation; then s for the next.
    const lambda = new Array<number>(N);
    for (let i = 0; i < N; i++) lambda[i] = 1 + a.lambdaSigma * this.rng.normal();
    a.g += 1;
    a.lambdaSigma = lambdaSigmaAfter(a.g, a.gmax);

    // 6. replacement iff λ·ñ′ > f̃′ (NaN ⇒ no).
    for (let i = 0; i < N; i++) {
      if (shouldReplace(lambda[i]!, normCorr[i]!, normFit[i]!)) {
        a.pop[i] = xs[i]!.slice();
        a.popResults[i] = encodeResult(rs[i]!);
        a.flags[i]! += 1;
      }
    }

    // 7. 1/5 success rule every epoch generations.
    if (a.g % this.o.epoch === 0) {
      successRuleUpdate(a.sigma, a.flags, this.o.epoch, this.o.r);
      a.flags.fill(0);
    }
  }

  protected isDone(): boolean {
    return this.a.phase === 'search' && this.a.g >= this.a.gmax;
  }

  protected algoState(): NcsAlgoState {
    return this.a;
  }
}
