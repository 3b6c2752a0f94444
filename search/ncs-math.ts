/**
 * The arithmetic of NCS (Tang, Yang, Yao 2016) as pure functions, so each can be tested alone.
 * Formulas follow the spec (olmp.md §4) and the released ncs.py.
 */
import type { Bounds } from './types.js';

/** Distance kept from a violated bound by the clamp (ncs.py: 0.0001). */
export const CLAMP_MARGIN = 1e-4;

/** ncs.py's clamp: x < lb → lb + 1e-4, x > ub → ub − 1e-4, otherwise unchanged. Returns a new array. */
export function clampToBounds(x: readonly number[], bounds: Bounds): number[] {
  const out = new Array<number>(x.length);
  for (let d = 0; d < x.length; d++) {
    const v = x[d]!;
    const lb = bounds.lower[d]!;
    const ub = bounds.upper[d]!;
    out[d] = v < lb ? lb + CLAMP_MARGIN : v > ub ? ub - CLAMP_MARGIN : v;
  }
  return out;
}

/**
 * Bhattacharyya distance between the diagonal Gaussians N(a, diag σa²) and N(b, diag σb²):
 * D = ⅛ Σ_d (a_d − b_d)²/c_d + ½ Σ_d ln(c_d / (σa_d σb_d)), c_d = (σa_d² + σb_d²)/2.
 * The log term is summed as ncs.py does: ln c − ½(ln σa² + ln σb²).
 */
export function bhattacharyya(a: readonly number[], b: readonly number[], sa: readonly number[], sb: readonly number[]): number {
  let quad = 0;
  let logs = 0;
  for (let d = 0; d < a.length; d++) {
    const s1 = sa[d]! * sa[d]!;
    const s2 = sb[d]! * sb[d]!;
    const c = (s1 + s2) / 2;
    const m = a[d]! - b[d]!;
    quad += (m * m) / c;
    logs += Math.log(c) - 0.5 * (Math.log(s1) + Math.log(s2));
  }
  return quad / 8 + 0.5 * logs;
}

/**
 * Normalised fitness of the offspring: f̃′ = (f(u) − f*) / ((f(x) − f*) + (f(u) − f*)).
 * 0/0 (both equal to the best so far) gives NaN, which never allows a replacement.
 */
export function normalisedFitness(fx: number, fu: number, fstar: number): number {
  const tx = fx - fstar;
  const tu = fu - fstar;
  return tu / (tx + tu);
}

/** Normalised correlation of the offspring: ñ′ = C′/(C + C′) (NaN when both are 0). */
export function normalisedCorrelation(c: number, cTrial: number): number {
  return cTrial / (c + cTrial);
}

/**
 * C_i = min_{j≠i} D(x_i, x_j) and C′_i = min_{j≠i} D(u_i, x_j), using σ_i and σ_j.
 * Requires at least 2 processes.
 */
export function correlations(
  pop: readonly (readonly number[])[],
  trial: readonly (readonly number[])[],
  sigma: readonly (readonly number[])[],
): { c: number[]; cTrial: number[] } {
  const n = pop.length;
  const c = new Array<number>(n).fill(Infinity);
  const cTrial = new Array<number>(n).fill(Infinity);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const dp = bhattacharyya(pop[i]!, pop[j]!, sigma[i]!, sigma[j]!);
      const dt = bhattacharyya(trial[i]!, pop[j]!, sigma[i]!, sigma[j]!);
      if (dp < c[i]!) c[i] = dp;
      if (dt < cTrial[i]!) cTrial[i] = dt;
    }
  }
  return { c, cTrial };
}

/**
 * NCS-C's replacement rule: x_i ← u_i iff λ_i·ñ′_i > f̃′_i. Any NaN makes the comparison false (no replacement).
 * `negativeGate` adds ncs.py's extra condition f(u_i) < 0 (which, with non-negative fitness, never holds).
 */
export function shouldReplace(lambda: number, normCorrTrial: number, normFitTrial: number, negativeGate?: { fu: number }): boolean {
  const ok = lambda * normCorrTrial > normFitTrial;
  return negativeGate ? ok && negativeGate.fu < 0 : ok;
}

/** s after generation g of gmax (ncs.py: range − range·g/(Tmax/N)); s starts at `range` = 0.1. */
export function lambdaSigmaAfter(g: number, gmax: number, range = LAMBDA_RANGE): number {
  return range - (range * g) / gmax;
}

export const LAMBDA_RANGE = 0.1;

/**
 * The 1/5 success rule of NCS, applied in place every `epoch` generations: an individual whose replacement
 * rate flags/epoch is above 0.2 widens (σ /= r), below 0.2 narrows (σ *= r), exactly 0.2 keeps σ.
 */
export function successRuleUpdate(sigma: number[][], flags: readonly number[], epoch: number, r: number): void {
  for (let i = 0; i < sigma.length; i++) {
    const rate = flags[i]! / epoch;
    const row = sigma[i]!;
    if (rate > 0.2) for (let d = 0; d < row.length; d++) row[d] = row[d]! / r;
    else if (rate < 0.2) for (let d = 0; d < row.length; d++) row[d] = row[d]! * r;
  }
}
