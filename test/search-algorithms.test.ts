/** The optimisers one by one: NCS-C against a from-the-spec reference, CMA-ES, olmp-released. */
import { describe, it, expect } from 'vitest';
import { Rng } from '../foundation/rng.js';
import {
  clampToBounds,
  createOptimizer,
  runOptimizerSync,
  type EvalResult,
} from '../search/index.js';
import { makeBallLinear, makeProblem } from '../search/benchmarks.js';
import { cmaConstants, cmaUpdate, decompose, defaultLambda, sampleDirection, whiten } from '../search/cmaes-math.js';
import { feasible, infeasible, box, drive } from './search-helpers.js';

function referenceNcs(f: (x: number[]) => number, x0: number[], f0: number, lb: number, ub: number, sigma0: number, N: number, budget: number, seed: number) {
  const rng = new Rng(seed);
  const n = x0.length;
  const G = Math.floor(budget / N);
  let pop = Array.from({ length: N }, () => x0.slice());
  let fit = new Array<number>(N).fill(f0);
  const sigma = Array.from({ length: N }, () => new Array<number>(n).fill(sigma0));
  let flags = new Array<number>(N).fill(0);
  let s = 0.1;
  let fstar = f0;
  let xstar = x0.slice();
  const asked: number[][][] = [];
  let replaced = 0;
  let nanFit = 0;
  const D = (a: number[], b: number[], i: number, j: number) => {
    let q = 0;
    let l = 0;
    for (let d = 0; d < n; d++) {
      const c = (sigma[i]![d]! ** 2 + sigma[j]![d]! ** 2) / 2;
      q += (a[d]! - b[d]!) ** 2 / c;
      l += Math.log(c / (sigma[i]![d]! * sigma[j]![d]!));
    }
    return q / 8 + l / 2;
  };
  for (let g = 1; g <= G; g++) {
    const U = pop.map((x, i) =>
      x.map((v, d) => {
        const u = v + sigma[i]![d]! * rng.normal();
        return u < lb ? lb + 1e-4 : u > ub ? ub - 1e-4 : u;
      }),
    );
    asked.push(U);
    const FU = U.map(f);
    let bi = 0;
    for (let i = 1; i < N; i++) if (FU[i]! < FU[bi]!) bi = i;
    if (FU[bi]! < fstar) {
      fstar = FU[bi]!;
      xstar = U[bi]!.slice();
    }
    const nf = FU.map((fu, i) => (fu - fstar) / (fit[i]! - fstar + (fu - fstar)));
    nanFit += nf.filter((v) => Number.isNaN(v)).length;
    const nc = U.map((u, i) => {
      let C = Infinity;
      let Cp = Infinity;
      for (let j = 0; j < N; j++) {
        if (j === i) continue;
        C = Math.min(C, D(pop[i]!, pop[j]!, i, j));
        Cp = Math.min(Cp, D(u, pop[j]!, i, j));
      }
      return Cp / (C + Cp);
    });
    const lambda = Array.from({ length: N }, () => 1 + s * rng.normal());
    s = 0.1 - (0.1 * g) / G;
    pop = pop.map((x, i) => (lambda[i]! * nc[i]! > nf[i]! ? U[i]! : x));
    fit = fit.map((v, i) => (lambda[i]! * nc[i]! > nf[i]! ? FU[i]! : v));
    flags = flags.map((v, i) => (lambda[i]! * nc[i]! > nf[i]! ? (replaced++, v + 1) : v));
    if (g % N === 0) {
      flags.forEach((c, i) => {
        if (c / N > 0.2) sigma[i] = sigma[i]!.map((v) => v / 0.99);
        else if (c / N < 0.2) sigma[i] = sigma[i]!.map((v) => v * 0.99);
      });
      flags = flags.map(() => 0);
    }
  }
  return { asked, xstar, fstar, pop, sigma, replaced, nanFit };
}

