/**
 * Batched conv column kernels (evaluators/columns.ts, evaluators/simd.ts): every JS segment with conv layers runs a
 * chunk of images at a time; the results must be the per-image kernels' bit for bit (predictions, margins, counts,
 * early exits), with the wasm SIMD inner loops and with their JS fallback, for any batch and chunk size.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, subset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import type { LayerMasks, ModelParams } from '../models/params.js';
import { initParams } from '../models/params.js';
import type { Architecture } from '../models/graph.js';
import { initBackend } from '../backends/backend.js';
import { loadReleasedModel, type ReleasedModel } from '../models/caffe/released.js';
import { evaluateMasks, type EngineOptions } from '../evaluators/engine.js';
import { pathsFor, type LayerPath } from '../evaluators/paths.js';
import { finishRows } from '../evaluators/sparse.js';
import { columnKernels, COLUMN_WASM } from '../evaluators/simd.js';
import type { EvaluationContext } from '../evaluators/types.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = resolve(repoRoot, '../shared/fixtures/olmp-released');

let val: ImageSet;
let ref5: ReleasedModel;
let comp5: ReleasedModel;

beforeAll(async () => {
  await initBackend('wasm');
  val = loadDataset('mnist', { limit: { validation: 2000, train: 1, test: 1 } }).validation;
  ref5 = loadReleasedModel(fixtures, 'lenet5-reference');
  comp5 = loadReleasedModel(fixtures, 'lenet5-compressed');
});

/** Each weight and bias kept with probability `density` (seeded). */
function randomMasks(model: ReleasedModel, density: number, seed: string): LayerMasks[] {
  const rng = new Rng(seed);
  return model.masks.map((m) => ({ weight: m.weight.map(() => (rng.uniform() < density ? 1 : 0)), bias: m.bias.map(() => (rng.uniform() < density ? 1 : 0)) }));
}

/** Per layer the largest-magnitude `density` of the weights (a pruned network that still works), every bias. */
function magnitudeMasks(model: ReleasedModel, density: number): LayerMasks[] {
  return model.params.layers.map((l) => {
    const sorted = Float32Array.from(l.weight, Math.abs).sort();
    const t = sorted[Math.min(sorted.length - 1, Math.floor((1 - density) * sorted.length))]!;
    return { weight: l.weight.map((v) => (Math.abs(v) >= t ? 1 : 0)), bias: new Uint8Array(l.bias.length).fill(1) };
  });
}

