/**
 * Training-mode forward pass: the same network as models/forward.ts `forward` (same ops, layouts, gates and batchnorm
 * handling) built from unfused ops. tfjs computes the gradients of an unfused conv2d/matMul lazily, per input, so
 * the gradient with respect to the input images (never needed) is skipped; the fused ops' custom gradients always
 * compute it (on wasm that was 20 ms of a ~120 ms LeNet-5 step). test/train.test.ts checks both forwards agree.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../../models/architectures.js';
import type { ModelTensors } from '../../models/forward.js';

export interface TrainForwardOptions {
  /** Per-channel gates after each prunable layer (before its activation), as in models/forward.ts. */
  gates?: (tf.Tensor1D | null)[] | null;
  /** Batchnorm batch statistics of each batchnorm op (training mode always uses batch statistics). */
  onBatchNormStats?: (index: number, mean: tf.Tensor1D, variance: tf.Tensor1D) => void;
}

export function trainForward(arch: Architecture, t: ModelTensors, x: tf.Tensor, opts: TrainForwardOptions = {}): tf.Tensor2D {
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
        if (op.type === 'conv2d') {
          h = tf.conv2d(h as tf.Tensor4D, lt.weight as tf.Tensor4D, op.stride, op.padding);
        } else {
          if (h.rank !== 2) h = h.reshape([h.shape[0]!, -1]);
          h = tf.matMul(h as tf.Tensor2D, lt.weight as tf.Tensor2D);
        }
        h = tf.add(h, lt.bias);
        const gate = opts.gates?.[layer] ?? null;
        if (gate !== null) h = tf.mul(h, gate);
        if (op.activation === 'relu') h = tf.relu(h);
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
        const axes = h.rank === 4 ? [0, 1, 2] : [0];
        const m = tf.moments(h, axes);
        const mean = m.mean as tf.Tensor1D;
        const variance = m.variance as tf.Tensor1D;
        opts.onBatchNormStats?.(bn, mean, variance);
        h = tf.batchNorm(h, mean, variance, b.beta, b.gamma, op.epsilon);
        if (op.activation === 'relu') h = tf.relu(h);
        bn++;
        break;
      }
    }
  }
  return h as tf.Tensor2D;
}
