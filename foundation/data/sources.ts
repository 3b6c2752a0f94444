/**
 * Where a dataset's four arrays (training images and labels, test images and labels) come from: a folder of IDX
 * files (the MNIST layout), a folder of x_train.npy, y_train.npy, x_test.npy, y_test.npy, or an .npz archive
 * holding those four arrays. Each reader returns the arrays as read, with the names used in error messages.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { readIdx } from './idx.js';
import { parseNpy, readNpy, type RawArray } from './npy.js';
import { parseZip } from './zip.js';

export type SourceKind = 'idx' | 'npy' | 'npz';

export interface SourceArrays {
  trainImages: RawArray;
  trainLabels: RawArray;
  testImages: RawArray;
  testLabels: RawArray;
}

export const IDX_STEMS = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

/** The array names of the NPY and NPZ layouts (Keras' names), file or entry name = `${name}.npy`. */
export const NPY_NAMES = { trainImages: 'x_train', trainLabels: 'y_train', testImages: 'x_test', testLabels: 'y_test' };

const ROLES = ['trainImages', 'trainLabels', 'testImages', 'testLabels'] as const;

/** Finds a stem as-is or with .gz in dir. */
function findIdxFile(dir: string, stem: string): string | undefined {
  for (const name of [stem, `${stem}.gz`]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Reads the four IDX files of a folder (each plain or gzipped). */
export function readIdxFolder(dir: string): SourceArrays {
  const read = (stem: string): RawArray => {
    const path = findIdxFile(dir, stem);
    if (!path) throw new UsageError(`missing data file ${join(dir, stem)}[.gz]`);
    const a = readIdx(path);
    return { name: path, shape: a.dims, data: a.data, float: a.data instanceof Float32Array };
  };
  return {
    trainImages: read(IDX_STEMS.trainImages),
    trainLabels: read(IDX_STEMS.trainLabels),
    testImages: read(IDX_STEMS.testImages),
    testLabels: read(IDX_STEMS.testLabels),
  };
}

/** Reads x_train.npy, y_train.npy, x_test.npy and y_test.npy from a folder. */
export function readNpyFolder(dir: string): SourceArrays {
  const read = (role: (typeof ROLES)[number]): RawArray => readNpy(join(dir, `${NPY_NAMES[role]}.npy`));
  return { trainImages: read('trainImages'), trainLabels: read('trainLabels'), testImages: read('testImages'), testLabels: read('testLabels') };
}

/** Reads the entries x_train.npy, y_train.npy, x_test.npy and y_test.npy of an .npz archive. */
export function readNpz(path: string): SourceArrays {
  const zip = parseZip(readFileSync(path), path);
  const read = (role: (typeof ROLES)[number]): RawArray => {
    const entry = `${NPY_NAMES[role]}.npy`;
    return parseNpy(zip.read(entry), `${path}[${entry}]`);
  };
  return { trainImages: read('trainImages'), trainLabels: read('trainLabels'), testImages: read('testImages'), testLabels: read('testLabels') };
}

/**
 * What kind of dataset `path` holds, or undefined when it is none of them. A folder is an IDX folder when it holds
 * all four IDX files, else an NPY folder when it holds any of the four .npy files (a missing one is then reported
 * by name), else an IDX folder when it holds any IDX file. A file is an .npz archive when its name ends in .npz
 * or it starts with a zip signature.
 */
export function detectSource(path: string): SourceKind | undefined {
  if (!existsSync(path)) return undefined;
  if (statSync(path).isDirectory()) {
    const idx = Object.values(IDX_STEMS).map((stem) => findIdxFile(path, stem) !== undefined);
    if (idx.every(Boolean)) return 'idx';
    if (Object.values(NPY_NAMES).some((n) => existsSync(join(path, `${n}.npy`)))) return 'npy';
    if (idx.some(Boolean)) return 'idx';
    return undefined;
  }
  if (path.toLowerCase().endsWith('.npz')) return 'npz';
  const head = readHead(path, 2);
  return head[0] === 0x50 && head[1] === 0x4b ? 'npz' : undefined;
}

/** The first n bytes of a file (fewer when it is shorter), without reading the rest. */
function readHead(path: string, n: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(n);
    return buf.subarray(0, readSync(fd, buf, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

export function readSource(kind: SourceKind, path: string): SourceArrays {
  if (kind === 'idx') return readIdxFolder(path);
  if (kind === 'npy') return readNpyFolder(path);
  return readNpz(path);
}
