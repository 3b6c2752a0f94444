/**
 * Channel scorers (spec channel-pruning.md §1, §3, §4): one Float32Array per group, higher = keep, deterministic for
 * a seed. DI (closed form, float64 B×B step via mathjs), GFBS (BN γ Taylor saliency, or gates for nets without BN),
 * L1-norm of the producer filters, and random. DCP lives in dcp.ts.
 */
import * as tf from '@tensorflow/tfjs';
import * as math from 'mathjs';
import type { Architecture } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import { type ChannelGroup, producerL1 } from '../../models/channels.js';
import { toTensors, forward, runGraph, disposeModelTensors } from '../../models/forward.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { Rng } from '../../foundation/rng.js';
import { UsageError } from '../../foundation/errors.js';
import { batchOf, oneHot } from './data.js';

export interface DiOptions {
  /** Mini-batches summed (spec: 10). */
  batches: number;
  /** Images per mini-batch B (spec: 128). */
  batchSize: number;
  /** Ridge ρ (spec: 0.1, absolute). */
  rho: number;
}
export const DI_DEFAULTS: DiOptions = { batches: 10, batchSize: 128, rho: 0.1 };

export interface GfbsOptions {
  /** One mini-batch of this many images (spec: 200). */
  batchSize: number;
  /** Weight of the signed β (or bias) term (spec: 0.05). */
  wBeta: number;
}
export const GFBS_DEFAULTS: GfbsOptions = { batchSize: 200, wBeta: 0.05 };

/** Disjoint mini-batches of indices into the score set, drawn by a seeded permutation (wrapping when short). */
export function scoreBatches(count: number, batches: number, batchSize: number, rng: Rng): Int32Array[] {
  if (count < 2) throw new UsageError(`the scoring split needs at least 2 images, has ${count}`);
  const out: Int32Array[] = [];
  let perm = rng.permutation(count);
  let pos = 0;
  const b = Math.min(batchSize, count);
  for (let i = 0; i < batches; i++) {
    if (pos + b > count) {
      perm = rng.permutation(count);
      pos = 0;
    }
    out.push(perm.slice(pos, pos + b));
    pos += b;
  }
  return out;
}

/** Solves A Z = Y for SPD A (n×n, float64, row-major) and Y (n×k): mathjs LU with partial pivoting, column by column. */
export function solveSpd(A: Float64Array, n: number, Y: Float64Array, k: number): Float64Array {
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) rows.push(Array.from(A.subarray(i * n, (i + 1) * n)));
  const lup = math.lup(rows);
  const Z = new Float64Array(n * k);
  for (let c = 0; c < k; c++) {
    const col: number[][] = [];
    for (let i = 0; i < n; i++) col.push([Y[i * k + c]!]);
    const r = math.lusolve(lup, col);
    const arr = (math.isMatrix(r) ? r.toArray() : r) as number[][];
    for (let i = 0; i < n; i++) Z[i * k + c] = arr[i]![0]!;
  }
  return Z;
}

/**
 * DI score of one batch for one group (spec §1 closed form): X [B, D] (D = spatial·C, channel fastest), labels.
 * A = X̄X̄ᵀ + ρI, Z = A⁻¹Ȳ, s_c = 2‖X̄_cᵀZ‖²_F. Adds into `out` (length C). Everything in float64.
 */
