/**
 * The sparse export (models/tfjs/sparse.ts): bit-exact round trips of the OLMP authors' released LeNets, the same
 * predictions as the tfjs export and prunus's own forward pass, the Rice index code's edge cases, quantised values,
 * the size targets, and one-line errors for damaged folders.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../backends/backend.js';
import { UsageError } from '../foundation/errors.js';
import { Rng } from '../foundation/rng.js';
import { loadDataset, type ImageSet } from '../foundation/data/datasets.js';
import type { Architecture } from '../models/graph.js';
import { initParams, maskedParams, type LayerMasks, type ModelParams } from '../models/params.js';
import { disposeModelTensors, forward, toTensors } from '../models/forward.js';
import { defaultFixturesDir, loadReleasedModel, type ReleasedModel } from '../models/caffe/released.js';
import { kerasLayers, layersModelFiles } from '../models/tfjs/write.js';
import { loadLayersModelFiles } from '../models/tfjs/layers-model.js';
import { floatToHalf, halfToFloat } from '../models/tfjs/weights.js';
import {
  MAX_RICE_K,
  bestRiceK,
  decodeSparseWeights,
  encodeSparseModel,
  encodeSparseTensors,
  loadSparseModel,
  readSparseModelFiles,
  riceBits,
  writeSparseModelFiles,
  type SparseQuantization,
  type SparseTensorInput,
} from '../models/tfjs/sparse.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = defaultFixturesDir(repoRoot);
const QUANTISED = ['float16', 'uint16', 'uint8'] as const;

let tmp: string;
let lenet5: ReleasedModel;
let lenet300: ReleasedModel;
let images: ImageSet;

beforeAll(async () => {
  await initBackend('wasm');
  tmp = mkdtempSync(join(tmpdir(), 'prunus-sparse-test-'));
  lenet5 = loadReleasedModel(FIXTURES, 'lenet5-compressed');
  lenet300 = loadReleasedModel(FIXTURES, 'lenet300100-compressed');
  images = loadDataset('mnist', { limit: { train: 1, validation: 1, test: 300 } }).test;
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A fresh folder under the test's temp folder. */
let folders = 0;
function folder(): string {
  const d = join(tmp, `m${folders++}`);
  mkdirSync(d);
  return d;
}

/** Decoded weights as one Float32Array per spec. */
function split(specs: { name: string; shape: number[] }[], weights: Uint8Array): Map<string, Float32Array> {
  const all = new Float32Array(weights.buffer, weights.byteOffset, weights.byteLength / 4);
  const out = new Map<string, Float32Array>();
  let off = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    out.set(s.name, all.slice(off, (off += n)));
  }
  return out;
}

/** The masked tensors the export must reproduce, by Keras name. */
function expected(arch: Architecture, params: ModelParams, masks: LayerMasks[]): { name: string; shape: number[]; values: Float32Array }[] {
  return kerasLayers(arch, maskedParams(params, masks)).tensors;
}

/** Indices where two float32 arrays differ bit for bit. */
function bitDiffs(a: Float32Array, b: Float32Array): number[] {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) out.push(i);
  return out;
}

/** Indices (the first 10) where a zero did not decode as 0, or a value moved by more than tol(value). */
function quantErrors(orig: Float32Array, dec: Float32Array, tol: (x: number) => number): { zerosChanged: number[]; beyondStep: number[] } {
  const zerosChanged: number[] = [];
  const beyondStep: number[] = [];
  for (let i = 0; i < orig.length; i++) {
    const x = orig[i]!;
    if (x === 0) {
      if (dec[i] !== 0) zerosChanged.push(i);
    } else if (!(Math.abs(dec[i]! - x) <= tol(x))) beyondStep.push(i);
  }
  return { zerosChanged: zerosChanged.slice(0, 10), beyondStep: beyondStep.slice(0, 10) };
}

function argmax(logits: Float32Array, classes: number): Int32Array {
  const n = logits.length / classes;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
    out[i] = best;
  }
  return out;
}

function predict(model: tf.LayersModel, set: ImageSet): Float32Array {
  const inShape = model.inputs[0]!.shape.slice(1) as number[];
  return tf.tidy(() => (model.predict(tf.tensor(set.images, [set.count, ...inShape])) as tf.Tensor).dataSync() as Float32Array);
}

/** A model's weights as tfjs holds them, by `<layer>/<weight>`. */
function modelWeights(model: tf.LayersModel): Map<string, Float32Array> {
  return new Map(model.weights.map((w) => [w.originalName, w.read().dataSync() as Float32Array]));
}

