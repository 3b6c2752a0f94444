import { UsageError } from '../foundation/errors.js';
import { BaseOptimizer } from './base.js';
import { LAMBDA_RANGE, clampToBounds, lambdaSigmaAfter } from './ncs-math.js';
import type { EvalResult, InitKind, OlmpReleasedAlgoState, OlmpReleasedState, ResolvedOptions } from './types.js';

/**
 * What the released OLMP ncs.py effectively does (spec §4 "Consequence"). Its replacement test also requires
 * f(u) < 0, and fitness (sparsity, or the 1.1 penalty) is never negative, so no process is ever replaced:
 *
 * - every generation draws N samples u_i = clamp(x0 + σ⊙z_i) around the *starting* point;
 * - σ = σ0·r^⌊(g−1)/epoch⌋: the 1/5 rule with zero successes multiplies σ by r after every epoch generations
 *   (done here by repeated multiplication, as ncs.py);
 * - fitness is penalised: feasible → fitness, infeasible → `penalty` (1.1); the best so far takes the first
 *   sample with the lowest penalised fitness if it is strictly lower than the incumbent's, which starts as x0's.
 *   best() is therefore by penalised fitness, not compareResults (they agree while feasible fitness < penalty);
 * - RNG order per generation: N×n normals (sample-major) in ask(), then N normals for the unused λ in tell(),
 *   so the number of draws matches ncs.py.
 *
 * Start: as NcsOptimizer, except without x0 a single uniform point is drawn and evaluated first (ncs.py always
 * starts from copies of one point). gmax = ⌊(budget − start-up evaluations)/N⌋ (budget 1600, N 10, f0 given:
 * 160 generations, as ncs.py's FES counter).
 */
export class OlmpReleasedOptimizer extends BaseOptimizer<'olmp-released', OlmpReleasedAlgoState> {
  private a: OlmpReleasedAlgoState;

  constructor(o: ResolvedOptions, state?: OlmpReleasedState) {
    super('olmp-released', o, state);
    if (state) {
      this.a = structuredClone(state.algo);
      return;
    }
    const N = o.popSize;
    const init: InitKind = o.x0 ? (o.f0 ? 'given' : 'x0') : 'uniform';
    const initEvals = init === 'given' ? 0 : 1;
    const gmax = Math.floor((o.budget - initEvals) / N);
    if (gmax < 1) {
      throw new UsageError(
        `olmp-released: budget ${o.budget} leaves no generation; needs at least ${initEvals + N} (${initEvals} to start + popSize ${N})`,
      );
    }
    this.a = {
      phase: init === 'given' ? 'search' : 'init',
      init,
      center: o.x0 ? o.x0.slice() : null,
      sigma: o.sigma0.slice(),
      lambdaSigma: LAMBDA_RANGE,
      g: 0,
      gmax,
    };
    if (init === 'given') this.bestPoint = { x: o.x0!.slice(), result: { ...o.f0! } };
  }

  /** The released scripts' fitness: feasible → fitness, infeasible → penalty. */
  penalised(r: EvalResult): number {
    return r.feasible ? r.fitness : this.o.penalty;
  }

  protected propose(): number[][] {
    const a = this.a;
    if (a.phase === 'init') {
      if (!a.center) a.center = this.uniformPoint();
      return [a.center.slice()];
    }
    const n = this.dimension;
    const c = a.center!;
    const out: number[][] = [];
    for (let i = 0; i < this.o.popSize; i++) {
      const u = new Array<number>(n);
      for (let d = 0; d < n; d++) u[d] = c[d]! + a.sigma[d]! * this.rng.normal();
      out.push(clampToBounds(u, this.o.bounds));
    }
    return out;
  }

  protected absorb(xs: number[][], rs: EvalResult[]): void {
    const a = this.a;
    if (a.phase === 'init') {
      this.bestPoint = { x: xs[0]!.slice(), result: { ...rs[0]! } };
      a.phase = 'search';
      return;
    }
    let bi = 0;
    let bf = this.penalised(rs[0]!);
    for (let i = 1; i < rs.length; i++) {
      const f = this.penalised(rs[i]!);
      if (f < bf || (Number.isNaN(bf) && !Number.isNaN(f))) {
        bi = i;
        bf = f;
      }
    }
    if (bf < this.penalised(this.bestPoint!.result)) this.bestPoint = { x: xs[bi]!.slice(), result: { ...rs[bi]! } };
    // λ is drawn and never used (nothing passes the f(u) < 0 gate); drawn to keep ncs.py's RNG order.
    for (let i = 0; i < this.o.popSize; i++) this.rng.normal();
    a.g += 1;
    a.lambdaSigma = lambdaSigmaAfter(a.g, a.gmax);
    if (a.g % this.o.epoch === 0) {
      // 1/5 rule with a success rate of 0 < 0.2: σ *= r.
      for (let d = 0; d < a.sigma.length; d++) a.sigma[d] = a.sigma[d]! * this.o.r;
    }
  }

  protected isDone(): boolean {
    return this.a.phase === 'search' && this.a.g >= this.a.gmax;
  }

  protected algoState(): OlmpReleasedAlgoState {
    return this.a;
  }
}
