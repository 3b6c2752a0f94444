/**
 * Test-set evaluation of a masked model on the active tfjs backend: accuracy, mean cross-entropy and the size report.
 * Batches of 1000 images, one dataSync per batch (the logits), everything else tidied.
 */
import * as tf from '@tensorflow/tfjs';
import type { PrunableModel } from '../../models/params.js';
import { sizeReport, type SizeReport } from '../../models/params.js';
import { toTensors, forward, countCorrect, disposeModelTensors } from '../../models/forward.js';
import type { ImageSet } from '../data/datasets.js';
import { UsageError } from '../errors.js';

export interface Accuracy {
  correct: number;
  count: number;
  accuracy: number;
  /** Mean softmax cross-entropy (natural log), accumulated in float64 from the float32 logits. */
  meanLoss: number;
}

/** Sum over rows of logsumexp(logits) − logits[label]. */
function crossEntropySum(logits: Float32Array, labels: Uint8Array, numClasses: number, offset: number): number {
  let sum = 0;
  const n = logits.length / numClasses;
  for (let i = 0; i < n; i++) {
    const row = i * numClasses;
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, logits[row + c]!);
    let s = 0;
    for (let c = 0; c < numClasses; c++) s += Math.exp(logits[row + c]! - max);
    sum += max + Math.log(s) - logits[row + labels[offset + i]!]!;
  }
  return sum;
}

/** Accuracy and mean loss of `model` (masks applied) over `set`, on the current tfjs backend. */
export function evaluateAccuracy(model: PrunableModel, set: ImageSet, batchSize = 1000): Accuracy {
  const { arch } = model;
  const [H, W, C] = arch.inputShape;
  if (set.shape[0] !== H || set.shape[1] !== W || set.shape[2] !== C) {
    throw new UsageError(`${arch.name} takes ${H}x${W}x${C} images, the data set has ${set.shape.join('x')}`);
  }
  if (set.count === 0) throw new UsageError('the data set is empty');
  const per = H * W * C;
  const K = arch.numClasses;
  const tensors = toTensors(arch, model.params, model.masks);
  let correct = 0;
  let loss = 0;
  try {
    for (let start = 0; start < set.count; start += batchSize) {
      const n = Math.min(batchSize, set.count - start);
      const logits = tf.tidy(() => {
        const x = tf.tensor4d(set.images.subarray(start * per, (start + n) * per), [n, H, W, C]);
        return forward(arch, tensors, x).dataSync() as Float32Array;
      });
      if (logits.length !== n * K) throw new Error(`forward returned ${logits.length} logits for ${n} images x ${K} classes`);
      correct += countCorrect(logits, set.labels, K, start);
      loss += crossEntropySum(logits, set.labels, K, start);
    }
  } finally {
    disposeModelTensors(tensors);
  }
  return { correct, count: set.count, accuracy: correct / set.count, meanLoss: loss / set.count };
}

/** Per-layer non-zeros with totals, as reported by `prunus eval`. */
export interface LayerSize {
  name: string;
  nonZeroWeights: number;
  weights: number;
  nonZeroBiases: number;
  biases: number;
  nonZero: number;
  params: number;
}

export interface ModelEvaluation extends Accuracy {
  error: number;
  layers: LayerSize[];
  nonZero: number;
  params: number;
  compression: number;
  macs: number;
  denseMacs: number;
}

/** Rows of a size report with each layer's weight and bias totals. */
export function layerSizes(model: PrunableModel, report: SizeReport = sizeReport(model.arch, model.masks)): LayerSize[] {
  return report.layers.map((l, k) => ({
    name: l.name,
    nonZeroWeights: l.nonZeroWeights,
    weights: model.masks[k]!.weight.length,
    nonZeroBiases: l.nonZeroBiases,
    biases: model.masks[k]!.bias.length,
    nonZero: l.nonZero,
    params: l.params,
  }));
}

/** Accuracy, loss and size of a model over one image set. */
export function evaluateModel(model: PrunableModel, set: ImageSet, batchSize = 1000): ModelEvaluation {
  const acc = evaluateAccuracy(model, set, batchSize);
  const size = sizeReport(model.arch, model.masks);
  return {
    ...acc,
    error: 1 - acc.accuracy,
    layers: layerSizes(model, size),
    nonZero: size.nonZero,
    params: size.params,
    compression: size.compression,
    macs: size.macs,
    denseMacs: size.denseMacs,
  };
}