/** The float64 margins as raw bits, so that −0 / +0 and every last bit count. */
const bits = (a: Float64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

function run(ctx: EvaluationContext, masks: LayerMasks[], opts: Partial<EngineOptions> & { path: EngineOptions['path'] }) {
  const n = ctx.data.count;
  const predictions = new Int32Array(n);
  const margins = new Float64Array(n);
  const r = evaluateMasks(ctx, masks, { batchSize: 1000, ...opts, predictions, margins });
  return { r, predictions: [...predictions], margins: bits(margins) };
}

/** Column runs (several batch / chunk sizes, wasm and JS inner loops) against the per-image kernels. */
function expectSameAsPerImage(ctx: EvaluationContext, masks: LayerMasks[], path: EngineOptions['path'], label: string, variants: Partial<EngineOptions>[]) {
  const one = run(ctx, masks, { path, columns: false });
  expect(one.r.columnSegments, label).toBe(0);
  for (const v of variants) {
    const col = run(ctx, masks, { path, ...v });
    const tag = `${label} ${JSON.stringify(v)}`;
    expect(col.r.columnSegments, tag).toBeGreaterThan(0);
    expect(col.r.correct, tag).toBe(one.r.correct);
    expect(col.r.evaluated, tag).toBe(one.r.evaluated);
    expect(col.predictions, tag).toEqual(one.predictions);
    expect(col.margins === one.margins, tag).toBe(true);
  }
  return one;
}

describe('simd inner loops', () => {
  it('the wasm module validates and its kernels equal the JS ones bit for bit (odd lengths, ±0, NaN, ties)', () => {
    expect(WebAssembly.validate(COLUMN_WASM)).toBe(true);
    const w = columnKernels('wasm');
    const j = columnKernels('js');
    expect(w.kind).toBe('wasm');
    expect(j.kind).toBe('js');
    const rng = new Rng('simd');
    const special = [0, -0, NaN, 1, -1, 0.5];
    const fill = (a: Float64Array) => {
      for (let i = 0; i < a.length; i++) a[i] = rng.uniform() < 0.3 ? special[rng.int(special.length)]! : (rng.uniform() - 0.5) * 10;
    };
    const N = 600;
    const src = new Float64Array(N);
    fill(src);
    for (const n of [0, 1, 2, 3, 17, 64, 101]) {
      for (const op of ['axpy', 'pool4', 'pool4s'] as const) {
        const out: string[] = [];
        for (const K of [w, j]) {
          const a = K.arena(N + 40).subarray(40, 40 + N); // an offset view, as the plans use
          a.set(src);
          if (op === 'axpy') K.axpy(a, 3, a, 300, n, -0.7310000000000001);
          else K[op](a, 1, a, 200, 201 + n, 400, 450 + (n % 5), n);
          out.push(bits(a));
        }
        expect(out[0] === out[1], `${op} n=${n}`).toBe(true);
      }
    }
  });

  it('gather: bias, then each row times its weight in the order given, equals the scalar loop bit for bit (every lane tail)', () => {
    const w = columnKernels('wasm');
    const rng = new Rng('gather');
    const special = [0, -0, NaN, 1, -1, 0.5];
    for (const n of [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 101]) {
      for (const m of [0, 1, 3, 6]) {
        const rowsLen = 5 * n;
        const a = w.arena(rowsLen + n + m + m + 8);
        for (let i = 0; i < rowsLen; i++) a[i] = rng.uniform() < 0.3 ? special[rng.int(special.length)]! : (rng.uniform() - 0.5) * 10;
        const order = Array.from({ length: m }, () => rng.int(5));
        const weights = Array.from({ length: m }, () => (rng.uniform() - 0.5) * 3);
        const y = a.subarray(rowsLen, rowsLen + n);
        const ws = a.subarray(rowsLen + n, rowsLen + n + m);
        ws.set(weights);
        const start = rowsLen + n + m + ((rowsLen + n + m) & 1);
        const rows = new Int32Array(a.buffer, a.byteOffset + start * 8, m);
        order.forEach((r, k) => (rows[k] = a.byteOffset + r * n * 8));
        const bias = -0;
        w.gather!(y.byteOffset, rows.byteOffset, ws.byteOffset, m, n, bias);
        const want = new Float64Array(n);
        for (let j = 0; j < n; j++) {
          let acc = bias;
          for (let k = 0; k < m; k++) acc = acc + a[order[k]! * n + j]! * weights[k]!;
          want[j] = acc;
        }
        expect(bits(y) === bits(want), `n=${n} m=${m}`).toBe(true);
      }
    }
  });

  it('relu: the values and the non-zero flag of finishRows, bit for bit (±0, NaN, all-negative rows, every tail)', () => {
    const w = columnKernels('wasm');
    const rng = new Rng('relu');
    const special = [0, -0, NaN, 1, -1, 0.5];
    for (const n of [0, 1, 2, 3, 4, 5, 17, 100]) {
      for (const kind of ['mixed', 'negative', 'nan'] as const) {
        const src = Float64Array.from({ length: n }, () => (kind === 'negative' ? -rng.uniform() : rng.uniform() < 0.3 ? special[rng.int(special.length)]! : (rng.uniform() - 0.5) * 10));
        if (kind === 'nan' && n > 0) src[rng.int(n)] = NaN;
        const a = w.arena(n + 2).subarray(2, 2 + n);
        a.set(src);
        const flag = w.relu!(a.byteOffset, n);
        const want = src.slice();
        const nz = new Uint8Array(1);
        finishRows(want, n, Int32Array.of(0), true, nz);
        expect(bits(a) === bits(want), `${kind} n=${n}`).toBe(true);
        expect(flag, `${kind} n=${n}`).toBe(nz[0]);
      }
    }
  });
});

describe('conv column kernels: bit-identical to the per-image kernels', () => {
  it('LeNet-5 at 100%, 10%, 1% and the released model, sparse path: any batch, chunk and inner-loop kind', () => {
    const cases: [string, ModelParams, LayerMasks[], number][] = [
      ['100%', ref5.params, randomMasks(ref5, 1, 'cc-100'), 120],
      ['10%', ref5.params, magnitudeMasks(ref5, 0.1), 500],
      ['10% random', ref5.params, randomMasks(ref5, 0.1, 'cc-10'), 300],
      ['1%', ref5.params, magnitudeMasks(ref5, 0.01), 2000],
      ['released', comp5.params, comp5.masks, 2000],
    ];
    for (const [name, params, masks, n] of cases) {
      const ctx: EvaluationContext = { arch: ref5.arch, params, masks, stats: [], data: subset(val, Array.from({ length: n }, (_, i) => i)) };
      const one = expectSameAsPerImage(ctx, masks, 'sparse', name, [
        {},
        { batchSize: 333, columnChunk: 7 },
        { batchSize: 97, columnKernels: 'js' },
        { batchSize: 4096, columnChunk: 1 },
      ]);
      if (name !== '10% random') expect(new Set(one.predictions).size, name).toBeGreaterThan(1);
    }
  });

  it('mixed paths: conv segments that hand their output to tfjs, and that read tfjs output', () => {
    const ctx: EvaluationContext = { arch: ref5.arch, params: comp5.params, masks: comp5.masks, stats: [], data: subset(val, Array.from({ length: 700 }, (_, i) => i)) };
    const paths: LayerPath[][] = [
      ['sparse', 'sparse', 'dense', 'dense'], // conv1+conv2 → tfjs ip1 (reads channels the liveness pass dropped)
      ['dense', 'sparse', 'sparse', 'sparse'], // tfjs conv1 → conv2, ip1, ip2
      ['dense', 'sparse', 'dense', 'sparse'],
      ['sparse', 'dense', 'sparse', 'sparse'],
    ];
    for (const p of paths) expectSameAsPerImage(ctx, comp5.masks, p, p.join(','), [{ batchSize: 250, columnChunk: 9 }, { batchSize: 1000 }]);
  });

  it('early exit after the same batch with the same counts', () => {
    const masks = randomMasks(ref5, 0.05, 'cc-exit');
    const ctx: EvaluationContext = { arch: ref5.arch, params: ref5.params, masks, stats: [], data: val };
    const full = evaluateMasks(ctx, masks, { path: 'sparse', batchSize: 300 });
    expect(full.earlyExit).toBe(false);
    for (const minCorrect of [full.correct, full.correct + 1, full.correct + 300, val.count]) {
      const a = evaluateMasks(ctx, masks, { path: 'sparse', batchSize: 300, minCorrect });
      const b = evaluateMasks(ctx, masks, { path: 'sparse', batchSize: 300, minCorrect, columns: false });
      expect(a.columnSegments).toBe(1);
      expect([a.correct, a.evaluated, a.earlyExit]).toEqual([b.correct, b.evaluated, b.earlyExit]);
      expect(a.earlyExit).toBe(minCorrect > full.correct && a.evaluated < val.count);
    }
  });

  it('all-pruned channels and layers, bias-only channels: the per-image results, bit for bit', () => {
    const base = randomMasks(ref5, 0.1, 'cc-dead');
    const ctxFor = (masks: LayerMasks[]): EvaluationContext => ({ arch: ref5.arch, params: ref5.params, masks, stats: [], data: subset(val, Array.from({ length: 400 }, (_, i) => i)) });
    const none = (m: LayerMasks): LayerMasks => ({ weight: new Uint8Array(m.weight.length), bias: new Uint8Array(m.bias.length) });
    // conv weights are [kh, kw, cin, cout]: entry i belongs to output channel i % cout.
    const dropOut = (m: LayerMasks, cout: number, keep: (co: number) => boolean, bias: (co: number) => number): LayerMasks => ({
      weight: m.weight.map((v, i) => (keep(i % cout) ? v : 0)),
      bias: m.bias.map((_, o) => bias(o)),
    });
    const variants: [string, LayerMasks[]][] = [
      ['conv1 pruned', [none(base[0]!), base[1]!, base[2]!, base[3]!]],
      ['conv1 bias only', [{ weight: new Uint8Array(500), bias: new Uint8Array(20).fill(1) }, base[1]!, base[2]!, base[3]!]],
      ['conv2 pruned', [base[0]!, none(base[1]!), base[2]!, base[3]!]],
      ['half the conv1 channels dead, a few with bias only', [dropOut(base[0]!, 20, (co) => co % 2 === 0, (co) => (co % 4 === 1 ? 1 : 0)), base[1]!, base[2]!, base[3]!]],
      ['most conv2 channels dead', [base[0]!, dropOut(base[1]!, 50, (co) => co % 7 === 0, () => 0), base[2]!, base[3]!]],
      ['ip1 pruned', [base[0]!, base[1]!, none(base[2]!), base[3]!]],
    ];
    for (const [name, masks] of variants) {
      const ctx = ctxFor(masks);
      expectSameAsPerImage(ctx, masks, 'sparse', name, [{ batchSize: 128 }, { batchSize: 77, columnChunk: 13, columnKernels: 'js' }]);
      expectSameAsPerImage(ctx, masks, ['sparse', 'sparse', 'dense', 'dense'], `${name} (to tfjs)`, [{ batchSize: 200 }]);
    }
  });

  it('the released LeNet-5 runs all sparse under auto and keeps its verified test count', () => {
    const test = loadDataset('mnist', { limit: { validation: 1, train: 1, test: 10000 } }).test;
    const ctx: EvaluationContext = { arch: comp5.arch, params: comp5.params, masks: comp5.masks, stats: [], data: test };
    expect(pathsFor(ctx, comp5.masks, 'auto')).toEqual(['sparse', 'sparse', 'sparse', 'sparse']);
    const r = evaluateMasks(ctx, comp5.masks, { path: 'auto', batchSize: 1000 });
    expect(r.columnSegments).toBe(1);
    expect(r.correct).toBe(9909);
  });

  it('other conv shapes: same padding, stride 2, ReLU convs, a 3x3/2 pool (general loop), conv → flatten', () => {
    const arch: Architecture = {
      name: 'conv-columns-test',
      inputShape: [28, 28, 1],
      numClasses: 10,
      ops: [
        { type: 'conv2d', name: 'c1', kernel: 3, inChannels: 1, outChannels: 6, stride: 2, padding: 'same', activation: 'relu' },
        { type: 'conv2d', name: 'c2', kernel: 3, inChannels: 6, outChannels: 8, stride: 1, padding: 'same', activation: 'relu' },
        { type: 'maxpool', size: 3, stride: 2 },
        { type: 'conv2d', name: 'c3', kernel: 2, inChannels: 8, outChannels: 5, stride: 2, padding: 'valid', activation: 'linear' },
        { type: 'flatten' },
        { type: 'dense', name: 'fc', inUnits: 45, outUnits: 10, activation: 'linear' },
      ],
      maskGamma: [0, 0, 0, 0],
    };
    const rng = new Rng('cc-shapes');
    const params = initParams(arch, rng);
    for (const l of params.layers) for (let i = 0; i < l.bias.length; i++) l.bias[i] = (rng.uniform() - 0.4) * 0.2;
    const masks = params.layers.map((l) => ({ weight: l.weight.map(() => (rng.uniform() < 0.6 ? 1 : 0)), bias: l.bias.map(() => (rng.uniform() < 0.7 ? 1 : 0)) }));
    const ctx: EvaluationContext = { arch, params, masks, stats: [], data: subset(val, Array.from({ length: 300 }, (_, i) => i)) };
    const one = expectSameAsPerImage(ctx, masks, 'sparse', 'shapes', [{ batchSize: 100 }, { batchSize: 61, columnChunk: 5, columnKernels: 'js' }]);
    expect(new Set(one.predictions).size).toBeGreaterThan(1);
    // And the tfjs path agrees on the predictions (float32 vs float64: margins within rounding).
    const dense = run(ctx, masks, { path: 'dense' });
    let agree = 0;
    for (let i = 0; i < ctx.data.count; i++) if (dense.predictions[i] === one.predictions[i]) agree++;
    expect(agree).toBeGreaterThanOrEqual(ctx.data.count - 1);
  });
});
