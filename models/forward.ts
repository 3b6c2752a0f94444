/**
 * Functional forward pass: the weights are arguments, not layer state, so one compiled path serves training
 * (gradients w.r.t. the effective weights), masked evaluation and every candidate without setWeights.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from './architectures.js';
import type { ModelParams, LayerMasks } from './params.js';
import { maskedParams } from './params.js';
import { prunableOps, weightShape } from './architectures.js';

export interface LayerTensors {
  weight: tf.Tensor;
  bias: tf.Tensor1D;
}
export interface BatchNormTensors {
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
  movingMean: tf.Tensor1D;
  movingVariance: tf.Tensor1D;
}
export interface ModelTensors {
  layers: LayerTensors[];
  batchNorms: BatchNormTensors[];
}

/** Uploads parameters (masked first when masks are given) as tensors. Caller disposes them (disposeModelTensors). */
export function toTensors(arch: Architecture, params: ModelParams, masks?: LayerMasks[]): ModelTensors {
  const p = masks ? maskedParams(params, masks) : params;
  const ops = prunableOps(arch);
  return {
    layers: p.layers.map((l, i) => ({
      weight: tf.tensor(l.weight, weightShape(ops[i]!), 'float32'),
      bias: tf.tensor1d(l.bias, 'float32'),
    })),
    batchNorms: p.batchNorms.map((b) => ({
      gamma: tf.tensor1d(b.gamma),
      beta: tf.tensor1d(b.beta),
      movingMean: tf.tensor1d(b.movingMean),
      movingVariance: tf.tensor1d(b.movingVariance),
    })),
  };
}

export function disposeModelTensors(t: ModelTensors): void {
  for (const l of t.layers) tf.dispose([l.weight, l.bias]);
  for (const b of t.batchNorms) tf.dispose([b.gamma, b.beta, b.movingMean, b.movingVariance]);
}

export interface ForwardOptions {
  /** BatchNorm uses batch statistics when true (training mode). */
  training?: boolean;
  /** Called with each batchnorm's batch mean/variance in training mode (for moving-average updates). */
  onBatchNormStats?: (index: number, mean: tf.Tensor1D, variance: tf.Tensor1D) => void;
  /** Per-channel multiplicative gates after each prunable layer (channel pruning: masks or GFBS gates). */
  gates?: (tf.Tensor1D | null)[];
  /** Returns the output of each prunable layer before its activation (DI scoring reads them). */
  taps?: (tf.Tensor | null)[];
}

/**
 * Logits for a batch of NHWC images [B,H,W,C] (or flat [B, H*W*C]).
 * Prunable layers use fused conv2d / matMul with bias and activation.
 */
export function forward(arch: Architecture, t: ModelTensors, x: tf.Tensor, opts: ForwardOptions = {}): tf.Tensor2D {
  let h: tf.Tensor = x;
  if (h.rank === 2 && arch.ops[0]?.type === 'conv2d') {
    const [H, W, C] = arch.inputShape;
    h = h.reshape([h.shape[0]!, H, W, C]);
  }
  let layer = 0;
  let bn = 0;
  for (const op of arch.ops) {
    switch (op.type) {
      case 'conv2d':
      case 'dense': {
        const lt = t.layers[layer]!;
        const gate = opts.gates?.[layer] ?? null;
        const tapped = opts.taps !== undefined;
        // Fuse bias and activation unless a gate or tap needs the pre-activation output.
        const fuseAct = gate === null && !tapped ? op.activation : 'linear';
        if (op.type === 'conv2d') {
          h = tf.fused.conv2d({
            x: h as tf.Tensor4D,
            filter: lt.weight as tf.Tensor4D,
            strides: op.stride,
            pad: op.padding,
            bias: lt.bias,
            activation: fuseAct,
          });
        } else {
          if (h.rank !== 2) h = h.reshape([h.shape[0]!, -1]);
          h = tf.fused.matMul({ a: h as tf.Tensor2D, b: lt.weight as tf.Tensor2D, bias: lt.bias, activation: fuseAct });
        }
        if (tapped) opts.taps!.push(h);
        if (gate !== null) h = tf.mul(h, gate);
        if (fuseAct !== op.activation && op.activation === 'relu') h = tf.relu(h);
        layer++;
        break;
      }
      case 'maxpool':
        h = tf.maxPool(h as tf.Tensor4D, op.size, op.stride, 'valid');
        break;
      case 'flatten':
        h = h.reshape([h.shape[0]!, -1]);
        break;
      case 'batchnorm': {
        const b = t.batchNorms[bn]!;
        let mean: tf.Tensor1D = b.movingMean;
        let variance: tf.Tensor1D = b.movingVariance;
        if (opts.training) {
          const axes = h.rank === 4 ? [0, 1, 2] : [0];
          const m = tf.moments(h, axes);
          mean = m.mean as tf.Tensor1D;
          variance = m.variance as tf.Tensor1D;
          opts.onBatchNormStats?.(bn, mean, variance);
        }
        h = tf.batchNorm(h, mean, variance, b.beta, b.gamma, op.epsilon);
        if (op.activation === 'relu') h = tf.relu(h);
        bn++;
        break;
      }
    }
  }
  return h as tf.Tensor2D;
}

/** Number of correct top-1 predictions of logits against integer labels (first-max wins ties, like argMax). */
export function countCorrect(logits: Float32Array, labels: Uint8Array | Int32Array, numClasses: number, offset = 0): number {
  let correct = 0;
  const n = logits.length / numClasses;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = logits[i * numClasses]!;
    for (let c = 1; c < numClasses; c++) {
      const v = logits[i * numClasses + c]!;
      if (v > bv) {
        bv = v;
        best = c;
      }
    }
    if (best === labels[offset + i]) correct++;
  }
  return correct;
}
