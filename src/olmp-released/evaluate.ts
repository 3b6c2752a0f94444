/**
 * Test-set evaluation of a masked model on the active tfjs backend: accuracy, mean cross-entropy and the size report.
 * Batches of 1000 images, one dataSync per batch (the logits), everything else tidied.
 */
import type { PrunableModel } from '../../models/params.js';
import { sizeReport, type SizeReport } from '../../models/params.js';
import { evaluateAccuracy as evaluateMaskedAccuracy } from '../train/evaluate.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { UsageError } from '../../foundation/errors.js';

export interface Accuracy {
  correct: number;
  count: number;
  accuracy: number;
  /** Mean softmax cross-entropy (natural log), accumulated in float64 from the float32 logits. */
  meanLoss: number;
}

/** Accuracy and mean loss of `model` (masks applied) over `set`, on the current tfjs backend. */
export function evaluateAccuracy(model: PrunableModel, set: ImageSet, batchSize = 1000): Accuracy {
  const { arch } = model;
  const [H, W, C] = arch.inputShape;
  if (set.shape[0] !== H || set.shape[1] !== W || set.shape[2] !== C) {
    throw new UsageError(`${arch.name} takes ${H}x${W}x${C} images, the data set has ${set.shape.join('x')}`);
  }
  if (set.count === 0) throw new UsageError('the data set is empty');
  const r = evaluateMaskedAccuracy(arch, model.params, model.masks, set, batchSize);
  return { correct: r.correct, count: r.count, accuracy: r.accuracy, meanLoss: r.loss };
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
