/**
 * Channel pruning: channel groups and closed-form costs, physical slimming (== masked model, also as a tfjs
 * LayersModel), the scorers' planted-channel checks, the search's FLOPs budget, k_g = 0 refused, determinism.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backends/backend.js';
import { getArchitecture } from '../models/architectures.js';
import { layerStats } from '../models/walk.js';
import { type Architecture } from '../models/graph.js';
import { vggBn } from '../models/zoo-cnn.js';
import { initParams, type ModelParams } from '../models/params.js';
import { toTensors, forward, runGraph, disposeModelTensors } from '../models/forward.js';
import {
  applyChannelMasks,
  channelGroups,
  checkKeep,
  configCost,
  denseCost,
  keepCount,
  keepCounts,
  layerMasksFromChannels,
  masksFromScores,
  topK,
  type ChannelGroup,
  type ChannelMasks,
} from '../models/channels.js';
import { slimModel } from '../models/slim.js';
import { toLayersModel } from '../models/tfjs/layers-model.js';
import { Rng } from '../foundation/rng.js';
import { UsageError } from '../foundation/errors.js';
import type { ImageSet } from '../foundation/data/datasets.js';
import { conv2dForwardConvGrads, batchNormTrain } from '../models/ops/train-ops.js';
import { diScores, gfbsScores, l1Scores, randomScores, diBatchScore } from '../src/channels/scorers.js';
import { dcpScores, trainHeads, greedySelect, dcpHeadPoints, DCP_DEFAULTS } from '../src/channels/dcp.js';
import { searchKeepRatios, uniformRatioForBudget, scoreConfig, type ChannelEvaluator } from '../src/channels/search.js';
import { diRoundKeep } from '../src/channels/methods.js';
import { trainSgd } from '../src/train/sgd.js';
import { evaluateAccuracy } from '../src/train/evaluate.js';
import { recalibrateBatchNorm } from '../src/channels/recalibrate.js';
import { pruneChannels, type ChannelsReport } from '../src/channels/run.js';
import { channelsBuilder, channelsContext } from '../src/channels/evaluator.js';
import { createInProcessEvaluator } from '../evaluators/index.js';

const lenet = getArchitecture('lenet-5');
const vgg: Architecture = vggBn();

/** Random parameters with non-trivial BatchNorm statistics. */
function randomParams(arch: Architecture, seed: number): ModelParams {
  const rng = new Rng(seed);
  const p = initParams(arch, rng);
  for (const l of p.layers) for (let i = 0; i < l.bias.length; i++) l.bias[i] = 0.1 * rng.normal();
  for (const b of p.batchNorms) {
    for (let i = 0; i < b.gamma.length; i++) {
      b.gamma[i] = 0.5 + rng.uniform();
      b.beta[i] = 0.2 * rng.normal();
      b.movingMean[i] = 0.1 * rng.normal();
      b.movingVariance[i] = 0.5 + rng.uniform();
    }
  }
  return p;
}

function randomMasks(groups: ChannelGroup[], rng: Rng): ChannelMasks {
  return groups.map((g) => {
    const k = 1 + rng.int(g.channels);
    const m = new Uint8Array(g.channels);
    for (const c of Array.from(rng.permutation(g.channels)).slice(0, k)) m[c] = 1;
    return m;
  });
}

/** Synthetic images in [0,1) with random labels. */
function syntheticSet(n: number, seed: number): ImageSet {
  const rng = new Rng(seed);
  const images = Float32Array.from({ length: n * 784 }, () => rng.uniform());
  const labels = Uint8Array.from({ length: n }, () => rng.int(10));
  return { images, labels, count: n, shape: [28, 28, 1] };
}