export function diBatchScore(X: Float32Array, B: number, C: number, labels: ArrayLike<number>, K: number, rho: number, out: Float64Array): void {
  const D = X.length / B;
  if (!Number.isInteger(D) || D % C !== 0) throw new Error(`DI: ${X.length} values do not split into ${B} rows of ${C} channels`);
  // Centre X over the batch.
  const Xc = new Float64Array(B * D);
  const mean = new Float64Array(D);
  for (let i = 0; i < B; i++) for (let d = 0; d < D; d++) mean[d] += X[i * D + d]!;
  for (let d = 0; d < D; d++) mean[d] /= B;
  for (let i = 0; i < B; i++) for (let d = 0; d < D; d++) Xc[i * D + d] = X[i * D + d]! - mean[d]!;
  // Centred one-hot labels Ȳ [B, K].
  const Y = new Float64Array(B * K);
  const freq = new Float64Array(K);
  for (let i = 0; i < B; i++) freq[labels[i]!] += 1 / B;
  for (let i = 0; i < B; i++) for (let k = 0; k < K; k++) Y[i * K + k] = (labels[i] === k ? 1 : 0) - freq[k]!;
  // A = X̄X̄ᵀ + ρI (B×B), never the D×D scatter.
  const A = new Float64Array(B * B);
  for (let i = 0; i < B; i++) {
    const ri = i * D;
    for (let j = 0; j <= i; j++) {
      const rj = j * D;
      let s = 0;
      for (let d = 0; d < D; d++) s += Xc[ri + d]! * Xc[rj + d]!;
      A[i * B + j] = s;
      A[j * B + i] = s;
    }
    A[i * B + i] += rho;
  }
  const Z = solveSpd(A, B, Y, K);
  // M = Zᵀ X̄ [K, D]; s_c = 2 Σ_k Σ_s M[k, s·C + c]².
  const M = new Float64Array(K * D);
  for (let i = 0; i < B; i++) {
    const ri = i * D;
    for (let k = 0; k < K; k++) {
      const z = Z[i * K + k]!;
      if (z === 0) continue;
      const mk = k * D;
      for (let d = 0; d < D; d++) M[mk + d] += z * Xc[ri + d]!;
    }
  }
  for (let k = 0; k < K; k++) {
    for (let d = 0; d < D; d++) {
      const v = M[k * D + d]!;
      out[d % C] += 2 * v * v;
    }
  }
}

/**
 * DI scores (spec §1): X = each producer's output before BN/ReLU (inference mode), summed over `batches`
 * mini-batches of the scoring split, each with its own centring and solve. Zeroed channels score 0.
 */
export function diScores(arch: Architecture, groups: ChannelGroup[], params: ModelParams, data: ImageSet, seed: number | string, opts: DiOptions = DI_DEFAULTS): Float32Array[] {
  if (!(opts.rho > 0)) throw new UsageError(`DI rho must be > 0, got ${opts.rho}`);
  const rng = new Rng(`di:${seed}`);
  const acc = groups.map((g) => new Float64Array(g.channels));
  const t = toTensors(arch, params);
  try {
    for (const idx of scoreBatches(data.count, opts.batches, opts.batchSize, rng)) {
      const { x, labels } = batchOf(data, idx);
      const taps: tf.Tensor[] = [];
      const logits = forward(arch, t, x, { taps });
      const values = groups.map((g) => g.producers.map((p) => taps[p]!.dataSync() as Float32Array));
      tf.dispose([x, logits, ...taps.filter((t): t is tf.Tensor => t !== null)]);
      // Channels tied by an Add: the score of each producer's output, summed.
      groups.forEach((g, gi) => values[gi]!.forEach((v) => diBatchScore(v, idx.length, g.channels, labels, arch.numClasses, opts.rho, acc[gi]!)));
    }
  } finally {
    disposeModelTensors(t);
  }
  return acc.map((a) => Float32Array.from(a));
}

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

/**
 * GFBS scores (spec §3, §4). Groups with batchnorms: s_c = |γ_c|/‖γ‖·|∂L/∂γ_c|/‖∂L/∂γ‖ + w_β·β_c/‖β‖ from one batch
 * with BN in training mode (dropout off); γ, ∂γ and β are averaged over the group's batchnorms first (channels tied by
 * an Add). Groups without (LeNet-5): one gate g = 1 on every producer's output,
 * s_c = (1/√C)·|∂L/∂g_c|/‖∂L/∂g‖ + w_β·b_c/‖b‖ with b the producers' mean bias. A zero norm makes its term 0.
 */
