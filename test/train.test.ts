/**
 * The Caffe-SGD Trainer (src/train): exact update rule against a float64 hand computation (momentum, weight decay,
 * bias lr x2, "inv" lr), DNS masked steps (pruned weights updated too), bit-identical state/restore, learning on an
 * MNIST subset, no tensor leak, batchnorm moving averages, the training forward against models/forward.ts.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backends/backend.js';
import type { Architecture } from '../models/graph.js';
import { lenet5, lenet300100 } from '../models/architectures.js';
import { initParams, onesMasks, cloneParams, type ModelParams, type LayerMasks } from '../models/params.js';
import { toTensors, disposeModelTensors, forward, runGraph } from '../models/forward.js';
import { loadDataset, head, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { randomSet } from './random-data.js';
import { Trainer, evaluateAccuracy, learningRate, resolveSolver, DEFAULT_SOLVER, type TrainerState } from '../src/train/index.js';

/** 4 inputs (2x2x1) → 3 ReLU → 2: small enough to compute by hand. */
function tinyMlp(): Architecture {
  return {
    name: 'tiny-mlp',
    inputShape: [2, 2, 1],
    numClasses: 2,
    ops: [
      { type: 'flatten' },
      { type: 'dense', name: 'fc1', inUnits: 4, outUnits: 3, activation: 'relu' },
      { type: 'dense', name: 'fc2', inUnits: 3, outUnits: 2, activation: 'linear' },
    ],
    maskGamma: [2e-4, 2e-4],
  };
}


function randomParams(arch: Architecture, rng: Rng): ModelParams {
  const p = initParams(arch, rng);
  for (const l of p.layers) for (let i = 0; i < l.bias.length; i++) l.bias[i] = 0.1 * rng.normal();
  return p;
}

/**
 * One Caffe SGD step of a dense-only net in float64: forward with w⊙m, softmax loss averaged over the batch,
 * backprop to the effective weights, then diff = g + wd·w (dense w), v = lr·mult·diff + μ·v, w −= v.
 */
function caffeStepReference(
  dims: number[],
  params: { w: Float64Array; b: Float64Array }[],
  momentum: { w: Float64Array; b: Float64Array }[],
  masks: LayerMasks[] | null,
  x: Float32Array,
  labels: Uint8Array,
  lr: number,
): number {
  const B = labels.length;
  const L = dims.length - 1;
  const eff = params.map((p, l) => ({
    w: p.w.map((v, i) => (masks && !masks[l]!.weight[i] ? 0 : v)),
    b: p.b.map((v, i) => (masks && !masks[l]!.bias[i] ? 0 : v)),
  }));
  const acts: Float64Array[] = [Float64Array.from(x)];
  const pre: Float64Array[] = [];
  for (let l = 0; l < L; l++) {
    const [nin, nout] = [dims[l]!, dims[l + 1]!];
    const z = new Float64Array(B * nout);
    for (let n = 0; n < B; n++)
      for (let o = 0; o < nout; o++) {
        let s = eff[l]!.b[o]!;
        for (let i = 0; i < nin; i++) s += acts[l]![n * nin + i]! * eff[l]!.w[i * nout + o]!;
        z[n * nout + o] = s;
      }
    pre.push(z);
    acts.push(l < L - 1 ? z.map((v) => Math.max(0, v)) : z);
  }
  const K = dims[L]!;
  const logits = acts[L]!;
  let delta = new Float64Array(B * K);
  let loss = 0;
  for (let n = 0; n < B; n++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, logits[n * K + k]!);
    let z = 0;
    for (let k = 0; k < K; k++) z += Math.exp(logits[n * K + k]! - max);
    for (let k = 0; k < K; k++) delta[n * K + k] = (Math.exp(logits[n * K + k]! - max) / z - (k === labels[n] ? 1 : 0)) / B;
    loss += (Math.log(z) + max - logits[n * K + labels[n]!]!) / B;
  }
  const grads: { w: Float64Array; b: Float64Array }[] = new Array(L);
  for (let l = L - 1; l >= 0; l--) {
    const [nin, nout] = [dims[l]!, dims[l + 1]!];
    const gw = new Float64Array(nin * nout);
    const gb = new Float64Array(nout);
    for (let n = 0; n < B; n++)
      for (let o = 0; o < nout; o++) {
        const d = delta[n * nout + o]!;
        gb[o] += d;
        for (let i = 0; i < nin; i++) gw[i * nout + o] += acts[l]![n * nin + i]! * d;
      }
    grads[l] = { w: gw, b: gb };
    if (l > 0) {
      const prev = new Float64Array(B * nin);
      for (let n = 0; n < B; n++)
        for (let i = 0; i < nin; i++) {
          let s = 0;
          for (let o = 0; o < nout; o++) s += delta[n * nout + o]! * eff[l]!.w[i * nout + o]!;
          prev[n * nin + i] = pre[l - 1]![n * nin + i]! > 0 ? s : 0;
        }
      delta = prev;
    }
  }
  const s = DEFAULT_SOLVER;
  for (let l = 0; l < L; l++) {
    for (const [key, mult] of [
      ['w', s.weightLrMult],
      ['b', s.biasLrMult],
    ] as const) {
      const w = params[l]![key];
      const v = momentum[l]![key];
      const g = grads[l]![key];
      for (let i = 0; i < w.length; i++) {
        const diff = g[i]! + s.weightDecay * w[i]!;
        v[i] = lr * mult * diff + s.momentum * v[i]!;
        w[i] = w[i]! - v[i]!;
      }
    }
  }
  return loss;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 1e-12;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