function logits(arch: Architecture, params: ModelParams, x: tf.Tensor): Float32Array {
  const t = toTensors(arch, params);
  const y = tf.tidy(() => forward(arch, t, x));
  const out = y.dataSync().slice() as Float32Array;
  y.dispose();
  disposeModelTensors(t);
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function lastIndex(scores: Float32Array): number {
  let worst = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! < scores[worst]!) worst = i;
  return worst;
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('channel groups and costs', () => {
  it('derives LeNet-5 groups (logits not prunable) with NHWC flatten slices', () => {
    const g = channelGroups(lenet);
    expect(g.map((x) => [x.name, x.channels, x.batchNorm])).toEqual([
      ['conv1', 20, null],
      ['conv2', 50, null],
      ['ip1', 500, null],
    ]);
    expect(g[0]!.consumers).toEqual([{ layer: 1, kind: 'conv2d', spatial: 1 }]);
    expect(g[1]!.consumers).toEqual([{ layer: 2, kind: 'dense', spatial: 16 }]);
    expect(g[2]!.consumers).toEqual([{ layer: 3, kind: 'dense', spatial: 1 }]);
    const d = denseCost(lenet);
    expect(d.macs).toBe(layerStats(lenet).reduce((s, l) => s + l.macs, 0));
    expect(d.macs).toBe(2293000);
    expect(d.params).toBe(431080);
  });

  it('derives the BN CNN groups with their BatchNorms', () => {
    const g = channelGroups(vgg);
    expect(g.map((x) => [x.name, x.channels, x.batchNorm])).toEqual([
      ['conv1', 16, 0],
      ['conv2', 16, 1],
      ['conv3', 32, 2],
      ['conv4', 32, 3],
      ['conv5', 64, 4],
    ]);
    expect(g[4]!.consumers).toEqual([{ layer: 5, kind: 'dense', spatial: 9 }]);
    expect(vgg.ops.filter((o) => o.type === 'conv2d').length).toBeGreaterThanOrEqual(4);
  });

  it('closed-form MACs/params equal the slimmed architecture (random keeps)', () => {
    const rng = new Rng(3);
    for (const arch of [lenet, vgg]) {
      const groups = channelGroups(arch);
      const params = randomParams(arch, 4);
      for (let t = 0; t < 5; t++) {
        const masks = randomMasks(groups, rng);
        const keep = masks.map((m) => m.reduce((s, v) => s + v, 0));
        const slim = slimModel(arch, groups, params, masks);
        const stats = layerStats(slim.arch);
        const bn = slim.arch.ops.reduce((s, o) => s + (o.type === 'batchnorm' ? 2 * o.channels : 0), 0);
        const c = configCost(arch, groups, keep);
        expect(c.macs).toBe(stats.reduce((s, l) => s + l.macs, 0));
        expect(c.params).toBe(stats.reduce((s, l) => s + l.params, 0) + bn);
      }
    }
  });

  it('keep count is clamp(round(r·C), 1, C) and k_g = 0 is refused everywhere', () => {
    expect(keepCount(0.5, 20)).toBe(10);
    expect(keepCount(0.01, 20)).toBe(1);
    expect(keepCount(1, 20)).toBe(20);
    expect(keepCount(0.525, 20)).toBe(11);
    expect(() => keepCount(0, 20)).toThrow(UsageError);
    expect(() => keepCount(1.2, 20)).toThrow(UsageError);
    const groups = channelGroups(lenet);
    expect(() => checkKeep(groups, [0, 10, 10])).toThrow(/k_g = 0/);
    expect(() => configCost(lenet, groups, [5, 0, 10])).toThrow(UsageError);
    expect(() => masksFromScores(groups, groups.map((g) => new Float32Array(g.channels)), [1, 1, 0])).toThrow(UsageError);
    expect(() => topK([1, 2, 3], 0)).toThrow(UsageError);
    const empty = groups.map((g) => new Uint8Array(g.channels).fill(1));
    empty[1] = new Uint8Array(50);
    expect(() => layerMasksFromChannels(lenet, groups, empty)).toThrow(/keeps no channel/);
    expect(() => slimModel(lenet, groups, initParams(lenet, new Rng(1)), empty)).toThrow(UsageError);
    const ctx = channelsContext(lenet, initParams(lenet, new Rng(1)), syntheticSet(4, 1));
    expect(() => channelsBuilder.validate!(ctx, { kind: 'channels', kept: [[0], [], [1]] })).toThrow(UsageError);
    expect(() => keepCounts(groups, [0.5, 0.5])).toThrow(UsageError);
  });

  it('top-k ranks by score, ties to the lower index, NaN last', () => {
    expect(topK([0.1, 0.5, 0.5, NaN, 0.2], 2)).toEqual([1, 2]);
    expect(topK([NaN, 0, 0], 2)).toEqual([1, 2]);
  });
});

describe('physical slimming', () => {
  const x = tf.tidy(() => tf.tensor4d(syntheticSet(16, 9).images, [16, 28, 28, 1]));
  afterAll(() => x.dispose());

  for (const [name, arch] of [
    ['LeNet-5', lenet],
    ['BN CNN', vgg],
  ] as const) {
    it(`${name}: the slimmed model (functional and tf.sequential) equals the masked model`, async () => {
      const rng = new Rng(name.length);
      const groups = channelGroups(arch);
      const params = randomParams(arch, 11);
      for (let t = 0; t < 3; t++) {
        const masks = randomMasks(groups, rng);
        const masked = applyChannelMasks(arch, groups, params, masks);
        const slim = slimModel(arch, groups, params, masks);
        const a = logits(arch, masked, x);
        const b = logits(slim.arch, slim.params, x);
        const scale = Math.max(1, ...Array.from(a, Math.abs));
        expect(maxAbsDiff(a, b) / scale).toBeLessThan(1e-5);
        // Same through weight-level masks (what the shared evaluators apply) for the unmasked BN parameters.
        const t2 = toTensors(arch, params, layerMasksFromChannels(arch, groups, masks));
        const c = tf.tidy(() => forward(arch, t2, x));
        expect(maxAbsDiff(a, c.dataSync()) / scale).toBeLessThan(1e-5);
        c.dispose();
        disposeModelTensors(t2);
        const lm = await toLayersModel(slim.arch, slim.params);
        const p = lm.predict(x) as tf.Tensor;
        expect(maxAbsDiff(b, p.dataSync()) / scale).toBeLessThan(1e-5);
        p.dispose();
        lm.dispose();
        // Something was actually removed.
        expect(configCost(arch, groups, masks.map((m) => m.reduce((s, v) => s + v, 0))).macs).toBeLessThan(denseCost(arch, groups).macs);
      }
    });
  }
});

describe('trainable forward', () => {
  it('conv gradients as forward convs equal the cpu backend (valid and same padding)', async () => {
    const rng = new Rng(5);
    const xs = Float32Array.from({ length: 2 * 9 * 9 * 3 }, () => rng.normal());
    for (const [k, pad] of [
      [5, 'valid'],
      [3, 'same'],
    ] as const) {
      const ws = Float32Array.from({ length: k * k * 3 * 4 }, () => rng.normal());
      const run = (custom: boolean) =>
        tf.tidy(() => {
          const x = tf.tensor4d(xs, [2, 9, 9, 3]);
          const w = tf.tensor4d(ws, [k, k, 3, 4]);
          const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(custom ? conv2dForwardConvGrads(a as tf.Tensor4D, b as tf.Tensor4D, { kernel: k, padding: pad }) : tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad)));
          return tf.grads(f)([x, w]).map((g) => g.dataSync().slice() as Float32Array);
        });
      const mine = run(true);
      await initBackend('cpu');
      const ref = run(false);
      await initBackend('wasm');
      for (let i = 0; i < 2; i++) expect(maxAbsDiff(mine[i]!, ref[i]!) / Math.max(...Array.from(ref[i]!, Math.abs))).toBeLessThan(1e-4);
    }
  });

  it("training-mode BatchNorm's closed-form gradient equals tfjs's", () => {
    const rng = new Rng(6);
    const xs = Float32Array.from({ length: 4 * 3 * 3 * 5 }, () => 2 * rng.normal() + 1);
    const gs = Float32Array.from({ length: 5 }, () => rng.normal());
    const bs = Float32Array.from({ length: 5 }, () => rng.normal());
    const wOut = Float32Array.from({ length: 4 * 3 * 3 * 5 }, () => rng.normal());
    const run = (mine: boolean) =>
      tf.tidy(() => {
        const x = tf.tensor4d(xs, [4, 3, 3, 5]);
        const g = tf.tensor1d(gs);
        const b = tf.tensor1d(bs);
        const f = (a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
          let y: tf.Tensor;
          if (mine) y = batchNormTrain(a, gg as tf.Tensor1D, bb as tf.Tensor1D, 1e-3);
          else {
            const m = tf.moments(a, [0, 1, 2]);
            y = tf.batchNorm(a, m.mean, m.variance, bb as tf.Tensor1D, gg as tf.Tensor1D, 1e-3);
          }
          return tf.sum(tf.mul(tf.square(y), tf.tensor4d(wOut, [4, 3, 3, 5])));
        };
        return tf.grads(f)([x, g, b]).map((t) => t.dataSync().slice() as Float32Array);
      });
    const a = run(true);
    const b = run(false);
    for (let i = 0; i < 3; i++) expect(maxAbsDiff(a[i]!, b[i]!) / Math.max(1, ...Array.from(b[i]!, Math.abs))).toBeLessThan(1e-4);
  });

  it('the frozen mode (unfused, differentiable ops) equals the fused inference mode', () => {
    const x = tf.tensor4d(syntheticSet(8, 2).images, [8, 28, 28, 1]);
    for (const arch of [lenet, vgg]) {
      const p = randomParams(arch, 8);
      const t = toTensors(arch, p);
      const a = tf.tidy(() => runGraph(arch, t, x, { mode: 'frozen' }));
      const b = tf.tidy(() => forward(arch, t, x));
      expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBeLessThan(1e-4);
      tf.dispose([a, b]);
      disposeModelTensors(t);
    }
    x.dispose();
  });
});