describe('NCS-C', () => {
  it('matches a from-the-spec reference bit for bit (replacements, ties, 1/5 rule)', () => {
    const f = (x: number[]) => Math.round(x.reduce((a, v, d) => a + (v - 2 + 0.5 * d) ** 2, 0)); // plateaus → 0/0
    const x0 = [0.001, 0.001, 0.001, 0.001];
    const ref = referenceNcs(f, x0, f(x0), 0, 10, 1, 10, 1600, 42);
    const opt = createOptimizer('ncs', { dimension: 4, bounds: box(4, 0, 10), x0, f0: feasible(f(x0)), seed: 42, budget: 1600, sigma0: 1 });
    const asked = drive(opt, (x) => feasible(f(x)));
    expect(asked.length).toBe(160);
    expect(asked.map((g) => g.map((c) => c.x))).toEqual(ref.asked);
    expect(opt.best()!.x).toEqual(ref.xstar);
    expect(opt.best()!.result.fitness).toBe(ref.fstar);
    const st = opt.state();
    if (st.name !== 'ncs') throw new Error('expected ncs state');
    expect(st.algo.pop).toEqual(ref.pop);
    expect(st.algo.sigma).toEqual(ref.sigma);
    expect(ref.replaced).toBeGreaterThan(100); // unlike the released code, processes do move
    expect(ref.nanFit).toBeGreaterThan(5); // 0/0 normalised fitness (parent and offspring tie the best) occurs
    expect(new Set(st.algo.sigma.map((s) => s[0])).size).toBeGreaterThan(1); // σ adapted per process
  });

  it('solves a constrained problem with a closed-form optimum (min Σx s.t. Σx² ≤ 1)', () => {
    for (const [dim, tol] of [
      [2, 0.01],
      [5, 0.1],
    ] as const) {
      const p = makeBallLinear(dim);
      for (let seed = 1; seed <= 10; seed++) {
        const opt = createOptimizer('ncs', { dimension: dim, bounds: p.bounds, seed, budget: 5000, sigma0: 0.1 });
        const best = runOptimizerSync(opt, (xs) => xs.map((x) => p.evaluate(x)))!;
        expect(best.result.feasible).toBe(true);
        expect(best.result.fitness - p.fopt).toBeGreaterThanOrEqual(0);
        expect(best.result.fitness - p.fopt).toBeLessThan(tol);
        const dist = Math.hypot(...best.x.map((v, d) => v - p.optimum[d]!));
        expect(dist).toBeLessThan(dim === 2 ? 0.15 : 0.5);
      }
    }
  });

  it('finds a feasible point from an infeasible start', () => {
    const p = makeBallLinear(3);
    const x0 = [2, 2, 2];
    const opt = createOptimizer('ncs', { dimension: 3, bounds: p.bounds, x0, f0: p.evaluate(x0), seed: 5, budget: 2000, sigma0: 0.3 });
    const best = runOptimizerSync(opt, (xs) => xs.map((x) => p.evaluate(x)))!;
    expect(best.result.feasible).toBe(true);
    expect(best.result.fitness).toBeLessThan(-1.5);
  });
});

describe('CMA-ES', () => {
  it("has the tutorial's constants: λ = 4 + ⌊3 ln n⌋, weights decreasing and summing to 1, μ_eff in [1, μ]", () => {
    expect([1, 2, 10, 30].map(defaultLambda)).toEqual([4, 6, 10, 14]);
    for (const n of [1, 3, 10, 30]) {
      const k = cmaConstants(n, defaultLambda(n));
      expect(k.mu).toBe(Math.floor(k.lambda / 2));
      expect(k.weights.reduce((a, w) => a + w, 0)).toBeCloseTo(1, 14);
      for (let i = 1; i < k.mu; i++) expect(k.weights[i]!).toBeLessThan(k.weights[i - 1]!);
      expect(k.muEff).toBeGreaterThanOrEqual(1);
      expect(k.muEff).toBeLessThanOrEqual(k.mu);
      expect(k.c1 + k.cMu).toBeLessThanOrEqual(1);
      expect(k.chiN).toBeCloseTo(Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n)), 14);
    }
  });

  it('decomposes C so that B diag(d²) Bᵀ = C, and whiten inverts sampleDirection', () => {
    const C = [
      [4, 1, 0.5],
      [1, 3, 0.2],
      [0.5, 0.2, 2],
    ];
    const { basis, d } = decompose(C);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        let v = 0;
        for (let k = 0; k < 3; k++) v += basis[k]![i]! * d[k]! ** 2 * basis[k]![j]!;
        expect(v).toBeCloseTo(C[i]![j]!, 10);
      }
    }
    const z = [0.3, -1.2, 0.7];
    const y = sampleDirection(basis, d, z);
    // ‖C^(−1/2) y‖ = ‖z‖ (B is orthonormal)
    expect(Math.hypot(...whiten(basis, d, y))).toBeCloseTo(Math.hypot(...z), 10);
  });

  it('a generation whose best steps all point one way moves the mean that way and grows C along it', () => {
    const n = 2;
    const k = cmaConstants(n, 6);
    const m = { mean: [0, 0], sigma: 1, C: [[1, 0], [0, 1]], pSigma: [0, 0], pc: [0, 0], g: 0 };
    const { basis, d } = decompose(m.C);
    const next = cmaUpdate(m, k, [[1, 0], [1, 0], [1, 0]], basis, d);
    expect(next.mean[0]).toBeCloseTo(1, 12);
    expect(next.mean[1]).toBe(0);
    expect(next.C[0]![0]!).toBeGreaterThan(next.C[1]![1]!);
    expect(m.mean).toEqual([0, 0]); // the input is not changed
  });

  it('solves the 10-D sphere and an ill-conditioned ellipsoid (condition 10⁶) far better than random search', () => {
    const sphere = makeProblem('sphere', 10);
    const opt = createOptimizer('cmaes', { dimension: 10, bounds: sphere.bounds, seed: 3, budget: 3000, sigma0: 1 });
    const best = runOptimizerSync(opt, (xs) => xs.map((x) => sphere.evaluate(x)))!;
    expect(best.result.fitness).toBeLessThan(1e-8);
    const ellipsoid = (x: number[]) => x.reduce((a, v, i) => a + 10 ** ((6 * i) / 9) * (v - 1) ** 2, 0);
    const bounds = box(10, -5, 5);
    const cma = runOptimizerSync(createOptimizer('cmaes', { dimension: 10, bounds, seed: 4, budget: 6000, sigma0: 2 }), (xs) => xs.map((x) => feasible(ellipsoid(x))))!;
    const rnd = runOptimizerSync(createOptimizer('random', { dimension: 10, bounds, seed: 4, budget: 6000, sigma0: 2 }), (xs) => xs.map((x) => feasible(ellipsoid(x))))!;
    expect(cma.result.fitness).toBeLessThan(1e-6);
    expect(rnd.result.fitness).toBeGreaterThan(1);
  });

  it('solves a constrained problem with a closed-form optimum (min Σx s.t. Σx² ≤ 1), from an infeasible start too', () => {
    for (const dim of [2, 5]) {
      const p = makeBallLinear(dim);
      for (let seed = 1; seed <= 10; seed++) {
        const opt = createOptimizer('cmaes', { dimension: dim, bounds: p.bounds, seed, budget: 3000, sigma0: 0.3 });
        const best = runOptimizerSync(opt, (xs) => xs.map((x) => p.evaluate(x)))!;
        expect(best.result.feasible).toBe(true);
        expect(best.result.fitness - p.fopt).toBeGreaterThanOrEqual(0);
        expect(best.result.fitness - p.fopt).toBeLessThan(0.01);
      }
    }
    const p = makeBallLinear(3);
    const x0 = [2, 2, 2];
    const opt = createOptimizer('cmaes', { dimension: 3, bounds: p.bounds, x0, f0: p.evaluate(x0), seed: 5, budget: 2000, sigma0: 0.3 });
    const best = runOptimizerSync(opt, (xs) => xs.map((x) => p.evaluate(x)))!;
    expect(best.result.feasible).toBe(true);
    expect(best.result.fitness).toBeLessThan(-1.7);
  });
});

