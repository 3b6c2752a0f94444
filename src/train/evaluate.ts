/**
 * Accuracy and mean softmax cross-entropy of a (masked) model on an image set: one fused functional forward per
 * batch (models/forward.ts), logits read back once per batch, argmax and loss in float64 on the host.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../../models/graph.js';
import type { ModelParams, LayerMasks } from '../../models/params.js';
import { toTensors, disposeModelTensors, forward, countCorrect, type ModelTensors } from '../../models/forward.js';
import type { ImageSet } from '../../foundation/data/datasets.js';

export interface EvalResult {
  correct: number;
  count: number;
  /** correct / count (NaN for an empty set). */
  accuracy: number;
  /** Mean softmax cross-entropy over the set. */
  loss: number;
}

/** Sum over rows of −log softmax(logits)[label], in float64. */
export function crossEntropySum(logits: Float32Array, labels: Uint8Array, numClasses: number, offset = 0): number {
  const n = logits.length / numClasses;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const o = i * numClasses;
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, logits[o + c]!);
    let z = 0;
    for (let c = 0; c < numClasses; c++) z += Math.exp(logits[o + c]! - max);
    sum += Math.log(z) + max - logits[o + labels[offset + i]!]!;
  }
  return sum;
}

/** Evaluates already-uploaded model tensors (inference mode: batchnorm uses moving statistics). */
export function evaluateLogits(arch: Architecture, t: ModelTensors, set: ImageSet, batchSize = 1000, gates: (tf.Tensor1D | null)[] | null = null): EvalResult {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be an integer >= 1, got ${batchSize}`);
  const [H, W, C] = set.shape;
  const per = H * W * C;
  const K = arch.numClasses;
  let correct = 0;
  let lossSum = 0;
  for (let start = 0; start < set.count; start += batchSize) {
    const n = Math.min(batchSize, set.count - start);
    const logits = tf.tidy(() => {
      const x = tf.tensor4d(set.images.subarray(start * per, (start + n) * per), [n, H, W, C], 'float32');
      const out = forward(arch, t, x, gates ? { gates } : {});
      return out.dataSync() as Float32Array;
    });
    correct += countCorrect(logits, set.labels, K, start);
    lossSum += crossEntropySum(logits, set.labels, K, start);
  }
  return { correct, count: set.count, accuracy: set.count ? correct / set.count : NaN, loss: set.count ? lossSum / set.count : NaN };
}

/** Accuracy of params under masks (null = dense) on a set, batches of `batchSize`. */
export function evaluateAccuracy(arch: Architecture, params: ModelParams, masks: LayerMasks[] | null, set: ImageSet, batchSize = 1000): EvalResult {
  const t = toTensors(arch, params, masks ?? undefined);
  try {
    return evaluateLogits(arch, t, set, batchSize);
  } finally {
    disposeModelTensors(t);
  }
}