describe('scorers rank a planted useless channel last', () => {
  const data = syntheticSet(96, 21);

  it('DI: a conv2 channel with a constant pre-activation output (zero filter, bias 3) scores 0', () => {
    const p = randomParams(lenet, 12);
    const c = 17;
    const w = p.layers[1]!.weight; // [5,5,20,50]
    for (let r = 0; r < w.length / 50; r++) w[r * 50 + c] = 0;
    p.layers[1]!.bias[c] = 3;
    const groups = channelGroups(lenet);
    const s = diScores(lenet, groups, p, data, 1, { batches: 2, batchSize: 32, rho: 0.1 });
    expect(lastIndex(s[1]!)).toBe(c);
    expect(s[1]![c]).toBe(0);
    for (let i = 0; i < 50; i++) if (i !== c) expect(s[1]![i]!).toBeGreaterThan(0);
    // Deterministic for a seed.
    expect(diScores(lenet, groups, p, data, 1, { batches: 2, batchSize: 32, rho: 0.1 })).toEqual(s);
  });

  it('DI closed form matches tr[Ȳᵀ(X̄X̄ᵀ+ρI)⁻¹Ȳ] differentiated by finite differences', () => {
    // T(m) = tr[ȲᵀA(m)⁻¹Ȳ] with X_c scaled by m_c; |∂T/∂m_c| at m = 1 equals s_c = 2‖X̄_cᵀZ‖².
    const rng = new Rng(4);
    const B = 12;
    const C = 3;
    const S = 2;
    const K = 3;
    const X = Float32Array.from({ length: B * S * C }, () => rng.normal());
    const labels = Array.from({ length: B }, (_, i) => i % K);
    const s = new Float64Array(C);
    diBatchScore(X, B, C, labels, K, 0.1, s);
    const T = (m: number[]) => {
      const Xm = Float64Array.from(X, (v, i) => v * m[i % C]!);
      const D = S * C;
      const Xc = new Float64Array(B * D);
      for (let d = 0; d < D; d++) {
        let mu = 0;
        for (let i = 0; i < B; i++) mu += Xm[i * D + d]!;
        mu /= B;
        for (let i = 0; i < B; i++) Xc[i * D + d] = Xm[i * D + d]! - mu;
      }
      const A = Array.from({ length: B }, (_, i) => Array.from({ length: B }, (_, j) => {
        let v = i === j ? 0.1 : 0;
        for (let d = 0; d < D; d++) v += Xc[i * D + d]! * Xc[j * D + d]!;
        return v;
      }));
      const Y = Array.from({ length: B }, (_, i) => Array.from({ length: K }, (_, k) => (labels[i] === k ? 1 : 0) - labels.filter((l) => l === k).length / B));
      // Solve by Gauss-Jordan (test-only reference).
      const n = B;
      const M = A.map((row, i) => [...row, ...Y[i]!]);
      for (let col = 0; col < n; col++) {
        let piv = col;
        for (let r = col + 1; r < n; r++) if (Math.abs(M[r]![col]!) > Math.abs(M[piv]![col]!)) piv = r;
        [M[col], M[piv]] = [M[piv]!, M[col]!];
        const d = M[col]![col]!;
        for (let j = 0; j < n + K; j++) M[col]![j]! /= d;
        for (let r = 0; r < n; r++) {
          if (r === col) continue;
          const f = M[r]![col]!;
          for (let j = 0; j < n + K; j++) M[r]![j]! -= f * M[col]![j]!;
        }
      }
      let tr = 0;
      for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) tr += Y[i]![k]! * M[i]![n + k]!;
      return tr;
    };
    for (let c = 0; c < C; c++) {
      const h = 1e-4;
      const up = [1, 1, 1];
      const dn = [1, 1, 1];
      up[c] = 1 + h;
      dn[c] = 1 - h;
      const fd = Math.abs((T(up) - T(dn)) / (2 * h));
      expect(Math.abs(fd - s[c]!) / s[c]!).toBeLessThan(1e-3);
    }
  });

  it('GFBS (BatchNorm γ): a channel whose outgoing weights are zero and β = 0 ranks last', () => {
    const p = randomParams(vgg, 13);
    const groups = channelGroups(vgg);
    const g = groups[2]!; // conv3 → conv4
    const c = 5;
    for (const b of p.batchNorms) for (let i = 0; i < b.beta.length; i++) b.beta[i] = 0.05 + 0.1 * Math.abs(b.beta[i]!);
    p.batchNorms[g.batchNorm!]!.beta[c] = 0;
    const w = p.layers[g.consumers[0]!.layer]!.weight; // [3,3,32,32]
    for (let a = 0; a < 9; a++) for (let o = 0; o < 32; o++) w[(a * 32 + c) * 32 + o] = 0;
    const s = gfbsScores(vgg, groups, p, data, 2, { batchSize: 48, wBeta: 0.05 });
    expect(lastIndex(s[2]!)).toBe(c);
    expect(s[2]![c]).toBe(0);
    expect(gfbsScores(vgg, groups, p, data, 2, { batchSize: 48, wBeta: 0.05 })).toEqual(s);
  });

  it('GFBS (gates, LeNet-5): a conv2 channel with zero fc1 rows and zero bias ranks last', () => {
    const p = randomParams(lenet, 14);
    const groups = channelGroups(lenet);
    for (const l of p.layers) for (let i = 0; i < l.bias.length; i++) l.bias[i] = 0.05 + 0.1 * Math.abs(l.bias[i]!);
    const c = 31;
    p.layers[1]!.bias[c] = 0;
    const w = p.layers[2]!.weight; // [800, 500], rows s·50 + c
    for (let s = 0; s < 16; s++) for (let o = 0; o < 500; o++) w[(s * 50 + c) * 500 + o] = 0;
    const s = gfbsScores(lenet, groups, p, data, 3, { batchSize: 48, wBeta: 0.05 });
    expect(lastIndex(s[1]!)).toBe(c);
    expect(s[1]![c]).toBe(0);
  });

  it('L1: a conv1 filter with tiny weights ranks last; random scores follow the seed', () => {
    const p = randomParams(lenet, 15);
    const c = 7;
    const w = p.layers[0]!.weight; // [5,5,1,20]
    for (let r = 0; r < 25; r++) w[r * 20 + c]! *= 1e-3;
    const groups = channelGroups(lenet);
    expect(lastIndex(l1Scores(lenet, groups, p)[0]!)).toBe(c);
    expect(randomScores(groups, 1)).toEqual(randomScores(groups, 1));
    expect(randomScores(groups, 1)[0]).not.toEqual(randomScores(groups, 2)[0]);
  });

  it('DCP: a conv1 channel with an all-zero output gets no gradient at conv2 and is selected last', () => {
    const p = randomParams(lenet, 16);
    const c = 4;
    const w = p.layers[0]!.weight;
    for (let r = 0; r < 25; r++) w[r * 20 + c] = 0;
    p.layers[0]!.bias[c] = 0;
    const groups = channelGroups(lenet);
    expect(dcpHeadPoints(lenet)).toEqual([3]);
    expect(dcpHeadPoints(vgg)).toEqual([4, 9]);
    const opts = { ...DCP_DEFAULTS, selectionImages: 64, batchSize: 32, maxSteps: 5, itersPerStep: 2, headImages: 96, headSteps: 10 };
    const heads = trainHeads(lenet, p, data, 1, opts);
    expect(heads).toHaveLength(1);
    const s = dcpScores(lenet, [groups[0]!], p, heads, data, 1, opts)[0]!;
    expect(lastIndex(s)).toBe(c);
    expect(new Set(Array.from(s)).size).toBe(20); // a full ranking
    // Pruning to k keeps the first k of that order (prefix-consistent), and refuses k = 0.
    const r = greedySelect(lenet, groups[0]!, p, p, heads, data, 8, '1:score', opts);
    expect(r.order).toHaveLength(8);
    expect(r.order).not.toContain(c);
    expect(() => greedySelect(lenet, groups[0]!, p, p, heads, data, 0, '1', opts)).toThrow(UsageError);
  });
});

