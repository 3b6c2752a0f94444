/**
 * Data splits for channel pruning: `train` (baseline training and finetuning) and `score` (channel scoring and DCP
 * selection) are disjoint parts of the 54 k training split; `validation` (the search constraint) is the seeded 6 k
 * validation split; `test` is reported only.
 */
import * as tf from '@tensorflow/tfjs';
import { loadDataset, subset, type ImageSet } from '../../foundation/data/datasets.js';
import { UsageError } from '../../foundation/errors.js';

export interface ChannelData {
  dataset: string;
  numClasses: number;
  train: ImageSet;
  score: ImageSet;
  validation: ImageSet;
  test: ImageSet;
}

export interface DataSizes {
  train: number;
  score: number;
  validation: number;
  test: number;
}

const cache = new Map<string, ChannelData>();

export interface ChannelDataOptions {
  dataDir?: string;
  splitSeed?: number;
  inputScale?: number;
  inputOffset?: number;
}

/**
 * Loads (and memoises per process) the splits: train = head of the training split, score = its tail. Sizes are
 * upper bounds: a smaller dataset gives what it has (the scoring split at most a tenth of the training split).
 */
export function loadChannelData(dataset: string, sizes: DataSizes, opts: ChannelDataOptions = {}): ChannelData {
  const key = JSON.stringify([dataset, sizes, opts.dataDir ?? null, opts.splitSeed ?? 0, opts.inputScale ?? null, opts.inputOffset ?? null]);
  const hit = cache.get(key);
  if (hit) return hit;
  const d = loadDataset(dataset, {
    dataDir: opts.dataDir,
    splitSeed: opts.splitSeed ?? 0,
    ...(opts.inputScale !== undefined ? { inputScale: opts.inputScale } : {}),
    ...(opts.inputOffset !== undefined ? { inputOffset: opts.inputOffset } : {}),
  });
  const n = d.train.count;
  const score = Math.min(sizes.score, Math.max(2, Math.floor(n / 10)));
  const train = Math.min(sizes.train, n - score);
  if (train < 1) throw new UsageError(`${dataset}: its ${n}-image training split is too small for a training and a scoring part`);
  const range = (a: number, b: number) => Int32Array.from({ length: b - a }, (_, i) => a + i);
  const out: ChannelData = {
    dataset,
    numClasses: d.numClasses,
    train: subset(d.train, range(0, train)),
    score: subset(d.train, range(n - score, n)),
    validation: subset(d.validation, range(0, Math.min(sizes.validation, d.validation.count))),
    test: subset(d.test, range(0, Math.min(sizes.test, d.test.count))),
  };
  cache.set(key, out);
  return out;
}

/** Images at `indices` as an NHWC tensor, and their labels. */
export function batchOf(set: ImageSet, indices: ArrayLike<number>): { x: tf.Tensor4D; labels: Int32Array } {
  const b = subset(set, indices);
  return { x: tf.tensor4d(b.images, [indices.length, ...set.shape]), labels: Int32Array.from(b.labels) };
}

/** Consecutive images [start, start+n) as a tensor. */
export function sliceOf(set: ImageSet, start: number, n: number): { x: tf.Tensor4D; labels: Int32Array } {
  const [h, w, c] = set.shape;
  const per = h * w * c;
  const m = Math.min(n, set.count - start);
  return {
    x: tf.tensor4d(set.images.subarray(start * per, (start + m) * per), [m, h, w, c]),
    labels: Int32Array.from(set.labels.subarray(start, start + m)),
  };
}

export function oneHot(labels: Int32Array, numClasses: number): tf.Tensor2D {
  return tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses).toFloat() as tf.Tensor2D);
}
