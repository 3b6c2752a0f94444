/** The Gaussian draw both random streams (foundation/rng.ts, foundation/mt19937.ts) share. */

/**
 * Marsaglia's polar method: x1, x2 uniform in (−1, 1) until 0 < r² = x1² + x2² < 1, then two independent standard
 * normals f·x1 and f·x2 with f = √(−2 ln r² / r²). Which one a stream returns first, and which it caches, is the
 * stream's choice (Rng: f·x1 first; numpy: f·x2 first).
 */
export function polarPair(uniform: () => number): [number, number] {
  let x1: number, x2: number, r2: number;
  do {
    x1 = 2 * uniform() - 1;
    x2 = 2 * uniform() - 1;
    r2 = x1 * x1 + x2 * x2;
  } while (r2 >= 1 || r2 === 0);
  const f = Math.sqrt((-2 * Math.log(r2)) / r2);
  return [x1 * f, x2 * f];
}
