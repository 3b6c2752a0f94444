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

/** Loads (and memoises per process) the splits: train = head of the training split, score = its tail. */
export function loadChannelData(dataset: string, sizes: DataSizes, opts: { dataDir?: string; splitSeed?: number } = {}): ChannelData {
  const key = JSON.stringify([dataset, sizes, opts.dataDir ?? null, opts.splitSeed ?? 0]);
  const hit = cache.get(key);
  if (hit) return hit;
  const d = loadDataset(dataset, { dataDir: opts.dataDir, splitSeed: opts.splitSeed ?? 0 });
  const n = d.train.count;
  if (sizes.train + sizes.score > n) throw new UsageError(`train (${sizes.train}) + score (${sizes.score}) images exceed the ${n}-image training split`);
  if (sizes.validation > d.validation.count) throw new UsageError(`validation size ${sizes.validation} exceeds ${d.validation.count}`);
  if (sizes.test > d.test.count) throw new UsageError(`test size ${sizes.test} exceeds ${d.test.count}`);
  const range = (a: number, b: number) => Int32Array.from({ length: b - a }, (_, i) => a + i);
  const out: ChannelData = {
    dataset,
    train: subset(d.train, range(0, sizes.train)),
    score: subset(d.train, range(n - sizes.score, n)),
    validation: subset(d.validation, range(0, sizes.validation)),
    test: subset(d.test, range(0, sizes.test)),
  };
  cache.set(key, out);
  return out;
}

/** Images at `indices` as an NHWC tensor, and their labels. */
export function batchOf(set: ImageSet, indices: ArrayLike<number>): { x: tf.Tensor4D; labels: Int32Array } {
  const [h, w, c] = set.shape;
  const per = h * w * c;
  const images = new Float32Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = set.labels[j]!;
  }
  return { x: tf.tensor4d(images, [indices.length, h, w, c]), labels };
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