describe('search under a FLOPs budget', () => {
  const groups = channelGroups(lenet);
  const dense = denseCost(lenet, groups);
  /** A synthetic accuracy that rises with kept channels (no tensors): the search must trade it against MACs. */
  const fake = (base: number): ChannelEvaluator => ({
    async accuracy(keeps) {
      return keeps.map((k) => base * Math.pow(configCost(lenet, groups, k).macs / dense.macs, 0.02));
    },
  });

  for (const budget of [0.5, 0.25]) {
    it(`best configuration stays within ${budget} of the dense MACs, feasible or not`, async () => {
      for (const maxDrop of [0.05, 0]) {
        const r = await searchKeepRatios(lenet, groups, fake(0.99), {
          objective: 'macs',
          flopsBudget: budget,
          maxAccDrop: maxDrop,
          baselineAccuracy: 0.99,
          popSize: 4,
          budget: 21,
          lower: 0.05,
          upper: 1,
          seed: 7,
        });
        expect(r.best.macs).toBeLessThanOrEqual(budget * dense.macs);
        expect(r.evaluations).toBe(21);
        if (maxDrop === 0) expect(r.best.result.feasible).toBe(false);
        else expect(r.best.result.feasible).toBe(true);
        // Same seed, same search.
        const again = await searchKeepRatios(lenet, groups, fake(0.99), { objective: 'macs', flopsBudget: budget, maxAccDrop: maxDrop, baselineAccuracy: 0.99, popSize: 4, budget: 21, lower: 0.05, upper: 1, seed: 7 });
        expect(again.best.keep).toEqual(r.best.keep);
      }
    });
  }

  it('the start ratio is the largest uniform ratio within the budget; violations put the FLOPs budget first', () => {
    const r = uniformRatioForBudget(lenet, groups, 0.5);
    const fits = (x: number) => configCost(lenet, groups, keepCounts(groups, groups.map(() => x))).macs <= 0.5 * dense.macs;
    expect(fits(r)).toBe(true);
    expect(fits(Math.min(1, r + 0.02))).toBe(false);
    const s = { objective: 'macs' as const, flopsBudget: 0.5, maxAccDrop: 0.01, baselineAccuracy: 0.9 };
    const overFlops = scoreConfig({ macs: 0.51 * dense.macs, params: 1 }, dense, 0.9, s);
    const lowAcc = scoreConfig({ macs: 0.3 * dense.macs, params: 1 }, dense, 0.0, s);
    expect(overFlops.feasible || lowAcc.feasible).toBe(false);
    expect(overFlops.violation).toBeGreaterThan(lowAcc.violation);
    expect(scoreConfig({ macs: 0.5 * dense.macs, params: 1 }, dense, 0.89, s)).toEqual({ fitness: 0.5, feasible: true, violation: 0 });
  });

  it('DI rounds scale the pruned fraction toward the target and end on it', () => {
    expect(diRoundKeep(groups, [10, 20, 100], 1, 5)).toEqual([18, 44, 420]);
    expect(diRoundKeep(groups, [10, 20, 100], 5, 5)).toEqual([10, 20, 100]);
    expect(diRoundKeep(groups, [10, 20, 100], 1, 1)).toEqual([10, 20, 100]);
  });

  it("the shared evaluators score 'channels' candidates like the slimmed model", async () => {
    const set = syntheticSet(64, 30);
    const p = randomParams(lenet, 31);
    const ev = await createInProcessEvaluator({ backend: 'wasm' });
    await ev.setContext(channelsContext(lenet, p, set));
    const masks = randomMasks(groups, new Rng(32));
    const [r] = await ev.evaluate([{ kind: 'channels', kept: masks.map((m) => Array.from(m.keys()).filter((i) => m[i])) }]);
    const slim = slimModel(lenet, groups, p, masks);
    expect(r!.accuracy).toBeCloseTo(evaluateAccuracy(slim.arch, slim.params, null, set).accuracy, 10);
    await ev.close();
  });
});

