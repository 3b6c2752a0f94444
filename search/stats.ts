/** Small statistics helpers for comparing optimisers over seeds (tests, benchmarks). */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = xs.slice().sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export interface TestResult {
  /** Pairs used (zero differences dropped). */
  n: number;
  statistic: number;
  /** One-sided p-value for "the differences tend to be negative" (a < b in a paired a − b). */
  p: number;
}

/**
 * Exact one-sided Wilcoxon signed-rank test of H1 "median of d < 0", d = a − b paired.
 * Zeros are dropped; ties get average ranks and the exact conditional null distribution (by counting sign
 * assignments over the actual ranks). Statistic: W+ (sum of ranks of positive differences); p = P(W+ ≤ observed).
 */
export function wilcoxonSignedRankLess(d: readonly number[]): TestResult {
  const nz = d.filter((v) => v !== 0 && !Number.isNaN(v));
  const n = nz.length;
  if (n === 0) return { n: 0, statistic: 0, p: 1 };
  const order = nz.map((v, i) => ({ a: Math.abs(v), i })).sort((x, y) => x.a - y.a);
  const rank2 = new Array<number>(n); // doubled ranks: integers even with ties
  for (let k = 0; k < n; ) {
    let e = k;
    while (e + 1 < n && order[e + 1]!.a === order[k]!.a) e++;
    const r2 = k + 1 + e + 1; // 2 × average of ranks k+1..e+1
    for (let t = k; t <= e; t++) rank2[order[t]!.i] = r2;
    k = e + 1;
  }
  let w2 = 0;
  nz.forEach((v, i) => {
    if (v > 0) w2 += rank2[i]!;
  });
  const total = rank2.reduce((s, r) => s + r, 0);
  // counts[s] = number of sign assignments with doubled W+ = s.
  let counts = new Array<number>(total + 1).fill(0);
  counts[0] = 1;
  for (const r of rank2) {
    const next = counts.slice();
    for (let s = 0; s + r <= total; s++) if (counts[s]) next[s + r]! += counts[s]!;
    counts = next;
  }
  let le = 0;
  for (let s = 0; s <= w2; s++) le += counts[s]!;
  return { n, statistic: w2 / 2, p: le / 2 ** n };
}

/** Exact one-sided sign test of H1 "P(d < 0) > 1/2" (zeros dropped). Statistic: number of negatives. */
export function signTestLess(d: readonly number[]): TestResult {
  const nz = d.filter((v) => v !== 0 && !Number.isNaN(v));
  const n = nz.length;
  const k = nz.filter((v) => v < 0).length;
  let p = 0;
  let c = 1; // C(n, 0)
  for (let j = 0; j <= n; j++) {
    if (j >= k) p += c;
    c = (c * (n - j)) / (j + 1);
  }
  return { n, statistic: k, p: p / 2 ** n };
}
