/** Shared by the optimiser tests: result constructors, a box, a fitness with plateaus, an ask/tell driver. */
import type { Candidate, EvalResult, Optimizer, OptimizerName, OptimizerOptions } from '../search/index.js';

export const feasible = (fitness: number): EvalResult => ({ fitness, feasible: true, violation: 0 });
export const infeasible = (fitness: number, violation: number): EvalResult => ({ fitness, feasible: false, violation });

export function box(n: number, lo: number, hi: number) {
  return { lower: new Array<number>(n).fill(lo), upper: new Array<number>(n).fill(hi) };
}

/** A fitness with plateaus (ties, so 0/0 in the normalised fitness happens) and a constraint. */
export function bumpy(x: readonly number[]): EvalResult {
  let s = 0;
  let t = 0;
  x.forEach((v, d) => {
    s += (v - 1 - 0.3 * d) ** 2;
    t += v;
  });
  const violation = Math.max(0, t - 4 * x.length);
  return violation > 0 ? infeasible(Math.round(s * 4) / 4, violation) : feasible(Math.round(s * 4) / 4);
}

/** Runs to the end, recording every asked generation. */
export function drive(opt: Optimizer, f: (x: readonly number[]) => EvalResult = bumpy, maxRounds = Infinity): Candidate[][] {
  const asked: Candidate[][] = [];
  let rounds = 0;
  while (!opt.done() && rounds++ < maxRounds) {
    const cs = opt.ask();
    asked.push(cs);
    opt.tell(
      cs,
      cs.map((c) => f(c.x)),
    );
  }
  return asked;
}

export function baseOpts(name: OptimizerName, over: Partial<OptimizerOptions> = {}): OptimizerOptions {
  return { dimension: 3, bounds: box(3, -5, 5), seed: 7, budget: name === 'one-plus-one' ? 120 : 400, ...over };
}

/** Start variants worth covering: uniform start, x0 to evaluate, x0 with f0. */
export function starts(name: OptimizerName): Partial<OptimizerOptions>[] {
  const x0 = [0.5, -1, 2];
  return [{}, { x0 }, { x0, f0: bumpy(x0) }, { seed: 'a string seed', ...(name === 'one-plus-one' ? {} : { popSize: 5 }) }];
}