/** Round trip of raw tensors through the codec: the decoded values per tensor, and the file's size. */
function codecRoundTrip(tensors: SparseTensorInput[], q: SparseQuantization = 'none'): { out: Float32Array[]; bytes: number } {
  const { section, bytes } = encodeSparseTensors(tensors, q);
  const { specs, weights } = decodeSparseWeights({ sparseWeights: section }, bytes);
  const m = split(specs, weights);
  return { out: tensors.map((t) => m.get(t.name)!), bytes: bytes.length };
}

const releasedCases = [
  ['LeNet-300-100', () => lenet300],
  ['LeNet-5', () => lenet5],
] as const;

describe('sparse export of the released LeNets', () => {
  for (const [name, get] of releasedCases) {
    it(`${name}: decoded tensors equal the masked parameters bit for bit`, () => {
      const m = get();
      const enc = encodeSparseModel(m.arch, m.params, m.masks, { quantize: 'none' });
      const { specs, weights } = decodeSparseWeights(enc.modelJson, enc.bytes);
      const want = expected(m.arch, m.params, m.masks);
      expect(specs.map((s) => [s.name, s.shape, s.dtype])).toEqual(want.map((t) => [t.name, t.shape, 'float32']));
      const got = split(specs, weights);
      for (const t of want) expect({ tensor: t.name, diffs: bitDiffs(got.get(t.name)!, t.values) }).toEqual({ tensor: t.name, diffs: [] });
      // Only the non-zeros are stored: float32 values take 4 bytes each, the index code far less than a bitmap.
      const nonZero = want.reduce((s, t) => s + t.values.filter((v) => v !== 0).length, 0);
      const total = want.reduce((s, t) => s + t.values.length, 0);
      expect(enc.bytes.length - 4 * nonZero).toBeGreaterThan(0);
      expect(enc.bytes.length - 4 * nonZero).toBeLessThan(total / 8 / 10);
    });

    it(`${name}: the loaded sparse folder predicts as the tfjs export and prunus's masked forward`, async () => {
      const m = get();
      const dir = folder();
      writeSparseModelFiles(dir, encodeSparseModel(m.arch, m.params, m.masks));
      const sparse = await loadSparseModel(dir);
      const tfjs = await loadLayersModelFiles(layersModelFiles(m.arch, maskedParams(m.params, m.masks)));
      const t = toTensors(m.arch, m.params, m.masks);
      const own = tf.tidy(() => forward(m.arch, t, tf.tensor4d(images.images, [images.count, ...images.shape])).dataSync() as Float32Array);
      disposeModelTensors(t);
      const a = predict(sparse, images);
      const b = predict(tfjs, images);
      sparse.dispose();
      tfjs.dispose();
      // Same weights, same tfjs graph: the same logits exactly.
      expect(bitDiffs(a, b)).toEqual([]);
      const pa = argmax(a, 10);
      expect(Array.from(pa)).toEqual(Array.from(argmax(b, 10)));
      expect(Array.from(pa)).toEqual(Array.from(argmax(own, 10)));
      const correct = pa.reduce((s, p, i) => s + (p === images.labels[i] ? 1 : 0), 0);
      expect(correct / images.count).toBeGreaterThan(0.95);
    });
  }

  it('sizes: the sparse folders meet the targets (1/100 and 1/50 of the dense float32 weights)', () => {
    for (const [m, limit] of [
      [lenet5, 17_243],
      [lenet300, 21_329],
    ] as const) {
      const dir = folder();
      writeSparseModelFiles(dir, encodeSparseModel(m.arch, m.params, m.masks));
      expect(readdirSync(dir).sort()).toEqual(['model.json', 'weights.sparse']);
      const raw = readdirSync(dir).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
      expect(raw).toBeLessThanOrEqual(limit);
      const dense = 4 * expected(m.arch, m.params, m.masks).reduce((s, t) => s + t.values.length, 0);
      expect(Math.round(dense / limit)).toBe(m === lenet5 ? 100 : 50);
      // model.json is minified, carries the topology and no weightsManifest.
      const text = readFileSync(join(dir, 'model.json'), 'utf8');
      expect(text).not.toContain('\n');
      const json = JSON.parse(text) as Record<string, unknown>;
      expect(json.weightsManifest).toBeUndefined();
      expect(json.modelTopology).toEqual(layersModelFiles(m.arch, m.params).modelJson.modelTopology);
    }
  });

  for (const q of QUANTISED) {
    it(`${q}: decoded values are what the loaded model holds, within a quantisation step, zeros kept`, async () => {
      const m = lenet5;
      const dir = folder();
      const enc = encodeSparseModel(m.arch, m.params, m.masks, { quantize: q });
      writeSparseModelFiles(dir, enc);
      const { specs, weights } = readSparseModelFiles(dir);
      const got = split(specs, weights);
      const model = await loadSparseModel(dir);
      const held = modelWeights(model);
      model.dispose();
      for (const t of expected(m.arch, m.params, m.masks)) {
        const d = got.get(t.name)!;
        expect(bitDiffs(held.get(t.name)!, d)).toEqual([]);
        const kept = t.values.filter((v) => v !== 0);
        const step = q === 'float16' ? 0 : (Math.max(...kept) - Math.min(...kept)) / (q === 'uint8' ? 255 : 65535);
        // Half a step, plus float32 rounding of the dequantised value.
        const tol = (x: number) => (q === 'float16' ? Math.max(Math.abs(x) * 2 ** -11, 2 ** -25) : step * 0.5 * (1 + 1e-9) + Math.abs(x) * 2 ** -23);
        expect({ tensor: t.name, ...quantErrors(t.values, d, tol) }).toEqual({ tensor: t.name, zerosChanged: [], beyondStep: [] });
        if (q === 'float16') expect(bitDiffs(d, Float32Array.from(t.values, (v) => halfToFloat(floatToHalf(v))))).toEqual([]);
      }
    });
  }
});

