import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseIdx, readIdx } from '../foundation/data/idx.js';
import { loadDataset } from '../foundation/data/datasets.js';
import { UsageError } from '../foundation/errors.js';

function idx(dims: number[], data: number[]): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  header[2] = 8;
  header[3] = dims.length;
  const v = new DataView(header.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  return new Uint8Array([...header, ...data]);
}

describe('IDX reader', () => {
  it('parses dimensions and data', () => {
    const a = parseIdx(idx([2, 3], [1, 2, 3, 4, 5, 6]), 'x');
    expect(a.dims).toEqual([2, 3]);
    expect([...a.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });
  it('names the file and the problem on bad magic, wrong dims and wrong length', () => {
    expect(() => parseIdx(new Uint8Array([1, 0, 8, 1, 0, 0, 0, 0]), 'f.idx')).toThrow(/f\.idx: not an IDX file/);
    expect(() => parseIdx(idx([2], [1, 2]), 'f.idx', 3)).toThrow(/expected 3 dimensions/);
    expect(() => parseIdx(idx([3], [1, 2]), 'f.idx')).toThrow(/file length 10 does not match/);
    expect(() => parseIdx(idx([3], [1, 2]), 'f.idx')).toThrow(UsageError);
  });
  it('reads gzipped files by magic bytes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prunus-idx-'));
    const p = join(dir, 'a');
    writeFileSync(p, gzipSync(idx([4], [9, 8, 7, 6])));
    expect([...readIdx(p).data]).toEqual([9, 8, 7, 6]);
    // A plain Uint8Array (a Buffer's slice() is a view, and copying one by its constructor calls deprecated Buffer()).
    writeFileSync(join(dir, 'b'), idx([3], [1, 2, 3]));
    for (const f of ['a', 'b']) {
      const d = readIdx(join(dir, f)).data;
      expect(Buffer.isBuffer(d), f).toBe(false);
      expect(d.constructor).toBe(Uint8Array);
    }
    expect([...readIdx(join(dir, 'b')).data]).toEqual([1, 2, 3]);
    expect(() => readIdx(join(dir, 'missing'))).toThrow(/missing data file/);
  });
});

describe('MNIST', () => {
  it('splits 54k/6k/10k, scales by 1/256, and the split is seeded', () => {
    const a = loadDataset('mnist');
    expect([a.train.count, a.validation.count, a.test.count]).toEqual([54000, 6000, 10000]);
    let max = 0;
    for (let i = 0; i < 784 * 100; i++) max = Math.max(max, a.test.images[i]!);
    expect(max).toBeCloseTo(255 / 256, 6);
    const b = loadDataset('mnist', { splitSeed: 0, limit: { validation: 10 } });
    expect([...b.validation.labels]).toEqual([...a.validation.labels.subarray(0, 10)]);
    const c = loadDataset('mnist', { splitSeed: 1, limit: { validation: 50 } });
    expect([...c.validation.labels]).not.toEqual([...a.validation.labels.subarray(0, 50)]);
    // Labels of the split are a permutation of the original training labels: class counts add up to 60k.
    const counts = new Array(10).fill(0);
    for (const s of [a.train, a.validation]) for (const l of s.labels) counts[l]++;
    expect(counts.reduce((x, y) => x + y, 0)).toBe(60000);
    expect(counts[1]).toBe(6742); // MNIST's published count of ones in the training set
  });
  it("train order 'file' trains on the whole training file in file order; validation stays the split's", () => {
    const split = loadDataset('mnist', { limit: { validation: 100 } });
    const file = loadDataset('mnist', { trainOrder: 'file', limit: { validation: 100 } });
    expect(file.trainOrder).toBe('file');
    expect(split.trainOrder).toBe('split');
    expect(file.train.count).toBe(60000);
    // MNIST's training file starts with the labels 5 0 4 1 9 2 1 3 1 4.
    expect([...file.train.labels.subarray(0, 10)]).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect([...split.train.labels.subarray(0, 10)]).not.toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect([...file.validation.labels]).toEqual([...split.validation.labels]);
    expect(loadDataset('mnist', { trainOrder: 'file', limit: { train: 64 } }).train.labels[0]).toBe(5);
    expect(() => loadDataset('mnist', { trainOrder: 'shuffled' as never })).toThrow(/unknown train order 'shuffled'/);
  });
  it('rejects unknown datasets and missing folders', () => {
    expect(() => loadDataset('cifar')).toThrow(/unknown dataset 'cifar'/);
    expect(() => loadDataset('mnist', { dataDir: '/nonexistent' })).toThrow(/does not exist/);
  });
});