export function gfbsScores(arch: Architecture, groups: ChannelGroup[], params: ModelParams, data: ImageSet, seed: number | string, opts: GfbsOptions = GFBS_DEFAULTS): Float32Array[] {
  const rng = new Rng(`gfbs:${seed}`);
  const [idx] = scoreBatches(data.count, 1, opts.batchSize, rng);
  const { x, labels } = batchOf(data, idx!);
  const y = oneHot(labels, arch.numClasses);
  const t = toTensors(arch, params);
  const nBn = params.batchNorms.length;
  // Differentiated: every batchnorm's gamma, then one gate per gate-scored group.
  const gateGroups = groups.filter((g) => g.batchNorms.length === 0);
  const gates = gateGroups.map((g) => tf.ones([g.channels]) as tf.Tensor1D);
  try {
    const grads = tf.grads((...xs: tf.Tensor[]) => {
      const tt = { layers: t.layers, batchNorms: t.batchNorms.map((b, i) => ({ ...b, gamma: xs[i] as tf.Tensor1D })) };
      const gg: (tf.Tensor1D | null)[] = new Array(params.layers.length).fill(null);
      gateGroups.forEach((g, k) => g.producers.forEach((p) => (gg[p] = xs[nBn + k] as tf.Tensor1D)));
      const logits = runGraph(arch, tt, x, { mode: 'train', gates: gg, dropoutSeed: null });
      return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    })([...t.batchNorms.map((b) => b.gamma), ...gates]);
    const gradArrays = grads.map((g) => g.dataSync() as Float32Array);
    const mean = (parts: ArrayLike<number>[], c: number) => parts.reduce((s, a) => s + a[c]!, 0) / parts.length;
    const out = groups.map((g) => {
      const C = g.channels;
      const s = new Float32Array(C);
      if (g.batchNorms.length > 0) {
        const slice = (a: Float32Array, off: number) => a.subarray(off, off + C);
        const gammas = g.batchNorms.map((b) => slice(params.batchNorms[b.bn]!.gamma, b.offset));
        const betas = g.batchNorms.map((b) => slice(params.batchNorms[b.bn]!.beta, b.offset));
        const dgs = g.batchNorms.map((b) => slice(gradArrays[b.bn]!, b.offset));
        const gamma = Float64Array.from({ length: C }, (_, c) => mean(gammas, c));
        const beta = Float64Array.from({ length: C }, (_, c) => mean(betas, c));
        const dg = Float64Array.from({ length: C }, (_, c) => mean(dgs, c));
        const ng = norm(gamma);
        const nb = norm(beta);
        const ndg = norm(dg);
        for (let c = 0; c < C; c++) {
          const t1 = ng > 0 && ndg > 0 ? (Math.abs(gamma[c]!) / ng) * (Math.abs(dg[c]!) / ndg) : 0;
          const t2 = nb > 0 ? (opts.wBeta * beta[c]!) / nb : 0;
          s[c] = t1 + t2;
        }
      } else {
        const dg = gradArrays[nBn + gateGroups.indexOf(g)]!;
        const biases = g.producers.map((p) => params.layers[p]!.bias).filter((b) => b.length > 0);
        const b = Float64Array.from({ length: C }, (_, c) => (biases.length ? mean(biases, c) : 0));
        const ndg = norm(dg);
        const nb = norm(b);
        for (let c = 0; c < C; c++) {
          const t1 = ndg > 0 ? (1 / Math.sqrt(C)) * (Math.abs(dg[c]!) / ndg) : 0;
          const t2 = nb > 0 ? (opts.wBeta * b[c]!) / nb : 0;
          s[c] = t1 + t2;
        }
      }
      return s;
    });
    tf.dispose(grads);
    return out;
  } finally {
    tf.dispose([x, y, ...gates]);
    disposeModelTensors(t);
  }
}

/** L1 norm of each channel's producer filter (Li et al.): the weights feeding it. */
export function l1Scores(arch: Architecture, groups: ChannelGroup[], params: ModelParams): Float32Array[] {
  return groups.map((g) => producerL1(arch, g, params));
}

/** Uniform random scores from the run's seed (the random-pruning baseline). */
export function randomScores(groups: ChannelGroup[], seed: number | string): Float32Array[] {
  const rng = new Rng(`random-scores:${seed}`);
  return groups.map((g) => Float32Array.from({ length: g.channels }, () => rng.uniform()));
}