describe('Rice index code', () => {
  it('k is the best of 0..20 and an empty list costs nothing', () => {
    expect(bestRiceK([])).toEqual({ k: 0, bits: 0 });
    expect(bestRiceK([0, 0, 0])).toEqual({ k: 0, bits: 3 });
    expect(bestRiceK([2 ** 31])).toEqual({ k: MAX_RICE_K, bits: MAX_RICE_K + 1 + 2 ** (31 - MAX_RICE_K) });
    const rng = new Rng('rice');
    for (const p of [0.5, 0.1, 0.01, 0.001]) {
      const gaps = Array.from({ length: 500 }, () => Math.floor(Math.log(1 - rng.uniform()) / Math.log(1 - p)));
      const best = bestRiceK(gaps);
      for (let k = 0; k <= MAX_RICE_K; k++) expect(best.bits).toBeLessThanOrEqual(riceBits(gaps, k));
      expect(riceBits(gaps, best.k)).toBe(best.bits);
    }
  });

  it('empty, all-zero, fully dense tensors and gaps of 0 and huge gaps round-trip exactly', () => {
    const rng = new Rng('edges');
    const dense = Float32Array.from({ length: 1000 }, () => rng.normal() + 10);
    const huge = new Float32Array(2 ** 22);
    // A long run of neighbours (gap 0) and one gap of about four million: so many zero gaps keep k small, so the huge
    // gap is a long unary run.
    const run = 100_000;
    for (let i = 0; i < run; i++) huge[i] = (i % 97) + 1;
    const hugeGaps = [...new Array<number>(run).fill(0), 2 ** 22 - run - 1];
    expect(bestRiceK(hugeGaps).k).toBeLessThanOrEqual(6);
    huge[huge.length - 1] = -7.5;
    const lonely = new Float32Array(2 ** 22);
    lonely[2 ** 22 - 1] = 3.25;
    const negZero = Float32Array.of(0, -0, 1.5, -0);
    const tensors: SparseTensorInput[] = [
      { name: 'empty', shape: [0], values: new Float32Array(0), sparse: true },
      { name: 'emptyDense', shape: [0, 3], values: new Float32Array(0), sparse: false },
      { name: 'zeros', shape: [10, 100], values: new Float32Array(1000), sparse: true },
      { name: 'dense', shape: [1000], values: dense, sparse: true },
      { name: 'huge', shape: [2 ** 22], values: huge, sparse: true },
      { name: 'lonely', shape: [2 ** 11, 2 ** 11], values: lonely, sparse: true },
      { name: 'negZero', shape: [4], values: negZero, sparse: true },
      { name: 'bn', shape: [5], values: Float32Array.of(1, 0, -2, 0.5, 3), sparse: false },
    ];
    const { out, bytes } = codecRoundTrip(tensors);
    tensors.forEach((t, i) => expect({ name: t.name, diffs: bitDiffs(out[i]!, t.name === 'negZero' ? Float32Array.of(0, 0, 1.5, 0) : t.values) }).toEqual({ name: t.name, diffs: [] }));
    // Sizes, tensor by tensor: header 'PRSP' + version + count, a mode byte each; sparse: count, k, the code, values.
    const code = (gaps: number[]) => Math.ceil(bestRiceK(gaps).bits / 8);
    const sizes = [
      3, // empty: mode, count 0, k
      1, // empty dense: mode only
      1 + 2,
      1 + 2 + 1 + code(new Array(1000).fill(0)) + 4000, // dense: count needs two LEB128 bytes, 1000 bits of index
      1 + 3 + 1 + code(hugeGaps) + 4 * (run + 1),
      1 + 1 + 1 + code([2 ** 22 - 1]) + 4,
      1 + 1 + 1 + code([2]) + 4,
      1 + 20,
    ];
    expect(code(new Array(1000).fill(0))).toBe(125);
    expect(bytes).toBe(6 + sizes.reduce((a, b) => a + b, 0));
  });

  it('at 1% density the index code is far denser than a one-bit-per-weight mask', () => {
    const rng = new Rng('density');
    const n = 100_000;
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) if (rng.uniform() < 0.01) v[i] = rng.normal() || 1;
    const kept = v.filter((x) => x !== 0).length;
    const { out, bytes } = codecRoundTrip([{ name: 'w', shape: [n], values: v, sparse: true }]);
    expect(bitDiffs(out[0]!, v)).toEqual([]);
    const indexBytes = bytes - 4 * kept;
    expect(indexBytes).toBeLessThan(n / 8 / 10);
    // Close to the entropy of the positions (about 8.1 bits per non-zero at 1%).
    expect((8 * indexBytes) / kept).toBeLessThan(9.5);
  });

  for (const q of QUANTISED) {
    it(`${q} codec: zeros stay zero, values within a step, a single value and dense tensors exact where they must be`, () => {
      const rng = new Rng(`q-${q}`);
      const v = new Float32Array(5000);
      for (let i = 0; i < v.length; i++) if (rng.uniform() < 0.05) v[i] = rng.normal() * 0.1;
      const single = new Float32Array(50);
      single[7] = 0.123;
      single[31] = 0.123;
      const bn = Float32Array.from({ length: 64 }, (_, i) => (i % 3 === 0 ? 0 : rng.normal()));
      const tensors: SparseTensorInput[] = [
        { name: 'w', shape: [5000], values: v, sparse: true },
        { name: 'single', shape: [50], values: single, sparse: true },
        { name: 'bn', shape: [64], values: bn, sparse: false },
      ];
      const { out } = codecRoundTrip(tensors, q);
      tensors.forEach((t, j) => {
        const d = out[j]!;
        const lo = Math.min(...t.values.filter((x) => t.sparse ? x !== 0 : true), t.sparse ? Infinity : 0);
        const hi = Math.max(...t.values.filter((x) => t.sparse ? x !== 0 : true), t.sparse ? -Infinity : 0);
        const step = q === 'float16' ? 0 : (hi - lo) / (q === 'uint8' ? 255 : 65535);
        const tol = (x: number) => (q === 'float16' ? Math.abs(x) * 2 ** -11 + 2 ** -25 : step * 0.5 * (1 + 1e-9) + Math.abs(x) * 2 ** -23);
        expect({ tensor: t.name, ...quantErrors(t.values, d, tol) }).toEqual({ tensor: t.name, zerosChanged: [], beyondStep: [] });
      });
      // One distinct kept value is represented exactly (the range's min).
      if (q !== 'float16') expect(out[1]![7]).toBe(Math.fround(0.123));
    });
  }

  it('a model with BatchNorm, a depthwise layer pruned to nothing and a fully dense layer round-trips and predicts', async () => {
    const arch: Architecture = {
      name: 'tiny-bn',
      inputShape: [6, 6, 2],
      numClasses: 3,
      ops: [
        { type: 'conv2d', name: 'c1', kernel: 3, inChannels: 2, outChannels: 4, stride: 1, padding: 'same', activation: 'linear' },
        { type: 'batchnorm', name: 'bn1', channels: 4, epsilon: 1e-3, activation: 'relu' },
        { type: 'depthwise', name: 'dw', kernel: 3, channels: 4, depthMultiplier: 1, stride: 1, padding: 'valid', activation: 'relu', useBias: false },
        { type: 'flatten' },
        { type: 'dense', name: 'fc', inUnits: 64, outUnits: 3, activation: 'linear' },
      ],
      maskGamma: [2e-5, 2e-5, 2e-4],
    };
    const rng = new Rng('tiny');
    const params = initParams(arch, rng);
    const bn = params.batchNorms[0]!;
    for (let c = 0; c < 4; c++) {
      bn.gamma[c] = 1 + 0.2 * rng.normal();
      bn.beta[c] = 0.1 * rng.normal();
      bn.movingMean[c] = 0.1 * rng.normal();
      bn.movingVariance[c] = 0.5 + rng.uniform();
    }
    params.layers[2]!.bias.forEach((_, i, b) => (b[i] = rng.normal()));
    const masks: LayerMasks[] = [
      { weight: Uint8Array.from({ length: 72 }, () => (rng.uniform() < 0.3 ? 1 : 0)), bias: Uint8Array.of(1, 0, 1, 0) },
      { weight: new Uint8Array(36), bias: new Uint8Array(0) },
      { weight: new Uint8Array(192).fill(1), bias: new Uint8Array(3).fill(1) },
    ];
    const x = tf.tensor4d(Float32Array.from({ length: 5 * 72 }, () => rng.normal()), [5, 6, 6, 2]);
    const t = toTensors(arch, params, masks);
    const own = tf.tidy(() => forward(arch, t, x).dataSync() as Float32Array);
    disposeModelTensors(t);
    for (const q of ['none', ...QUANTISED] as const) {
      const dir = folder();
      const enc = encodeSparseModel(arch, params, masks, { quantize: q });
      writeSparseModelFiles(dir, enc);
      const { specs, weights } = readSparseModelFiles(dir);
      const got = split(specs, weights);
      const model = await loadSparseModel(dir);
      const held = modelWeights(model);
      for (const w of expected(arch, params, masks)) {
        expect(bitDiffs(held.get(w.name)!, got.get(w.name)!)).toEqual([]);
        if (q === 'none') expect(bitDiffs(got.get(w.name)!, w.values)).toEqual([]);
        expect(quantErrors(w.values, got.get(w.name)!, () => Infinity).zerosChanged).toEqual([]);
      }
      expect(got.get('dw/depthwise_kernel')!.every((v) => v === 0)).toBe(true);
      const logits = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
      model.dispose();
      const scale = Math.max(...Array.from(own, Math.abs));
      const err = Math.max(...Array.from(logits, (v, i) => Math.abs(v - own[i]!)));
      expect(err / scale).toBeLessThan(q === 'none' ? 1e-5 : q === 'uint8' ? 0.05 : 5e-3);
    }
    x.dispose();
  });
});

