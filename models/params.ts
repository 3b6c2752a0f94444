/**
 * Parameters and masks of a prunable model, held as plain typed arrays in tfjs layouts
 * (dense [in,out], conv [kh,kw,in,out]). Pure data: no tensors live here.
 */
import { type Architecture, prunableOps, batchNormOps, weightCount, biasLength, fanIn } from './graph.js';
import { layerStats } from './walk.js';
import type { Rng } from '../foundation/rng.js';

export interface LayerParams {
  weight: Float32Array;
  bias: Float32Array;
}
export interface BatchNormParams {
  gamma: Float32Array;
  beta: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
}
export interface ModelParams {
  /** One per prunable op (conv2d/dense), in op order. */
  layers: LayerParams[];
  /** One per batchnorm op, in op order. */
  batchNorms: BatchNormParams[];
}
/** 0/1 masks of one prunable layer, same layout as its weight and bias. */
export interface LayerMasks {
  weight: Uint8Array;
  bias: Uint8Array;
}

/** A model: architecture, dense parameters, and the current masks (all ones when unpruned). */
export interface PrunableModel {
  arch: Architecture;
  params: ModelParams;
  masks: LayerMasks[];
}

/** Xavier-uniform weights ±sqrt(3/fan_in) as Caffe's "xavier" filler does, zero biases (spec §1). */
export function initParams(arch: Architecture, rng: Rng): ModelParams {
  const layers = prunableOps(arch).map((op) => {
    const n = weightCount(op);
    const scale = Math.sqrt(3 / fanIn(op));
    const weight = new Float32Array(n);
    for (let i = 0; i < n; i++) weight[i] = (2 * rng.uniform() - 1) * scale;
    return { weight, bias: new Float32Array(biasLength(op)) };
  });
  const batchNorms = batchNormOps(arch).map((op) => ({
    gamma: new Float32Array(op.channels).fill(1),
    beta: new Float32Array(op.channels),
    movingMean: new Float32Array(op.channels),
    movingVariance: new Float32Array(op.channels).fill(1),
  }));
  return { layers, batchNorms };
}

export function onesMasks(arch: Architecture): LayerMasks[] {
  return prunableOps(arch).map((op) => ({
    weight: new Uint8Array(weightCount(op)).fill(1),
    bias: new Uint8Array(biasLength(op)).fill(1),
  }));
}

export function cloneParams(p: ModelParams): ModelParams {
  return {
    layers: p.layers.map((l) => ({ weight: l.weight.slice(), bias: l.bias.slice() })),
    batchNorms: p.batchNorms.map((b) => ({
      gamma: b.gamma.slice(),
      beta: b.beta.slice(),
      movingMean: b.movingMean.slice(),
      movingVariance: b.movingVariance.slice(),
    })),
  };
}

export function cloneMasks(m: LayerMasks[]): LayerMasks[] {
  return m.map((l) => ({ weight: l.weight.slice(), bias: l.bias.slice() }));
}

function countOnes(a: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += a[i]!;
  return n;
}

export interface SizeReport {
  /** Per prunable layer: non-zero mask entries (weights + biases) and density. */
  layers: { name: string; nonZeroWeights: number; nonZeroBiases: number; nonZero: number; params: number; density: number }[];
  nonZero: number;
  params: number;
  /** total params / non-zero mask entries (spec §2). */
  compression: number;
  /** MACs per image of the masked model, counting only non-zero weights. */
  macs: number;
  denseMacs: number;
}

/** Size of a masked model: non-zeros counted from the masks, as OLMP's sparsity scripts do. */
export function sizeReport(arch: Architecture, masks: LayerMasks[]): SizeReport {
  const stats = layerStats(arch);
  let nonZero = 0;
  let params = 0;
  let macs = 0;
  let denseMacs = 0;
  const layers = stats.map((s, i) => {
    const m = masks[i]!;
    const nw = countOnes(m.weight);
    const nb = countOnes(m.bias);
    nonZero += nw + nb;
    params += s.params;
    macs += nw * s.outH * s.outW;
    denseMacs += s.macs;
    return { name: s.name, nonZeroWeights: nw, nonZeroBiases: nb, nonZero: nw + nb, params: s.params, density: (nw + nb) / s.params };
  });
  return { layers, nonZero, params, compression: nonZero === 0 ? Infinity : params / nonZero, macs, denseMacs };
}

/** Effective (masked) parameters w⊙m, b⊙m as new arrays. */
export function maskedParams(params: ModelParams, masks: LayerMasks[]): ModelParams {
  return {
    layers: params.layers.map((l, i) => {
      const m = masks[i]!;
      const weight = new Float32Array(l.weight.length);
      for (let j = 0; j < weight.length; j++) weight[j] = m.weight[j] ? l.weight[j]! : 0;
      const bias = new Float32Array(l.bias.length);
      for (let j = 0; j < bias.length; j++) bias[j] = m.bias[j] ? l.bias[j]! : 0;
      return { weight, bias };
    }),
    batchNorms: params.batchNorms,
  };
}
