/**
 * The maths of CMA-ES (Hansen, "The CMA Evolution Strategy: A Tutorial", 2016; the (μ/μ_w, λ) variant with
 * rank-one and rank-μ updates), as pure functions over plain arrays so that each can be tested alone.
 */
import { eigs } from 'mathjs';

export interface CmaConstants {
  lambda: number;
  mu: number;
  /** Recombination weights w_1 ≥ … ≥ w_μ > 0, summing to 1. */
  weights: number[];
  muEff: number;
  cSigma: number;
  dSigma: number;
  cc: number;
  c1: number;
  cMu: number;
  /** E‖N(0, I)‖. */
  chiN: number;
}

/** The default population size 4 + ⌊3 ln n⌋. */
export function defaultLambda(n: number): number {
  return 4 + Math.floor(3 * Math.log(n));
}

/** The tutorial's default strategy parameters for dimension n and population λ (≥ 2). */
export function cmaConstants(n: number, lambda: number): CmaConstants {
  const mu = Math.floor(lambda / 2);
  const raw = Array.from({ length: mu }, (_, i) => Math.log(mu + 0.5) - Math.log(i + 1));
  const sum = raw.reduce((a, b) => a + b, 0);
  const weights = raw.map((w) => w / sum);
  const muEff = 1 / weights.reduce((a, w) => a + w * w, 0);
  const cSigma = (muEff + 2) / (n + muEff + 5);
  const dSigma = 1 + 2 * Math.max(0, Math.sqrt((muEff - 1) / (n + 1)) - 1) + cSigma;
  const cc = (4 + muEff / n) / (n + 4 + (2 * muEff) / n);
  const c1 = 2 / ((n + 1.3) ** 2 + muEff);
  const cMu = Math.min(1 - c1, (2 * (muEff - 2 + 1 / muEff)) / ((n + 2) ** 2 + muEff));
  const chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
  return { lambda, mu, weights, muEff, cSigma, dSigma, cc, c1, cMu, chiN };
}

/**
 * C = B diag(d²) Bᵀ for a symmetric positive semi-definite C: columns of B (as rows of `basis`, basis[k] = k-th
 * eigenvector) and d = √eigenvalues, floored at a tiny positive value so that C^(−1/2) exists. C is symmetrised
 * first (rounding makes it drift).
 */
export function decompose(C: number[][]): { basis: number[][]; d: number[] } {
  const n = C.length;
  if (n === 1) return { basis: [[1]], d: [Math.sqrt(Math.max(C[0]![0]!, 1e-300))] };
  const sym = C.map((row, i) => row.map((v, j) => (v + C[j]![i]!) / 2));
  const { eigenvectors } = eigs(sym) as unknown as { eigenvectors: { value: number; vector: number[] }[] };
  const basis = eigenvectors.map((e) => (e.vector as number[]).map(Number));
  const d = eigenvectors.map((e) => Math.sqrt(Math.max(Number(e.value), 1e-300)));
  return { basis, d };
}

/** y = B diag(d) z. */
export function sampleDirection(basis: number[][], d: number[], z: number[]): number[] {
  const n = z.length;
  const y = new Array<number>(n).fill(0);
  for (let k = 0; k < n; k++) {
    const s = d[k]! * z[k]!;
    const v = basis[k]!;
    for (let i = 0; i < n; i++) y[i]! += v[i]! * s;
  }
  return y;
}

/** C^(−1/2) y = B diag(1/d) Bᵀ y. */
export function whiten(basis: number[][], d: number[], y: number[]): number[] {
  const n = y.length;
  const out = new Array<number>(n).fill(0);
  for (let k = 0; k < n; k++) {
    const v = basis[k]!;
    let dot = 0;
    for (let i = 0; i < n; i++) dot += v[i]! * y[i]!;
    const s = dot / d[k]!;
    for (let i = 0; i < n; i++) out[i]! += v[i]! * s;
  }
  return out;
}

export interface CmaMoments {
  mean: number[];
  sigma: number;
  C: number[][];
  pSigma: number[];
  pc: number[];
  /** Generations done (for h_σ's bias correction). */
  g: number;
}

const norm = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));

/**
 * One generation's update from the μ best steps y_i = (x_i − m)/σ, best first (the points as evaluated, after
 * clamping into the box). Returns the new moments; the input is not changed.
 */
export function cmaUpdate(m: CmaMoments, k: CmaConstants, steps: number[][], basis: number[][], d: number[]): CmaMoments {
  const n = m.mean.length;
  const yw = new Array<number>(n).fill(0);
  steps.forEach((y, i) => {
    for (let j = 0; j < n; j++) yw[j]! += k.weights[i]! * y[j]!;
  });
  const mean = m.mean.map((v, j) => v + m.sigma * yw[j]!);
  const cy = whiten(basis, d, yw);
  const ps = Math.sqrt(k.cSigma * (2 - k.cSigma) * k.muEff);
  const pSigma = m.pSigma.map((v, j) => (1 - k.cSigma) * v + ps * cy[j]!);
  const g = m.g + 1;
  const hSigma = norm(pSigma) / Math.sqrt(1 - (1 - k.cSigma) ** (2 * g)) < (1.4 + 2 / (n + 1)) * k.chiN ? 1 : 0;
  const pcFactor = Math.sqrt(k.cc * (2 - k.cc) * k.muEff);
  const pc = m.pc.map((v, j) => (1 - k.cc) * v + hSigma * pcFactor * yw[j]!);
  const dh = (1 - hSigma) * k.cc * (2 - k.cc);
  const C = m.C.map((row, i) =>
    row.map((c, j) => {
      let rankMu = 0;
      steps.forEach((y, s) => (rankMu += k.weights[s]! * y[i]! * y[j]!));
      return (1 - k.c1 - k.cMu) * c + k.c1 * (pc[i]! * pc[j]! + dh * c) + k.cMu * rankMu;
    }),
  );
  const sigma = m.sigma * Math.exp((k.cSigma / k.dSigma) * (norm(pSigma) / k.chiN - 1));
  return { mean, sigma, C, pSigma, pc, g };
}