describe('damaged sparse folders', () => {
  let dir: string;
  let bytes: Uint8Array;
  beforeAll(() => {
    dir = folder();
    const enc = encodeSparseModel(lenet5.arch, lenet5.params, lenet5.masks);
    writeSparseModelFiles(dir, enc);
    bytes = enc.bytes;
  });

  const fails = async (path: string, file: string, what: RegExp) => {
    const err = await loadSparseModel(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    const msg = (err as Error).message;
    expect(msg).toContain(file);
    expect(msg).toMatch(what);
    expect(msg).not.toContain('\n');
  };

  it('a truncated weights.sparse, cut anywhere, is a UsageError naming the file', async () => {
    const file = join(dir, 'weights.sparse');
    const cuts = new Set<number>([0, 1, 4, 5, 6, 7, 8, 9, 10, bytes.length - 1, bytes.length - 2, bytes.length - 5]);
    for (let c = 11; c < bytes.length; c += 61) cuts.add(c);
    try {
      for (const c of cuts) {
        writeFileSync(file, bytes.subarray(0, c));
        expect(() => readSparseModelFiles(dir), `cut at ${c}`).toThrow(/truncated/);
        expect(() => readSparseModelFiles(dir), `cut at ${c}`).toThrow(file);
      }
      writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
      await fails(dir, file, /truncated/);
    } finally {
      writeFileSync(file, bytes);
    }
    await expect(loadSparseModel(dir)).resolves.toBeDefined();
  });

  it('bad magic and trailing bytes are UsageErrors naming the file', async () => {
    const file = join(dir, 'weights.sparse');
    try {
      const bad = bytes.slice();
      bad[0] = 'X'.charCodeAt(0);
      writeFileSync(file, bad);
      await fails(join(dir, 'model.json'), file, /bad magic/);
      writeFileSync(file, Buffer.concat([bytes, Uint8Array.of(0, 0)]));
      await fails(dir, file, /2 bytes after the last tensor/);
    } finally {
      writeFileSync(file, bytes);
    }
  });

  it('a missing weights.sparse or model.json is a UsageError naming the file', async () => {
    const d = folder();
    await fails(d, join(d, 'model.json'), /missing/);
    writeFileSync(join(d, 'model.json'), readFileSync(join(dir, 'model.json')));
    await fails(d, join(d, 'weights.sparse'), /missing/);
    writeFileSync(join(d, 'model.json'), '{"modelTopology":');
    await fails(d, join(d, 'model.json'), /not valid JSON/);
  });
});
