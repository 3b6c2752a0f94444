/**
 * A small SGD trainer for channel pruning (baselines and finetuning): momentum (optionally Nesterov), weight decay
 * on conv/fc kernels, BatchNorm in training mode with moving averages, and optional parameter masks held after
 * every step (pruned channels stay zero). Gradients come from tf.variableGrads over src/channels/net.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import { cloneParams } from '../../models/params.js';
import { toTensors, forward, runGraph, countCorrect, disposeModelTensors, type ModelTensors, type RunOptions } from '../../models/forward.js';
import type { ParamMasks } from '../../models/channels.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { Rng } from '../../foundation/rng.js';
import { batchOf, oneHot, sliceOf } from './data.js';
import { UsageError } from '../../foundation/errors.js';

export type LrSchedule =
  | { kind: 'constant' }
  /** lr × factor at each fraction of the steps in `at` (e.g. [0.375, 0.75]). */
  | { kind: 'step'; at: number[]; factor: number }
  | { kind: 'cosine' }
  /** Caffe "inv": lr·(1+γ·t)^(−power). */
  | { kind: 'inv'; gamma: number; power: number };

export interface SgdConfig {
  steps: number;
  batchSize: number;
  lr: number;
  momentum: number;
  nesterov: boolean;
  /** L2 decay on conv/fc kernels (not biases, not BatchNorm). */
  weightDecay: number;
  schedule: LrSchedule;
  /** Moving-average momentum of BatchNorm statistics. */
  bnMomentum: number;
}

export function lrAt(cfg: Pick<SgdConfig, 'lr' | 'schedule' | 'steps'>, step: number): number {
  const s = cfg.schedule;
  switch (s.kind) {
    case 'constant':
      return cfg.lr;
    case 'step':
      return cfg.lr * Math.pow(s.factor, s.at.filter((f) => step >= Math.round(f * cfg.steps)).length);
    case 'cosine':
      return 0.5 * cfg.lr * (1 + Math.cos((Math.PI * step) / Math.max(1, cfg.steps)));
    case 'inv':
      return cfg.lr * Math.pow(1 + s.gamma * step, -s.power);
  }
}

export function checkSgdConfig(cfg: SgdConfig): void {
  if (!Number.isInteger(cfg.steps) || cfg.steps < 0) throw new UsageError(`training steps must be an integer >= 0, got ${cfg.steps}`);
  if (!Number.isInteger(cfg.batchSize) || cfg.batchSize < 1) throw new UsageError(`batch size must be an integer >= 1, got ${cfg.batchSize}`);
  if (!(cfg.lr >= 0)) throw new UsageError(`learning rate must be >= 0, got ${cfg.lr}`);
}

export interface TrainResult {
  params: ModelParams;
  /** Mean training loss over each block of `logEvery` steps. */
  losses: number[];
  steps: number;
  wallMs: number;
}

interface Vars {
  tensors: ModelTensors;
  trainable: tf.Variable[];
  kernels: Set<tf.Variable>;
  masks: Map<tf.Variable, tf.Tensor>;
}

function makeVars(params: ModelParams, arch: Architecture, masks?: ParamMasks): Vars {
  const base = toTensors(arch, params);
  const trainable: tf.Variable[] = [];
  const kernels = new Set<tf.Variable>();
  const maskMap = new Map<tf.Variable, tf.Tensor>();
  const v = (t: tf.Tensor, m?: Uint8Array) => {
    const x = tf.variable(t, true);
    t.dispose();
    // A zero-length array (the bias of a layer without one) is read by nothing: not trained.
    if (x.size > 0) trainable.push(x);
    if (m && m.some((e) => e === 0)) {
      const mt = tf.tensor(Float32Array.from(m), x.shape);
      maskMap.set(x, mt);
      x.assign(tf.tidy(() => tf.mul(x, mt)));
    }
    return x;
  };
  const layers = base.layers.map((l, i) => {
    const weight = v(l.weight, masks?.layers[i]?.weight);
    kernels.add(weight);
    return { weight, bias: v(l.bias, masks?.layers[i]?.bias) as tf.Tensor1D };
  });
  const batchNorms = base.batchNorms.map((b, i) => ({
    gamma: v(b.gamma, masks?.batchNorms[i]?.gamma) as tf.Tensor1D,
    beta: v(b.beta, masks?.batchNorms[i]?.beta) as tf.Tensor1D,
    movingMean: b.movingMean,
    movingVariance: b.movingVariance,
  }));
  return { tensors: { layers, batchNorms }, trainable, kernels, masks: maskMap };
}

