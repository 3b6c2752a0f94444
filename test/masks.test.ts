/**
 * DNS mask rule (models/masks.ts, spec olmp.md §2) as the evaluators use it: hysteresis at 0.9T / 1.1T, biases
 * pooled into mu/sigma and masked, crate 0 = no update, all-pruned layers, and the spec's ✔ magnitude statistics
 * of the released reference models (read straight from the fixture files here).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { magnitudeStats, threshold, updateMaskArray, layerMasksForCrate, masksForCrates, type MagnitudeStats } from '../models/masks.js';
import type { LayerMasks, LayerParams } from '../models/params.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = resolve(repoRoot, '../shared/fixtures/olmp-released');

const f32 = (a: number[]) => Float32Array.from(a);
const u8 = (a: number[]) => Uint8Array.from(a);

describe('DNS threshold and hysteresis', () => {
  // mu 0, sigma 1, crate 10: T = 10, 0.9T = 9 and 1.1T = 11 exactly in float64 (and in float32).
  const stats: MagnitudeStats = { mu: 0, sigma: 1 };

  it('T = max(mu + c*sigma, 0)', () => {
    expect(threshold({ mu: 0.5, sigma: 0.25 }, 2)).toBe(1);
    expect(threshold({ mu: 0.5, sigma: 0.25 }, -4)).toBe(0);
    expect(threshold(stats, 10)).toBe(10);
    expect(0.9 * 10).toBe(9);
    expect(1.1 * 10).toBe(11);
  });

  it('on→off only at |v| <= 0.9T, off→on only at |v| > 1.1T, otherwise unchanged', () => {
    const above9 = Math.fround(9 + 1e-6);
    const above11 = Math.fround(11 + 1e-5);
    expect(above9).toBeGreaterThan(9);
    expect(above11).toBeGreaterThan(11);
    //            prev=1:  9   -9  above9  10  12  0.5 | prev=0: 11  -11 above11 -12  10  9   0
    const values = f32([9, -9, above9, 10, 12, 0.5, 11, -11, above11, -12, 10, 9, 0]);
    const prev = u8([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    const out = new Uint8Array(values.length);
    const ones = updateMaskArray(values, prev, 10, out);
    expect([...out]).toEqual([0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0]);
    expect(ones).toBe(5);
    // Hysteresis: |v| = 10 stays on if it was on and stays off if it was off.
    expect(out[3]).toBe(1);
    expect(out[10]).toBe(0);
  });

  it('updates in place when out aliases prev', () => {
    const values = f32([1, 20, 5]);
    const m = u8([1, 0, 1]);
    updateMaskArray(values, m, 10, m);
    expect([...m]).toEqual([0, 1, 0]);
  });
});

describe('layer masks for a crate', () => {
  it('pools weights and biases (non-zero entries only) in mu and sigma', () => {
    const layer: LayerParams = { weight: f32([1, 0, -3]), bias: f32([2, 0]) };
    const s = magnitudeStats(layer);
    // |v| over non-zeros: 1, 3, 2 → mu 2, population sigma sqrt(2/3)
    expect(s.mu).toBeCloseTo(2, 12);
    expect(s.sigma).toBeCloseTo(Math.sqrt(2 / 3), 12);
    // Without the bias the statistics would differ: the bias really is pooled.
    const noBias = magnitudeStats({ weight: layer.weight, bias: f32([0, 0]) });
    expect(noBias.mu).toBeCloseTo(2, 12);
    expect(noBias.sigma).toBeCloseTo(1, 12);
  });

  it('masks biases with the same threshold as weights', () => {
    const layer: LayerParams = { weight: f32([0.1, 5, 0.2, 7]), bias: f32([0.05, 6]) };
    const prev: LayerMasks = { weight: u8([1, 1, 1, 1]), bias: u8([1, 1]) };
    const m = layerMasksForCrate(layer, prev, { mu: 1, sigma: 1 }, 1); // T = 2, prune |v| <= 1.8
    expect([...m.weight]).toEqual([0, 1, 0, 1]);
    expect([...m.bias]).toEqual([0, 1]);
    // prev is not modified (stateless evaluation depends on it)
    expect([...prev.weight]).toEqual([1, 1, 1, 1]);
  });

  it('crate exactly 0 leaves the masks unchanged, while a tiny crate does update', () => {
    const layer: LayerParams = { weight: f32([0.5, 3, 0.25]), bias: f32([1]) };
    const prev: LayerMasks = { weight: u8([0, 1, 0]), bias: u8([0]) };
    const stats = { mu: 0, sigma: 1 }; // crate 0 would mean T = 0, i.e. "restore everything non-zero"
    const same = layerMasksForCrate(layer, prev, stats, 0);
    expect([...same.weight]).toEqual([0, 1, 0]);
    expect([...same.bias]).toEqual([0]);
    expect(same.weight).not.toBe(prev.weight);
    const tiny = layerMasksForCrate(layer, prev, stats, 1e-9);
    expect([...tiny.weight]).toEqual([1, 1, 1]);
    expect([...tiny.bias]).toEqual([1]);
    // masksForCrates: null and 0 both keep a layer; a number updates it.
    const layers = [layer, layer];
    const prevs = [prev, prev];
    const all = masksForCrates(layers, prevs, [stats, stats], [0, null]);
    expect(all.map((m) => [...m.weight])).toEqual([
      [0, 1, 0],
      [0, 1, 0],
    ]);
    const upd = masksForCrates(layers, prevs, [stats, stats], [null, 1e-9]);
    expect(upd.map((m) => [...m.weight])).toEqual([
      [0, 1, 0],
      [1, 1, 1],
    ]);
  });

  it('a huge crate prunes the whole layer, biases included', () => {
    const layer: LayerParams = { weight: f32([-4, 3, 100, 0.001]), bias: f32([50, -60]) };
    const prev: LayerMasks = { weight: u8([1, 1, 1, 1]), bias: u8([1, 1]) };
    const s = magnitudeStats(layer);
    const m = layerMasksForCrate(layer, prev, s, 1e6);
    expect([...m.weight]).toEqual([0, 0, 0, 0]);
    expect([...m.bias]).toEqual([0, 0]);
  });
});

interface Entry {
  layer: string;
  role: string;
  byteOffset: number;
  count: number;
  dtype: string;
}

/** Weights and biases of one released fixture folder, as raw Caffe-layout arrays (layout does not matter for stats). */
function readReleased(folder: string): { name: string; layer: LayerParams }[] {
  const dir = resolve(fixtures, folder);
  const manifest = JSON.parse(readFileSync(resolve(dir, 'manifest.json'), 'utf8')) as { tensors: Entry[] };
  const bin = readFileSync(resolve(dir, 'weights.bin'));
  const dv = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  const read = (e: Entry) => {
    expect(e.dtype).toBe('float32');
    const out = new Float32Array(e.count);
    for (let i = 0; i < e.count; i++) out[i] = dv.getFloat32(e.byteOffset + 4 * i, true);
    return out;
  };
  const names = [...new Set(manifest.tensors.filter((t) => t.role === 'weight').map((t) => t.layer))];
  return names.map((name) => ({
    name,
    layer: {
      weight: read(manifest.tensors.find((t) => t.layer === name && t.role === 'weight')!),
      bias: read(manifest.tensors.find((t) => t.layer === name && t.role === 'bias')!),
    },
  }));
}