let mnist: { train: ImageSet; validation: ImageSet };

describe('Trainer', () => {
  beforeAll(async () => {
    expect((await initBackend('wasm')).name).toBe('wasm');
    const d = loadDataset('mnist', { limit: { train: 6000, validation: 1000, test: 1 } });
    mnist = { train: d.train, validation: d.validation };
  });

  it('uses the spec solver and the "inv" learning rate', () => {
    const s = resolveSolver();
    expect(s).toMatchObject({ baseLr: 0.01, momentum: 0.9, weightDecay: 5e-4, biasLrMult: 2, biasDecayMult: 1, batchSize: 64, gamma: 1e-4, power: 0.75 });
    expect(learningRate(s, 0)).toBe(0.01);
    expect(learningRate(s, 10000)).toBeCloseTo(0.01 * Math.pow(2, -0.75), 12);
    expect(() => resolveSolver({ batchSize: 0 })).toThrow(/batchSize/);
    expect(() => resolveSolver({ baseLr: NaN })).toThrow(/baseLr/);
  });

  it('reads batches sequentially and wraps around the end of the train set', () => {
    const arch = tinyMlp();
    const set = randomSet(new Rng('wrap'), 5, [2, 2, 1], 2);
    const t = new Trainer(arch, randomParams(arch, new Rng(1)), set, { solver: { batchSize: 3 } });
    const b1 = t.peekBatch();
    expect(Array.from(b1.labels)).toEqual(Array.from(set.labels.subarray(0, 3)));
    expect(Array.from(b1.images)).toEqual(Array.from(set.images.subarray(0, 12)));
    t.step();
    const b2 = t.peekBatch();
    expect(Array.from(b2.labels)).toEqual([set.labels[3], set.labels[4], set.labels[0]]);
    expect(Array.from(b2.images.subarray(8, 12))).toEqual(Array.from(set.images.subarray(0, 4)));
    t.step();
    expect(t.cursor).toBe(1);
    expect(t.iteration).toBe(2);
    t.dispose();
  });

  for (const masked of [false, true]) {
    it(`matches a hand-computed Caffe update over three steps (${masked ? 'DNS-masked' : 'dense'})`, () => {
      const arch = tinyMlp();
      const rng = new Rng(`caffe-${masked}`);
      const set = randomSet(rng, 7, [2, 2, 1], 2);
      const params = randomParams(arch, rng);
      let masks: LayerMasks[] | null = null;
      if (masked) {
        masks = onesMasks(arch);
        masks[0]!.weight.set([0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1]);
        masks[0]!.bias.set([1, 0, 1]);
        masks[1]!.weight.set([1, 0, 1, 1, 0, 1]);
      }
      const start = 1234;
      const trainer = new Trainer(arch, params, set, { solver: { batchSize: 4 }, startIteration: start, cursor: 2 });
      trainer.setMasks(masks);
      const ref = params.layers.map((l) => ({ w: Float64Array.from(l.weight), b: Float64Array.from(l.bias) }));
      const mom = params.layers.map((l) => ({ w: new Float64Array(l.weight.length), b: new Float64Array(l.bias.length) }));
      for (let step = 0; step < 3; step++) {
        const batch = trainer.peekBatch();
        const lr = 0.01 * Math.pow(1 + 1e-4 * (start + step), -0.75);
        expect(trainer.lr()).toBeCloseTo(lr, 15);
        const refLoss = caffeStepReference([4, 3, 2], ref, mom, masks, batch.images, batch.labels, lr);
        const { loss } = trainer.step();
        expect(Math.abs(loss - refLoss)).toBeLessThan(1e-5);
      }
      const got = trainer.getParams();
      const gotMom = trainer.getMomentum();
      for (let l = 0; l < 2; l++) {
        expect(maxRelDiff(got.layers[l]!.weight, ref[l]!.w)).toBeLessThan(1e-5);
        expect(maxRelDiff(got.layers[l]!.bias, ref[l]!.b)).toBeLessThan(1e-5);
        expect(maxRelDiff(gotMom.layers[l]!.weight, mom[l]!.w)).toBeLessThan(1e-4);
        expect(maxRelDiff(gotMom.layers[l]!.bias, mom[l]!.b)).toBeLessThan(1e-4);
      }
      if (masked) {
        // DNS: pruned weights and biases moved too (gradient w.r.t. w⊙m plus decay), and the masks are unchanged.
        expect(got.layers[0]!.weight[0]).not.toBe(params.layers[0]!.weight[0]);
        expect(got.layers[0]!.bias[1]).not.toBe(params.layers[0]!.bias[1]);
        expect(Array.from(trainer.getMasks()![0]!.weight)).toEqual(Array.from(masks![0]!.weight));
      }
      trainer.dispose();
    });
  }

  it('a masked step moves pruned weights by their effective-weight gradient (not only by decay)', () => {
    const arch = lenet300100();
    const params = initParams(arch, new Rng('dns'));
    const masks = onesMasks(arch);
    const rng = new Rng('dns-masks');
    for (const m of masks) for (let i = 0; i < m.weight.length; i++) m.weight[i] = rng.uniform() < 0.5 ? 1 : 0;
    const t = new Trainer(arch, params, head(mnist.train, 64));
    t.setMasks(masks);
    t.step();
    const after = t.getParams();
    t.dispose();
    // With decay alone a pruned weight would become w·(1 − lr·wd) exactly; ip2/ip3 pruned weights see real gradients.
    let moved = 0;
    let pruned = 0;
    for (let l = 1; l < 3; l++) {
      const w0 = params.layers[l]!.weight;
      const w1 = after.layers[l]!.weight;
      for (let i = 0; i < w0.length; i++) {
        if (masks[l]!.weight[i]) continue;
        pruned++;
        if (Math.abs(w1[i]! - w0[i]! * (1 - 0.01 * 5e-4)) > 1e-7) moved++;
      }
    }
    expect(pruned).toBeGreaterThan(1000);
    expect(moved / pruned).toBeGreaterThan(0.5);
  });

  it('state() / restore() continues bit-identically (masks, momentum, cursor, iteration)', () => {
    const arch = lenet5();
    const train = head(mnist.train, 150);
    const solver = { batchSize: 16 };
    const a = new Trainer(arch, initParams(arch, new Rng('restore')), train, { solver });
    const masks = onesMasks(arch);
    const rng = new Rng('restore-masks');
    for (const m of masks) for (let i = 0; i < m.weight.length; i++) m.weight[i] = rng.uniform() < 0.3 ? 0 : 1;
    for (let i = 0; i < 4; i++) a.step();
    a.setMasks(masks);
    for (let i = 0; i < 6; i++) a.step();
    const state: TrainerState = structuredClone(a.state());
    expect(JSON.parse(JSON.stringify({ ...state, params: null, momentum: null, masks: null }))).toMatchObject({ arch: 'lenet-5', iteration: 10, cursor: 160 % 150 });
    const lossesA = [a.step().loss, a.step().loss, a.step().loss];
    const pa = a.getParams();
    a.dispose();
    const b = Trainer.restore(arch, state, train);
    expect(b.iteration).toBe(10);
    const lossesB = [b.step().loss, b.step().loss, b.step().loss];
    const pb = b.getParams();
    b.dispose();
    expect(lossesB).toEqual(lossesA);
    for (let l = 0; l < pa.layers.length; l++) {
      expect(Buffer.from(pb.layers[l]!.weight.buffer).equals(Buffer.from(pa.layers[l]!.weight.buffer))).toBe(true);
      expect(Buffer.from(pb.layers[l]!.bias.buffer).equals(Buffer.from(pa.layers[l]!.bias.buffer))).toBe(true);
    }
  });

  it('LeNet-300-100 learns on a 6,000-image subset in 150 steps (accuracy far above chance)', () => {
    const arch = lenet300100();
    const t = new Trainer(arch, initParams(arch, new Rng('learn')), mnist.train);
    const before = t.evaluate(mnist.validation).accuracy;
    let first = 0;
    let last = 0;
    for (let i = 0; i < 150; i++) {
      const { loss } = t.step();
      if (i < 20) first += loss / 20;
      if (i >= 130) last += loss / 20;
    }
    const after = evaluateAccuracy(arch, t.getParams(), null, mnist.validation);
    expect(t.evaluate(mnist.validation).correct).toBe(after.correct);
    t.dispose();
    expect(before).toBeLessThan(0.3);
    expect(last).toBeLessThan(first / 2);
    expect(after.accuracy).toBeGreaterThan(0.75);
  });

  it('LeNet-5 trains on wasm: loss falls over a few steps', () => {
    const arch = lenet5();
    const t = new Trainer(arch, initParams(arch, new Rng('lenet5')), mnist.train, { solver: { batchSize: 16 } });
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) losses.push(t.step().loss);
    t.dispose();
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) * 0.7);
  });

  it('conv-net steps on wasm equal those on the cpu backend (conv, pool, masks, update)', async () => {
    // A small LeNet-like net: every kernel of a LeNet-5 step, cheap enough for the cpu backend.
    const arch: Architecture = {
      name: 'mini-lenet',
      inputShape: [16, 16, 1],
      numClasses: 10,
      ops: [
        { type: 'conv2d', name: 'conv1', kernel: 3, inChannels: 1, outChannels: 4, stride: 1, padding: 'valid', activation: 'linear' },
        { type: 'maxpool', size: 2, stride: 2 },
        { type: 'conv2d', name: 'conv2', kernel: 3, inChannels: 4, outChannels: 6, stride: 1, padding: 'valid', activation: 'linear' },
        { type: 'maxpool', size: 2, stride: 2 },
        { type: 'flatten' },
        { type: 'dense', name: 'ip1', inUnits: 24, outUnits: 16, activation: 'relu' },
        { type: 'dense', name: 'ip2', inUnits: 16, outUnits: 10, activation: 'linear' },
      ],
      maskGamma: [2e-5, 2e-5, 2e-4, 2e-4],
    };
    const train = randomSet(new Rng('mini-data'), 16, [16, 16, 1], 10);
    const params = initParams(arch, new Rng('wasm-cpu'));
    const masks = onesMasks(arch);
    masks[1]!.weight.fill(0, 0, 60);
    const runOn = (): ModelParams => {
      const t = new Trainer(arch, params, train, { solver: { batchSize: 8 } });
      t.setMasks(masks);
      t.step();
      t.step();
      const p = t.getParams();
      t.dispose();
      return p;
    };
    const w = runOn();
    await tf.setBackend('cpu');
    let c: ModelParams;
    try {
      c = runOn();
    } finally {
      await tf.setBackend('wasm');
    }
    for (let l = 0; l < w.layers.length; l++) {
      for (const k of ['weight', 'bias'] as const) {
        const d0 = params.layers[l]![k].map((v, i) => w.layers[l]![k][i]! - v);
        const d1 = params.layers[l]![k].map((v, i) => c.layers[l]![k][i]! - v);
        expect(maxRelDiff(d0, d1), `layer ${l} ${k} update`).toBeLessThan(1e-4);
      }
    }
  });

  it('holds no growing set of tensors across steps and frees everything on dispose', () => {
    const base = tf.memory().numTensors;
    const arch = lenet5();
    const t = new Trainer(arch, initParams(arch, new Rng('leak')), head(mnist.train, 64), { solver: { batchSize: 16 } });
    t.setMasks(onesMasks(arch));
    t.step();
    t.evaluate(head(mnist.validation, 50));
    const held = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      t.step();
      t.evaluate(head(mnist.validation, 50));
      t.peekBatch();
    }
    t.setMasks(onesMasks(arch));
    expect(tf.memory().numTensors).toBe(held);
    t.setMasks(null);
    t.step();
    t.state();
    expect(tf.memory().numTensors).toBeLessThan(held);
    t.dispose();
    expect(tf.memory().numTensors).toBe(base);
    expect(() => t.step()).toThrow(/disposed/);
  });

  it('the training forward equals models/forward (LeNet-5 and a batchnorm net in training mode)', () => {
    const bnArch: Architecture = {
      name: 'tiny-bn',
      inputShape: [6, 6, 1],
      numClasses: 3,
      ops: [
        { type: 'conv2d', name: 'c1', kernel: 3, inChannels: 1, outChannels: 4, stride: 1, padding: 'same', activation: 'linear' },
        { type: 'batchnorm', name: 'bn1', channels: 4, epsilon: 1e-3, activation: 'relu' },
        { type: 'maxpool', size: 2, stride: 2 },
        { type: 'flatten' },
        { type: 'dense', name: 'fc', inUnits: 36, outUnits: 3, activation: 'linear' },
      ],
      maskGamma: [2e-4, 2e-4],
    };
    for (const arch of [lenet5(), bnArch]) {
      const p = initParams(arch, new Rng('fw'));
      const set = randomSet(new Rng('fw-data'), 8, arch.inputShape, arch.numClasses);
      const [a, b] = tf.tidy(() => {
        const t = toTensors(arch, p);
        const x = tf.tensor4d(set.images, [8, ...arch.inputShape]);
        // The training forward's batch statistics, given to the fused forward as its moving statistics.
        const stats: tf.Tensor1D[] = [];
        const train = runGraph(arch, t, x, { mode: 'train', onBatchNormStats: (i, m, v) => ((stats[2 * i] = m), (stats[2 * i + 1] = v)) }).dataSync();
        const tb = { layers: t.layers, batchNorms: t.batchNorms.map((b, i) => ({ ...b, movingMean: stats[2 * i]!, movingVariance: stats[2 * i + 1]! })) };
        const r = [forward(arch, tb, x).dataSync(), train];
        disposeModelTensors(t);
        return r;
      });
      expect(maxRelDiff(b!, a!)).toBeLessThan(1e-5);
    }
  });

  it('batchnorm: trains gamma/beta and updates moving averages with momentum 0.99', () => {
    const arch: Architecture = {
      name: 'tiny-bn-dense',
      inputShape: [2, 2, 1],
      numClasses: 2,
      ops: [
        { type: 'flatten' },
        { type: 'dense', name: 'fc1', inUnits: 4, outUnits: 3, activation: 'linear' },
        { type: 'batchnorm', name: 'bn', channels: 3, epsilon: 1e-3, activation: 'relu' },
        { type: 'dense', name: 'fc2', inUnits: 3, outUnits: 2, activation: 'linear' },
      ],
      maskGamma: [2e-4, 2e-4],
    };
    const rng = new Rng('bn');
    const set = randomSet(rng, 8, [2, 2, 1], 2);
    const p = randomParams(arch, rng);
    const t = new Trainer(arch, cloneParams(p), set, { solver: { batchSize: 8 } });
    t.step();
    const after = t.getParams();
    t.dispose();
    // Pre-BN activations of the batch with the initial weights: z = x·W + b.
    const w = p.layers[0]!.weight;
    const b = p.layers[0]!.bias;
    for (let c = 0; c < 3; c++) {
      const z: number[] = [];
      for (let n = 0; n < 8; n++) {
        let s = b[c]!;
        for (let i = 0; i < 4; i++) s += set.images[n * 4 + i]! * w[i * 3 + c]!;
        z.push(s);
      }
      const mean = z.reduce((s, v) => s + v, 0) / 8;
      const variance = z.reduce((s, v) => s + (v - mean) ** 2, 0) / 8;
      expect(after.batchNorms[0]!.movingMean[c]).toBeCloseTo(0.01 * mean, 5);
      expect(after.batchNorms[0]!.movingVariance[c]).toBeCloseTo(0.99 + 0.01 * variance, 5);
    }
    expect(Array.from(after.batchNorms[0]!.gamma).some((g) => g !== 1)).toBe(true);
  });

  it('evaluateAccuracy applies masks (all-zero masks predict class 0 everywhere)', () => {
    const arch = lenet300100();
    const p = initParams(arch, new Rng('eval'));
    const set = head(mnist.validation, 300);
    const zero = onesMasks(arch).map((m) => ({ weight: m.weight.fill(0), bias: m.bias.fill(0) }));
    const r = evaluateAccuracy(arch, p, zero, set, 128);
    const zeros = Array.from(set.labels).filter((l) => l === 0).length;
    expect(r.correct).toBe(zeros);
    expect(r.count).toBe(300);
    expect(r.loss).toBeCloseTo(Math.log(10), 5);
    const dense = evaluateAccuracy(arch, p, null, set, 128);
    const ones = evaluateAccuracy(arch, p, onesMasks(arch), set, 1000);
    expect(ones.correct).toBe(dense.correct);
    expect(ones.loss).toBeCloseTo(dense.loss, 5);
  });
});