function readParams(t: ModelTensors): ModelParams {
  return {
    layers: t.layers.map((l) => ({ weight: l.weight.dataSync().slice() as Float32Array, bias: l.bias.dataSync().slice() as Float32Array })),
    batchNorms: t.batchNorms.map((b) => ({
      gamma: b.gamma.dataSync().slice() as Float32Array,
      beta: b.beta.dataSync().slice() as Float32Array,
      movingMean: b.movingMean.dataSync().slice() as Float32Array,
      movingVariance: b.movingVariance.dataSync().slice() as Float32Array,
    })),
  };
}

/** Epoch-wise shuffled mini-batch indices from one Rng. */
export class BatchSampler {
  private perm: Int32Array;
  private pos = 0;
  constructor(
    private readonly count: number,
    private readonly batchSize: number,
    private readonly rng: Rng,
  ) {
    if (count < 1) throw new UsageError('no training images');
    this.perm = rng.permutation(count);
  }
  next(): Int32Array {
    const n = Math.min(this.batchSize, this.count);
    if (this.pos + n > this.count) {
      this.perm = this.rng.permutation(this.count);
      this.pos = 0;
    }
    const b = this.perm.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

export interface TrainOptions {
  /** Parameter masks held during training (pruned entries stay zero). */
  masks?: ParamMasks;
  logEvery?: number;
  onLog?: (step: number, loss: number, lr: number) => void;
  /**
   * Replaces the loss (default: softmax CE of the network output, BN in training mode). Gets the model tensors
   * (variables), the batch, its one-hot labels and the callback that updates BatchNorm moving statistics.
   */
  loss?: (t: ModelTensors, x: tf.Tensor4D, y: tf.Tensor2D, onBatchNormStats: NonNullable<RunOptions['onBatchNormStats']>) => tf.Scalar;
  /** More variables trained by the same optimiser (no weight decay, no masks), e.g. DCP heads. The caller owns them. */
  extraVariables?: tf.Variable[];
}

/** Trains a copy of `params` for cfg.steps SGD steps on `data`. Deterministic for a seed (given the backend). */
export function trainSgd(arch: Architecture, params: ModelParams, data: ImageSet, cfg: SgdConfig, seed: number | string, opts: TrainOptions = {}): TrainResult {
  checkSgdConfig(cfg);
  const t0 = Date.now();
  const rng = new Rng(`train:${seed}`);
  const vars = makeVars(cloneParams(params), arch, opts.masks);
  const varList = [...vars.trainable, ...(opts.extraVariables ?? [])];
  const velocity = new Map<tf.Variable, tf.Tensor>(varList.map((x) => [x, tf.zerosLike(x)]));
  const sampler = new BatchSampler(data.count, cfg.batchSize, rng);
  const logEvery = opts.logEvery ?? 50;
  const losses: number[] = [];
  let acc = 0;
  let accN = 0;
  for (let step = 0; step < cfg.steps; step++) {
    const lr = lrAt(cfg, step);
    const { x, labels } = batchOf(data, sampler.next());
    const y = oneHot(labels, arch.numClasses);
    const bnUpdates: [number, tf.Tensor1D, tf.Tensor1D][] = [];
    const onBatchNormStats = (i: number, mean: tf.Tensor1D, variance: tf.Tensor1D) => {
      const b = vars.tensors.batchNorms[i]!;
      const m = cfg.bnMomentum;
      bnUpdates.push([i, tf.keep(tf.add(tf.mul(b.movingMean, m), tf.mul(mean, 1 - m))), tf.keep(tf.add(tf.mul(b.movingVariance, m), tf.mul(variance, 1 - m)))]);
    };
    const { value, grads } = tf.variableGrads(() => {
      if (opts.loss) return opts.loss(vars.tensors, x, y, onBatchNormStats);
      const logits = runGraph(arch, vars.tensors, x, { mode: 'train', onBatchNormStats, dropoutSeed: step });
      return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    }, varList);
    for (const [i, mm, mv] of bnUpdates) {
      const b = vars.tensors.batchNorms[i]!;
      b.movingMean.dispose();
      b.movingVariance.dispose();
      b.movingMean = mm;
      b.movingVariance = mv;
    }
    tf.tidy(() => {
      for (const v of varList) {
        let g: tf.Tensor = grads[v.name]!;
        if (cfg.weightDecay > 0 && vars.kernels.has(v)) g = tf.add(g, tf.mul(v, cfg.weightDecay));
        const vel = tf.add(tf.mul(velocity.get(v)!, cfg.momentum), g);
        const stepDir = cfg.nesterov ? tf.add(g, tf.mul(vel, cfg.momentum)) : vel;
        let nv = tf.sub(v, tf.mul(stepDir, lr));
        const mask = vars.masks.get(v);
        if (mask) nv = tf.mul(nv, mask);
        v.assign(nv);
        velocity.get(v)!.dispose();
        velocity.set(v, tf.keep(vel));
      }
    });
    acc += value.dataSync()[0]!;
    accN++;
    tf.dispose([value, x, y, ...Object.values(grads)]);
    if (accN === logEvery || step === cfg.steps - 1) {
      losses.push(acc / accN);
      opts.onLog?.(step + 1, acc / accN, lr);
      acc = 0;
      accN = 0;
    }
  }
  const out = readParams(vars.tensors);
  disposeModelTensors(vars.tensors);
  for (const v of velocity.values()) v.dispose();
  for (const m of vars.masks.values()) m.dispose();
  return { params: out, losses, steps: cfg.steps, wallMs: Date.now() - t0 };
}

export interface RecalibrationOptions {
  /** Mini-batches to average (0 = no recalibration). */
  batches: number;
  batchSize: number;
  /** Images the batches are drawn from (a training-side split) and the seed of the draw. */
  set: ImageSet;
  seed: number | string;
}

/**
 * Re-estimates every BatchNorm's moving mean/variance of a (pruned) model: the average of the batch statistics of
 * `batches` mini-batches, forward in training mode; no weight changes ("adaptive BN" candidate evaluation). Returns
 * a copy; models without BatchNorm are returned as they are.
 */
export function recalibrateBatchNorm(arch: Architecture, params: ModelParams, r: RecalibrationOptions): ModelParams {
  if (params.batchNorms.length === 0 || r.batches <= 0) return params;
  const rng = new Rng(`bn-recalibration:${r.seed}`);
  const sums = params.batchNorms.map((b) => ({ mean: new Float64Array(b.gamma.length), variance: new Float64Array(b.gamma.length) }));
  const t = toTensors(arch, params);
  try {
    const sampler = new BatchSampler(r.set.count, r.batchSize, rng);
    for (let i = 0; i < r.batches; i++) {
      const { x } = batchOf(r.set, sampler.next());
      tf.tidy(() => {
        runGraph(arch, t, x, {
          mode: 'train',
          dropoutSeed: null,
          onBatchNormStats: (k, mean, variance) => {
            const m = mean.dataSync();
            const v = variance.dataSync();
            for (let c = 0; c < m.length; c++) {
              sums[k]!.mean[c] += m[c]! / r.batches;
              sums[k]!.variance[c] += v[c]! / r.batches;
            }
          },
        });
      });
      x.dispose();
    }
  } finally {
    disposeModelTensors(t);
  }
  return {
    layers: params.layers,
    batchNorms: params.batchNorms.map((b, k) => ({ ...b, movingMean: Float32Array.from(sums[k]!.mean), movingVariance: Float32Array.from(sums[k]!.variance) })),
  };
}

/** Top-1 accuracy of (arch, params) on a set, BatchNorm in inference mode (fused forward of models/forward.ts). */
export function accuracy(arch: Architecture, params: ModelParams, set: ImageSet, batchSize = 500): number {
  if (set.count === 0) return NaN;
  const t = toTensors(arch, params);
  try {
    return accuracyWith(arch, t, set, batchSize);
  } finally {
    disposeModelTensors(t);
  }
}

export function accuracyWith(arch: Architecture, t: ModelTensors, set: ImageSet, batchSize = 500): number {
  let correct = 0;
  for (let s = 0; s < set.count; s += batchSize) {
    const { x, labels } = sliceOf(set, s, batchSize);
    const logits = tf.tidy(() => forward(arch, t, x));
    correct += countCorrect(logits.dataSync() as Float32Array, labels, arch.numClasses);
    tf.dispose([x, logits]);
  }
  return correct / set.count;
}