describe('end to end (tiny budgets)', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'prunus-channels-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const tiny = {
    data: { train: 512, score: 256, validation: 200, test: 200 },
    baseline: { steps: 40 },
    search: { popSize: 4, budget: 9 },
    di: { batches: 2, batchSize: 64, rounds: 2 },
    finetune: { steps: 10 },
  } as never;

  it('LeNet-5 DI: within the FLOPs budget, slimmed, files written, deterministic for a seed', async () => {
    const run = (out: string) => pruneChannels({ model: 'lenet-5', method: 'di', quick: true, flopsBudget: 0.5, seed: 3, backend: 'wasm', resultsRoot: root, out: join(root, out), overrides: tiny });
    const a: ChannelsReport = await run('a');
    expect(a.macs.after).toBeLessThanOrEqual(0.5 * a.macs.before);
    expect(a.macs.reduction).toBeGreaterThanOrEqual(0.5);
    expect(a.macs.withinBudget).toBe(true);
    expect(a.slim.maxAbsDiffVsMasked).toBeLessThan(1e-4);
    expect(a.groups.every((g) => g.kept >= 1 && g.kept === g.keptIndices.length)).toBe(true);
    for (const k of ['baseline', 'pruned', 'finetuned'] as const) expect(a.accuracy[k]).toBeGreaterThan(0.1);
    expect(a.seed).toBe(3);
    expect(a.backend.name).toBe('wasm');
    for (const f of ['config.json', 'report.json', 'search.json', 'model/model.json', 'model/weights.bin']) expect(existsSync(join(root, 'a', f))).toBe(true);
    const onDisk = JSON.parse(readFileSync(join(root, 'a', 'report.json'), 'utf8')) as ChannelsReport;
    expect(onDisk.macs).toEqual(a.macs);
    const b = await run('b'); // baseline now cached
    expect(b.baseline.cached).toBe(true);
    expect(b.groups).toEqual(a.groups);
    expect(b.accuracy).toEqual(a.accuracy);
    await expect(run('a')).rejects.toThrow(UsageError); // refuses to overwrite a finished run
  });

  it('a trainer run is deterministic for a seed and holds masks', () => {
    const set = syntheticSet(64, 40);
    const groups = channelGroups(vgg);
    const p = randomParams(vgg, 41);
    const masks = randomMasks(groups, new Rng(42));
    const masked = applyChannelMasks(vgg, groups, p, masks);
    const cfg = { steps: 2, batchSize: 16, lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4, schedule: { kind: 'cosine' as const }, bnMomentum: 0.9 };
    const pm = { layers: layerMasksFromChannels(vgg, groups, masks), batchNorms: p.batchNorms.map((b) => ({ gamma: new Uint8Array(b.gamma.length).fill(1), beta: new Uint8Array(b.beta.length).fill(1) })) };
    groups.forEach((g, gi) => masks[gi]!.forEach((m, c) => { if (!m) { pm.batchNorms[g.batchNorm!]!.gamma[c] = 0; pm.batchNorms[g.batchNorm!]!.beta[c] = 0; } }));
    const r1 = trainSgd(vgg, masked, set, cfg, 5, { masks: pm });
    const r2 = trainSgd(vgg, masked, set, cfg, 5, { masks: pm });
    expect(r1.params).toEqual(r2.params);
    // Held masks: every pruned entry is still exactly zero.
    pm.layers.forEach((m, i) => m.weight.forEach((v, j) => { if (!v) expect(Math.abs(r1.params.layers[i]!.weight[j]!)).toBe(0); }));
    pm.batchNorms.forEach((m, i) => m.gamma.forEach((v, j) => { if (!v) expect(Math.abs(r1.params.batchNorms[i]!.gamma[j]!) + Math.abs(r1.params.batchNorms[i]!.beta[j]!)).toBe(0); }));
    expect(r1.params.layers[0]!.weight).not.toEqual(masked.layers[0]!.weight);
  });
});

