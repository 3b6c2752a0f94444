/**
 * Test problems for the optimisers (tests and bench/search.ts). The unconstrained ones have their optimum
 * shifted away from the centre of the box (a fixed, seeded shift per function and dimension), so starting at
 * the centre is not trivially optimal. All have minimum value 0 at the shift.
 */
import { Rng } from '../foundation/rng.js';
import type { Bounds, EvalResult } from './types.js';

export type BenchmarkName = 'sphere' | 'rastrigin' | 'ackley';
export const BENCHMARK_NAMES: readonly BenchmarkName[] = ['sphere', 'rastrigin', 'ackley'];

export interface Problem {
  name: string;
  dimension: number;
  bounds: Bounds;
  /** A minimiser and the minimum. */
  optimum: number[];
  fopt: number;
  evaluate(x: readonly number[]): EvalResult;
}

const HALF_WIDTH: Record<BenchmarkName, number> = { sphere: 5, rastrigin: 5.12, ackley: 32.768 };

export function sphere(z: readonly number[]): number {
  let s = 0;
  for (const v of z) s += v * v;
  return s;
}

export function rastrigin(z: readonly number[]): number {
  let s = 10 * z.length;
  for (const v of z) s += v * v - 10 * Math.cos(2 * Math.PI * v);
  return s;
}

export function ackley(z: readonly number[]): number {
  const n = z.length;
  let sq = 0;
  let cs = 0;
  for (const v of z) {
    sq += v * v;
    cs += Math.cos(2 * Math.PI * v);
  }
  return -20 * Math.exp(-0.2 * Math.sqrt(sq / n)) - Math.exp(cs / n) + 20 + Math.E;
}

const FNS: Record<BenchmarkName, (z: readonly number[]) => number> = { sphere, rastrigin, ackley };

/** Shift in [−0.2w, 0.2w] per coordinate (w = box width), drawn from Rng(`prunus-bench:<name>:<dim>`). */
export function shiftFor(name: BenchmarkName, dimension: number): number[] {
  const rng = new Rng(`prunus-bench:${name}:${dimension}`);
  const w = 2 * HALF_WIDTH[name];
  return Array.from({ length: dimension }, () => 0.4 * w * (rng.uniform() - 0.5));
}

/** The shifted unconstrained problem f(x − o) on [−h, h]^n. Every point is feasible. */
export function makeProblem(name: BenchmarkName, dimension: number): Problem {
  const f = FNS[name];
  const h = HALF_WIDTH[name];
  const o = shiftFor(name, dimension);
  return {
    name,
    dimension,
    bounds: { lower: new Array<number>(dimension).fill(-h), upper: new Array<number>(dimension).fill(h) },
    optimum: o,
    fopt: 0,
    evaluate(x) {
      const z = x.map((v, d) => v - o[d]!);
      return { fitness: f(z), feasible: true, violation: 0 };
    },
  };
}

/**
 * Constrained: minimise Σx subject to Σx² ≤ 1 on [−2, 2]^n. The unconstrained minimum (the corner −2) is
 * infeasible; the optimum is x = −1/√n in every coordinate, value −√n, on the constraint boundary.
 * Violation = Σx² − 1 when positive.
 */
export function makeBallLinear(dimension: number): Problem {
  const v = -1 / Math.sqrt(dimension);
  return {
    name: 'ball-linear',
    dimension,
    bounds: { lower: new Array<number>(dimension).fill(-2), upper: new Array<number>(dimension).fill(2) },
    optimum: new Array<number>(dimension).fill(v),
    fopt: -Math.sqrt(dimension),
    evaluate(x) {
      let s = 0;
      let q = 0;
      for (const e of x) {
        s += e;
        q += e * e;
      }
      const violation = Math.max(0, q - 1);
      return { fitness: s, feasible: violation === 0, violation };
    },
  };
}