describe('magnitude statistics of the released reference models (spec §2 ✔)', () => {
  it('LeNet-300-100', () => {
    const layers = readReleased('lenet300100-reference');
    expect(layers.map((l) => l.name)).toEqual(['ip1', 'ip2', 'ip3']);
    const want = [
      [0.024497, 0.017468],
      [0.047069, 0.034508],
      [0.188911, 0.141738],
    ];
    layers.forEach((l, k) => {
      const s = magnitudeStats(l.layer);
      expect(Math.abs(s.mu - want[k]![0]!)).toBeLessThan(5e-7);
      expect(Math.abs(s.sigma - want[k]![1]!)).toBeLessThan(5e-7);
    });
  });

  it('LeNet-5', () => {
    const layers = readReleased('lenet5-reference');
    expect(layers.map((l) => l.name)).toEqual(['conv1', 'conv2', 'ip1', 'ip2']);
    const want = [
      [0.186034, 0.116885],
      [0.033996, 0.024249],
      [0.021867, 0.013425],
      [0.057739, 0.042102],
    ];
    layers.forEach((l, k) => {
      const s = magnitudeStats(l.layer);
      expect(Math.abs(s.mu - want[k]![0]!)).toBeLessThan(5e-7);
      expect(Math.abs(s.sigma - want[k]![1]!)).toBeLessThan(5e-7);
    });
  });
});