describe('prunus channels: bad input', () => {
  it('exits 2 with one line on stderr and writes nothing (built CLI)', () => {
    const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
    if (!existsSync(join(repoRoot, 'dist', 'src', 'commands', 'channels.js'))) throw new Error('dist/ is not built: run `npx tsc -p tsconfig.json` (npm test does it)');
    const root = mkdtempSync(join(tmpdir(), 'prunus-channels-cli-'));
    try {
      const out = join(root, 'run');
      for (const args of [
        ['--model', 'lenet-5', '--method', 'magic'],
        ['--model', 'lenet-5', '--method', 'di', '--flops-budget', '0'],
        ['--model', 'lenet-5', '--method', 'di', '--search-budget', '3'],
      ]) {
        const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'prunus.js'), 'channels', ...args, '--out', out], { cwd: root, encoding: 'utf8', env: { ...process.env, PRUNUS_RESULTS: join(root, 'results') } });
        expect(r.status, args.join(' ')).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
        expect(existsSync(out)).toBe(false);
        expect(existsSync(join(root, 'results'))).toBe(false);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('BatchNorm recalibration', () => {
  it('replaces the moving statistics by the average batch statistics, weights untouched', () => {
    const set = syntheticSet(32, 50);
    const p = randomParams(vgg, 51);
    const r = recalibrateBatchNorm(vgg, p, { batches: 2, batchSize: 16, set, seed: 1 });
    expect(r.layers).toBe(p.layers);
    expect(r.batchNorms[0]!.gamma).toEqual(p.batchNorms[0]!.gamma);
    // The two batches cover the 32 images once: BN 0's mean is the mean of conv1's output over all of them.
    const t = toTensors(vgg, p);
    const x = tf.tensor4d(set.images, [32, 28, 28, 1]);
    const taps: tf.Tensor[] = [];
    const y = forward(vgg, t, x, { taps });
    const mean = tf.mean(taps[0]!, [0, 1, 2]).dataSync();
    expect(maxAbsDiff(r.batchNorms[0]!.movingMean, mean)).toBeLessThan(1e-4);
    expect(maxAbsDiff(r.batchNorms[0]!.movingMean, p.batchNorms[0]!.movingMean)).toBeGreaterThan(1e-3);
    tf.dispose([x, y, ...taps]);
    disposeModelTensors(t);
    expect(recalibrateBatchNorm(lenet, initParams(lenet, new Rng(1)), { batches: 2, batchSize: 16, set, seed: 1 }).batchNorms).toEqual([]);
  });
});
