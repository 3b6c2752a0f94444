import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { datasetDir, describeImageShape, loadDataset, PIXEL_SCALE, type Dataset } from '../foundation/data/datasets.js';
import { readIdx } from '../foundation/data/idx.js';
import { parseNpy } from '../foundation/data/npy.js';
import { UsageError } from '../foundation/errors.js';

// ---- Writers for tiny datasets (the formats as their specifications and NumPy write them). ----

/** An IDX file: type 0x08 (bytes) or 0x0D (big-endian float32), big-endian dims, then the data. */
function idx(dims: number[], data: ArrayLike<number>, type: 0x08 | 0x0d = 0x08): Uint8Array {
  const size = type === 0x08 ? 1 : 4;
  const out = new Uint8Array(4 + 4 * dims.length + data.length * size);
  const v = new DataView(out.buffer);
  out[2] = type;
  out[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  const o = 4 + 4 * dims.length;
  for (let i = 0; i < data.length; i++) {
    if (type === 0x08) out[o + i] = data[i]!;
    else v.setFloat32(o + 4 * i, data[i]!, false);
  }
  return out;
}

type Descr = '|u1' | '<i8' | '<f4' | '<f8' | '<i4' | '>f4' | '<c8';

/** An NPY file of the given format version, header padded to a multiple of 64 bytes as NumPy does. */
function npy(descr: Descr, shape: number[], values: ArrayLike<number>, opts: { version?: 1 | 2 | 3; fortran?: boolean } = {}): Uint8Array {
  const version = opts.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const pre = version === 1 ? 10 : 12;
  dict += ' '.repeat(63 - ((pre + dict.length) % 64)) + '\n';
  let body: Uint8Array;
  if (descr === '|u1') body = Uint8Array.from(values);
  else if (descr === '<i8') body = new Uint8Array(BigInt64Array.from(Array.from(values, (x) => BigInt(x))).buffer);
  else if (descr === '<i4') body = new Uint8Array(Int32Array.from(values).buffer);
  else if (descr === '<f8') body = new Uint8Array(Float64Array.from(values).buffer);
  else body = new Uint8Array(Float32Array.from(values).buffer); // '<f4', and the refused '>f4'/'<c8' (never parsed)
  const out = new Uint8Array(pre + dict.length + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const v = new DataView(out.buffer);
  if (version === 1) v.setUint16(8, dict.length, true);
  else v.setUint32(8, dict.length, true);
  out.set(Buffer.from(dict, 'latin1'), pre);
  out.set(body, pre + dict.length);
  return out;
}

function tableCrc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
const crc32 = (d: Uint8Array): number => ((zlib as { crc32?: (d: Uint8Array) => number }).crc32 ?? tableCrc32)(d) >>> 0;

/** A zip archive whose entries are stored (0), deflated (8), or marked with another method (data stored as-is). */
function zip(entries: Record<string, Uint8Array>, method: number): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(entries)) {
    const nameBytes = Buffer.from(name, 'utf8');
    const packed = method === 8 ? new Uint8Array(zlib.deflateRawSync(data)) : data;
    const crc = crc32(data);
    const local = new Uint8Array(30 + nameBytes.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, method, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, packed.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    const central = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, packed.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    central.set(nameBytes, 46);
    locals.push(local, packed);
    centrals.push(central);
    offset += local.length + packed.length;
  }
  const cdSize = centrals.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, centrals.length, true);
  ev.setUint16(10, centrals.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return Buffer.concat([...locals, ...centrals, eocd]);
}

/** Deterministic pseudo-random bytes (a linear congruential generator), so expected values are known. */
function bytes(n: number, seed: number, mod = 256): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % mod;
  });
}