describe('olmp-released', () => {
  it('samples around x0 with σ0·0.99^⌊(g−1)/10⌋, ncs.py draw order, keeps the best feasible strictly better point', () => {
    const n = 3;
    const N = 10;
    const x0 = [0.001, 0.001, 0.001];
    const bounds = box(n, 0, 10);
    // "sparsity": feasible while Σx ≤ 12; infeasible candidates score the 1.1 penalty.
    const evaluate = (x: readonly number[]): EvalResult => {
      const t = x.reduce((a, v) => a + v, 0);
      return t <= 12 ? feasible(1 - t / 30) : infeasible(0.5, t - 12);
    };
    const f0 = evaluate(x0);
    const opt = createOptimizer('olmp-released', { dimension: n, bounds, x0, f0, seed: 961449, budget: 1600 });
    const asked = drive(opt, evaluate);
    expect(asked.length).toBe(160);
    expect(opt.evaluations).toBe(1600);

    const rng = new Rng(961449);
    let sigma = 5;
    let best = { x: x0, f: f0.fitness };
    for (let g = 1; g <= 160; g++) {
      const expected: number[][] = [];
      for (let i = 0; i < N; i++) expected.push(clampToBounds(x0.map((v) => v + sigma * rng.normal()), bounds));
      expect(asked[g - 1]!.map((c) => c.x)).toEqual(expected);
      expect(sigma).toBeCloseTo(5 * 0.99 ** Math.floor((g - 1) / 10), 12);
      for (let i = 0; i < N; i++) rng.normal(); // λ, unused
      const pen = expected.map((x) => {
        const r = evaluate(x);
        return r.feasible ? r.fitness : 1.1;
      });
      const bi = pen.indexOf(Math.min(...pen));
      if (pen[bi]! < best.f) best = { x: expected[bi]!, f: pen[bi]! };
      if (g % 10 === 0) sigma *= 0.99;
    }
    expect(opt.best()!.x).toEqual(best.x);
    expect(opt.best()!.result.fitness).toBe(best.f);
    expect(opt.best()!.result.feasible).toBe(true);
    const st = opt.state();
    if (st.name !== 'olmp-released') throw new Error('expected olmp-released state');
    expect(st.algo.center).toEqual(x0);
    expect(st.rng).toEqual(rng.state()); // the same number of draws
  });

  it('keeps x0 when nothing beats f0, and uses the configurable penalty', () => {
    const x0 = [1, 1];
    const opt = createOptimizer('olmp-released', { dimension: 2, bounds: box(2, 0, 10), x0, f0: feasible(0.05), seed: 1, budget: 200, penalty: 0.01 });
    drive(opt, () => infeasible(5, 1)); // penalised to 0.01 < 0.05: taken, as the released code would
    expect(opt.best()!.result).toEqual(infeasible(5, 1));
    const keep = createOptimizer('olmp-released', { dimension: 2, bounds: box(2, 0, 10), x0, f0: feasible(0.05), seed: 1, budget: 200 });
    drive(keep, (x) => (x[0]! < 0.5 ? feasible(0.06) : infeasible(0, 1)));
    expect(keep.best()).toEqual({ x: x0, result: feasible(0.05) });
  });
});

