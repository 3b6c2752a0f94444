/**
 * Dynamic Network Surgery masks (spec olmp.md §2). Pure functions on typed arrays, shared by training,
 * the evaluators and the pipeline.
 *
 *   T_k = max(mu_k + c_k * sigma_k, 0)
 *   m = 1 and |v| <= 0.9 T  -> m = 0
 *   m = 0 and |v| >  1.1 T  -> m = 1
 *   otherwise m is unchanged (hysteresis)
 *
 * mu_k, sigma_k: mean and population std of |v| over the layer's non-zero weights and biases pooled,
 * computed once from the reference weights and then frozen.
 */
import type { LayerParams, LayerMasks } from './params.js';

export interface MagnitudeStats {
  mu: number;
  sigma: number;
}

/** mu and population sigma of |v| over the non-zero entries of weight and bias pooled (float64 accumulation). */
export function magnitudeStats(layer: LayerParams): MagnitudeStats {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (const arr of [layer.weight, layer.bias]) {
    for (let i = 0; i < arr.length; i++) {
      const a = Math.abs(arr[i]!);
      if (a !== 0) {
        n++;
        sum += a;
        sumSq += a * a;
      }
    }
  }
  if (n === 0) return { mu: 0, sigma: 0 };
  const mu = sum / n;
  // Two-pass variance for accuracy.
  let ss = 0;
  for (const arr of [layer.weight, layer.bias]) {
    for (let i = 0; i < arr.length; i++) {
      const a = Math.abs(arr[i]!);
      if (a !== 0) ss += (a - mu) * (a - mu);
    }
  }
  void sumSq;
  return { mu, sigma: Math.sqrt(ss / n) };
}

export function threshold(stats: MagnitudeStats, crate: number): number {
  return Math.max(stats.mu + crate * stats.sigma, 0);
}

/**
 * One DNS mask-update pass over `values` with threshold T, from `prev` into `out` (may alias prev).
 * Returns the number of ones in the result.
 */
export function updateMaskArray(values: Float32Array, prev: Uint8Array, T: number, out: Uint8Array): number {
  const lo = 0.9 * T;
  const hi = 1.1 * T;
  let ones = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    let m = prev[i]!;
    if (m === 1 && a <= lo) m = 0;
    else if (m === 0 && a > hi) m = 1;
    out[i] = m;
    ones += m;
  }
  return ones;
}

/**
 * New masks of one layer for a crate. A crate of exactly 0 leaves the masks unchanged: the released code encodes
 * an update request as (crate + 1) or (−crate) in mask element 0, so crate 0 never triggers an update (spec §2).
 */
export function layerMasksForCrate(layer: LayerParams, prev: LayerMasks, stats: MagnitudeStats, crate: number): LayerMasks {
  if (crate === 0) return { weight: prev.weight.slice(), bias: prev.bias.slice() };
  const T = threshold(stats, crate);
  const weight = new Uint8Array(prev.weight.length);
  const bias = new Uint8Array(prev.bias.length);
  updateMaskArray(layer.weight, prev.weight, T, weight);
  updateMaskArray(layer.bias, prev.bias, T, bias);
  return { weight, bias };
}

/**
 * Masks of all layers for a candidate: `crates[k]` per prunable layer (null/undefined = layer not updated).
 * Stateless: depends only on (params, prev masks, crates).
 */
export function masksForCrates(
  layers: LayerParams[],
  prev: LayerMasks[],
  stats: MagnitudeStats[],
  crates: (number | null | undefined)[],
): LayerMasks[] {
  return layers.map((l, k) => {
    const c = crates[k];
    const p = prev[k]!;
    if (c === null || c === undefined) return { weight: p.weight.slice(), bias: p.bias.slice() };
    return layerMasksForCrate(l, p, stats[k]!, c);
  });
}