function expectUsage(fn: () => unknown, ...parts: string[]): string {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a UsageError mentioning ${parts.join(', ')}`).toBeInstanceOf(UsageError);
  const msg = (err as Error).message;
  for (const p of parts) expect(msg).toContain(p);
  expect(msg).not.toContain('\n');
  return msg;
}

const IDX_NAMES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

let root: string;
let seq = 0;
function folder(files: Record<string, Uint8Array>): string {
  const dir = join(root, `d${seq++}`);
  mkdirSync(dir);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  return dir;
}
function file(name: string, data: Uint8Array): string {
  const p = join(root, `f${seq++}-${name}`);
  writeFileSync(p, data);
  return p;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'prunus-datasets-'));
});

// A 20-image 4x3 greyscale IDX dataset with labels 0..4 and 5 test images.
const IDX3 = { train: bytes(20 * 12, 1), trainLabels: bytes(20, 2, 5), test: bytes(5 * 12, 3), testLabels: [4, 0, 1, 2, 3] };
function idx3Files(gz: boolean): Record<string, Uint8Array> {
  const arrays = [idx([20, 4, 3], IDX3.train), idx([20], IDX3.trainLabels), idx([5, 4, 3], IDX3.test), idx([5], IDX3.testLabels)];
  return Object.fromEntries(IDX_NAMES.map((n, i) => (gz ? [`${n}.gz`, zlib.gzipSync(arrays[i]!)] : [n, arrays[i]!])));
}

// A 35-image NPY dataset: uint8 5x5 images, int64 labels 0..11, 7 test images.
const NPY = { train: bytes(35 * 25, 4), trainLabels: bytes(35, 5, 12), test: bytes(7 * 25, 6), testLabels: [11, 0, 3, 3, 5, 1, 2] };
function npyEntries(): Record<string, Uint8Array> {
  return {
    'x_train.npy': npy('|u1', [35, 5, 5], NPY.train),
    'y_train.npy': npy('<i8', [35], NPY.trainLabels),
    'x_test.npy': npy('|u1', [7, 5, 5], NPY.test),
    'y_test.npy': npy('<i8', [7], NPY.testLabels),
  };
}

function checkNpyDataset(d: Dataset): void {
  expect(d.train.shape).toEqual([5, 5, 1]);
  expect(d.numClasses).toBe(12);
  // 35 training images: Math.round(3.5) = 4 held out for validation.
  expect([d.train.count, d.validation.count, d.test.count]).toEqual([31, 4, 7]);
  expect([...d.test.labels]).toEqual(NPY.testLabels);
  expect(Array.from(d.test.images)).toEqual(NPY.test.map((x) => Math.fround(x * PIXEL_SCALE)));
}

describe('user datasets: IDX folders', () => {
  it('reads 3-d IDX (plain and gzipped) with C = 1, a tenth held out, numClasses = max label + 1', () => {
    for (const gz of [false, true]) {
      const dir = folder(idx3Files(gz));
      const d = loadDataset(dir);
      expect(d.name).toBe(dir);
      expect(d.dir).toBe(dir);
      expect(d.train.shape).toEqual([4, 3, 1]);
      expect([d.train.count, d.validation.count, d.test.count]).toEqual([18, 2, 5]);
      expect(d.numClasses).toBe(Math.max(...IDX3.trainLabels, ...IDX3.testLabels) + 1);
      expect(Array.from(d.test.images)).toEqual(IDX3.test.map((x) => Math.fround(x / 256)));
      const file = loadDataset(dir, { trainOrder: 'file' });
      expect([...file.train.labels]).toEqual(IDX3.trainLabels);
      // Train and validation together are the training file.
      expect([...d.train.labels, ...d.validation.labels].sort()).toEqual([...IDX3.trainLabels].sort());
    }
  });

  it('reads 4-d channels-last IDX and applies scale and offset exactly', () => {
    const train = bytes(10 * 2 * 2 * 3, 7);
    const test = bytes(3 * 12, 8);
    const dir = folder({
      [IDX_NAMES[0]!]: idx([10, 2, 2, 3], train),
      [IDX_NAMES[1]!]: idx([10], [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]),
      [IDX_NAMES[2]!]: idx([3, 2, 2, 3], test),
      [IDX_NAMES[3]!]: idx([3], [2, 1, 0]),
    });
    const d = loadDataset(dir, { inputScale: 1 / 255, inputOffset: -0.5, trainOrder: 'file' });
    expect(d.train.shape).toEqual([2, 2, 3]);
    expect(describeImageShape(d.train.shape)).toBe('2x2x3');
    expect(d.numClasses).toBe(3);
    expect([d.train.count, d.validation.count]).toEqual([10, 1]);
    expect(Array.from(d.train.images)).toEqual(train.map((x) => Math.fround(x * (1 / 255) - 0.5)));
    expect(Array.from(d.test.images)).toEqual(test.map((x) => Math.fround(x * (1 / 255) - 0.5)));
  });

  it('reads IDX float32 images (type 0x0D) and refuses NaN pixels naming the file and index', () => {
    const values = [0.25, -1.5, 3, 1e-3, 0, 2, 7.5, -0.125];
    const files = {
      [IDX_NAMES[0]!]: idx([4, 2], values, 0x0d),
      [IDX_NAMES[1]!]: idx([4], [0, 1, 0, 1]),
      [IDX_NAMES[2]!]: idx([2, 2], values.slice(0, 4), 0x0d),
      [IDX_NAMES[3]!]: idx([2], [1, 0]),
    };
    const d = loadDataset(folder(files), { inputScale: 1, trainOrder: 'file' });
    expect(d.train.shape).toEqual([1, 1, 2]);
    expect(Array.from(d.train.images)).toEqual(values.map(Math.fround));
    const bad = values.slice();
    bad[5] = NaN;
    const dir = folder({ ...files, [IDX_NAMES[0]!]: idx([4, 2], bad, 0x0d) });
    expectUsage(() => loadDataset(dir), join(dir, IDX_NAMES[0]!), 'pixel at index 5', 'NaN');
  });

  it('loads MNIST with the default transform bit-identical to raw × 1/256, also with explicit defaults', () => {
    const dir = datasetDir('mnist');
    const raw = readIdx(existsSync(join(dir, 't10k-images-idx3-ubyte')) ? join(dir, 't10k-images-idx3-ubyte') : join(dir, 't10k-images-idx3-ubyte.gz')).data;
    const a = loadDataset('mnist', { limit: { train: 1, validation: 1 } });
    const b = loadDataset('mnist', { inputScale: PIXEL_SCALE, inputOffset: 0, limit: { train: 1, validation: 1 } });
    expect(a.numClasses).toBe(10);
    const expected = Float32Array.from(raw, (x) => x * PIXEL_SCALE);
    expect(Buffer.compare(Buffer.from(a.test.images.buffer), Buffer.from(expected.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(b.test.images.buffer), Buffer.from(expected.buffer))).toBe(0);
  });
});

describe('user datasets: NPY folders and NPZ archives', () => {
  it('reads an NPY folder of uint8 images and int64 labels', () => {
    const dir = folder(npyEntries());
    const d = loadDataset(dir);
    checkNpyDataset(d);
    expect(d.dir).toBe(dir);
  });

  it('reads float32 flat images with one-hot labels, applying scale and offset', () => {
    const x = bytes(12 * 6, 9).map((v) => v / 8);
    const y = [0, 2, 1, 1, 0, 2, 2, 0, 1, 0, 1, 2];
    const oneHot = (ls: number[], k: number): number[] => ls.flatMap((l) => Array.from({ length: k }, (_, j) => (j === l ? 1 : 0)));
    const entries = {
      'x_train.npy': npy('<f4', [12, 6], x, { version: 2 }),
      'y_train.npy': npy('<f4', [12, 4], oneHot(y, 4), { version: 3 }),
      'x_test.npy': npy('<f8', [2, 6], x.slice(0, 12)),
      'y_test.npy': npy('<f4', [2, 4], oneHot([1, 0], 4)),
    };
    const d = loadDataset(folder(entries), { inputScale: 2, inputOffset: 1, trainOrder: 'file' });
    expect(d.train.shape).toEqual([1, 1, 6]);
    expect([...d.train.labels]).toEqual(y);
    expect([...d.test.labels]).toEqual([1, 0]);
    // The one-hot width (4) declares the classes even though label 3 never occurs.
    expect(d.numClasses).toBe(4);
    expect(d.validation.count).toBe(1);
    expect(Array.from(d.train.images)).toEqual(x.map((v) => Math.fround(v * 2 + 1)));
  });

  it('reads NPZ archives with stored and with deflated entries', () => {
    for (const method of [0, 8]) {
      const p = file(`m${method}.npz`, zip(npyEntries(), method));
      const d = loadDataset(p);
      checkNpyDataset(d);
      expect([d.name, d.dir]).toEqual([p, p]);
    }
  });

  it('parses NPY format versions 1, 2 and 3 alike', () => {
    for (const version of [1, 2, 3] as const) {
      const a = parseNpy(npy('<i4', [2, 3], [1, -2, 3, 4, 5, -6], { version }), 'a.npy');
      expect(a.shape).toEqual([2, 3]);
      expect(Array.from(a.data)).toEqual([1, -2, 3, 4, 5, -6]);
    }
  });

  it('counts at least 2 classes', () => {
    const e = npyEntries();
    e['y_train.npy'] = npy('<i8', [35], new Array(35).fill(0));
    e['y_test.npy'] = npy('<i8', [7], new Array(7).fill(0));
    expect(loadDataset(folder(e)).numClasses).toBe(2);
  });
});

describe('user datasets: refusals name the file', () => {
  it('refuses truncated data, fortran order, big-endian and other dtypes', () => {
    const truncated = npy('|u1', [7, 5, 5], NPY.test).subarray(0, -3);
    const cases: [string, Uint8Array, string][] = [
      ['x_test.npy', truncated, 'truncated data'],
      ['x_test.npy', npy('|u1', [7, 5, 5], NPY.test, { fortran: true }), 'fortran_order'],
      ['x_test.npy', npy('>f4', [7, 5, 5], NPY.test), "big-endian dtype '>f4'"],
      ['x_test.npy', npy('<c8', [7, 5, 5], NPY.test), "unsupported dtype '<c8'"],
      ['x_test.npy', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 'not an NPY file'],
    ];
    for (const [name, data, what] of cases) {
      const dir = folder({ ...npyEntries(), [name]: data });
      expectUsage(() => loadDataset(dir), join(dir, name), what);
    }
  });

  it('refuses a row that is not one-hot, naming the row', () => {
    const e = npyEntries();
    e['y_test.npy'] = npy('<f4', [7, 3], [1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const dir = folder(e);
    expectUsage(() => loadDataset(dir), join(dir, 'y_test.npy'), 'row 2 is not one-hot');
  });

  it('refuses bad labels: out of 0..255, non-integer', () => {
    const e = npyEntries();
    e['y_train.npy'] = npy('<i8', [35], [...NPY.trainLabels.slice(0, 34), 300]);
    const dir = folder(e);
    expectUsage(() => loadDataset(dir), join(dir, 'y_train.npy'), 'label 300 at index 34', '256 classes');
    e['y_train.npy'] = npy('<f4', [35], [...NPY.trainLabels.slice(0, 10), 1.5, ...NPY.trainLabels.slice(11)]);
    const dir2 = folder(e);
    expectUsage(() => loadDataset(dir2), join(dir2, 'y_train.npy'), 'label 1.5 at index 10');
  });

  it('refuses a label count that differs from the image count, naming both files and shapes', () => {
    const e = npyEntries();
    e['y_train.npy'] = npy('<i8', [34], NPY.trainLabels.slice(0, 34));
    const dir = folder(e);
    expectUsage(() => loadDataset(dir), join(dir, 'y_train.npy'), '34 labels (shape 34)', join(dir, 'x_train.npy'), '(shape 35x5x5)');
  });

  it('refuses train and test images of different shapes, naming both files', () => {
    const e = npyEntries();
    e['x_test.npy'] = npy('|u1', [7, 5, 4], NPY.test.slice(0, 140));
    const dir = folder(e);
    expectUsage(() => loadDataset(dir), join(dir, 'x_test.npy'), '5x4x1', join(dir, 'x_train.npy'), '5x5x1');
  });

  it('refuses missing files, naming them', () => {
    const e: Record<string, Uint8Array> = npyEntries();
    delete e['y_test.npy'];
    const dir = folder(e);
    expectUsage(() => loadDataset(dir), 'missing data file', join(dir, 'y_test.npy'));
    const files = idx3Files(false);
    delete files[IDX_NAMES[2]!];
    const idxDir = folder(files);
    expectUsage(() => loadDataset(idxDir), 'missing data file', join(idxDir, IDX_NAMES[2]!));
    const z = npyEntries();
    delete z['x_test.npy'];
    const p = file('missing.npz', zip(z, 0));
    expectUsage(() => loadDataset(p), p, 'no entry x_test.npy');
  });

  it('refuses zip methods other than stored and deflated, and corrupt entries', () => {
    const p = file('m12.npz', zip(npyEntries(), 12));
    expectUsage(() => loadDataset(p), `${p}[x_train.npy]`, 'compression method 12');
    const archive = zip(npyEntries(), 0);
    archive[30 + 'x_train.npy'.length + 20] ^= 0xff; // a byte of x_train.npy's NPY header (the entry's data)
    const q = file('crc.npz', archive);
    expectUsage(() => loadDataset(q), `${q}[x_train.npy]`, 'CRC-32');
  });

  it('refuses a path that is no dataset, naming it; keeps refusing MNIST labels above 9', () => {
    const empty = folder({});
    expectUsage(() => loadDataset(empty), `${empty} is not a dataset`);
    const text = file('notes.txt', new Uint8Array([104, 105]));
    expectUsage(() => loadDataset(text), `${text} is not a dataset`);
    expectUsage(() => loadDataset(join(root, 'nowhere')), `unknown dataset '${join(root, 'nowhere')}'`);
    const files = idx3Files(false);
    files[IDX_NAMES[3]!] = idx([5], [4, 0, 12, 2, 3]);
    const dir = folder(files);
    expectUsage(() => loadDataset('mnist', { dataDir: dir }), `${join(dir, IDX_NAMES[3]!)}: label 12 at index 2 is out of range 0..9`);
    // The same folder as a user dataset: 13 classes.
    expect(loadDataset(dir).numClasses).toBe(13);
  });

  it('refuses non-finite scale or offset', () => {
    const dir = folder(idx3Files(false));
    expectUsage(() => loadDataset(dir, { inputScale: Infinity }), 'inputScale');
    expectUsage(() => loadDataset(dir, { inputOffset: NaN }), 'inputOffset');
  });
});
