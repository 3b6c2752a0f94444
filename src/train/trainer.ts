/**
 * A stateful Caffe-SGD trainer that the OLMP pipeline (and the reference training) drives one step at a time.
 *
 * Weights, biases and momentum live on the device as tf.Variables between steps. Masked training is Dynamic Network
 * Surgery (spec olmp.md §2): the forward pass uses w⊙m, the gradient with respect to the effective weight w⊙m
 * (computed by tf.grads over the effective tensors) updates every dense weight, pruned ones included, and weight
 * decay acts on the dense weights. SGD never changes the masks. Batches are read sequentially from the train set in
 * its stored (already seeded-shuffled) order, cycling like Caffe's data layer: a batch may wrap around the end.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture, BatchNormOp } from '../../models/graph.js';
import { prunableOps, weightShape, biasLength } from '../../models/graph.js';
import type { ModelParams, LayerMasks } from '../../models/params.js';
import { batchNormOps } from '../../models/graph.js';
import { runGraph, type ModelTensors } from '../../models/forward.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { resolveSolver, learningRate, type SolverOptions } from './solver.js';
import { evaluateLogits, type EvalResult } from './evaluate.js';

export interface TrainerOptions {
  solver?: Partial<SolverOptions>;
  /** Iteration counter at start (drives the lr schedule); default 0. */
  startIteration?: number;
  /** Index in the train set of the next image to read; default 0. */
  cursor?: number;
}

/** Momentum buffers ("history" in Caffe), same layout as the parameters they belong to. */
export interface MomentumState {
  layers: { weight: Float32Array; bias: Float32Array }[];
  batchNorms: { gamma: Float32Array; beta: Float32Array }[];
}

/**
 * Everything needed to continue training bit-identically: JSON-able metadata plus typed arrays (no class instances),
 * so checkpoint writers that split typed arrays into a binary file can store it as is.
 */
export interface TrainerState {
  format: 'prunus-trainer';
  version: 1;
  arch: string;
  iteration: number;
  cursor: number;
  solver: SolverOptions;
  params: ModelParams;
  momentum: MomentumState;
  /** null = dense training. */
  masks: LayerMasks[] | null;
  /** Per-prunable-layer channel gates (see setGates); null when none. */
  gates: (Float32Array | null)[] | null;
}

export interface Batch {
  images: Float32Array;
  labels: Uint8Array;
}

interface Trainable {
  value: tf.Variable;
  momentum: tf.Variable;
  lrMult: number;
  decayMult: number;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkLength(what: string, a: ArrayLike<number>, n: number): void {
  if (a.length !== n) throw new Error(`${what}: length ${a.length}, expected ${n}`);
}

export class Trainer {
  readonly arch: Architecture;
  readonly solver: SolverOptions;
  private readonly train: ImageSet;
  private readonly perImage: number;
  private readonly inputShape: [number, number, number];
  private readonly layers: { weight: Trainable; bias: Trainable }[];
  private readonly bns: { gamma: Trainable; beta: Trainable; movingMean: tf.Variable; movingVariance: tf.Variable }[];
  private maskTensors: { weight: tf.Tensor; bias: tf.Tensor }[] | null = null;
  private maskArrays: LayerMasks[] | null = null;
  private gateTensors: (tf.Tensor1D | null)[] | null = null;
  private gateArrays: (Float32Array | null)[] | null = null;
  private _iteration: number;
  private _cursor: number;
  private disposed = false;

  constructor(arch: Architecture, params: ModelParams, train: ImageSet, opts: TrainerOptions = {}) {
    this.arch = arch;
    this.solver = resolveSolver(opts.solver);
    this.train = train;
    this.inputShape = train.shape;
    const [h, w, c] = arch.inputShape;
    if (train.shape[0] !== h || train.shape[1] !== w || train.shape[2] !== c) {
      throw new Error(`train images are ${train.shape.join('x')}, ${arch.name} takes ${arch.inputShape.join('x')}`);
    }
    if (train.count < 1) throw new Error('the train set is empty');
    this.perImage = h * w * c;
    this._iteration = opts.startIteration ?? 0;
    this._cursor = opts.cursor ?? 0;
    if (!Number.isInteger(this._iteration) || this._iteration < 0) throw new Error(`startIteration must be an integer >= 0, got ${this._iteration}`);
    if (!Number.isInteger(this._cursor) || this._cursor < 0 || this._cursor >= train.count) throw new Error(`cursor must be an integer in [0, ${train.count}), got ${this._cursor}`);
    const ops = prunableOps(arch);
    if (params.layers.length !== ops.length) throw new Error(`${arch.name} has ${ops.length} prunable layers, params have ${params.layers.length}`);
    const bnOps = batchNormOps(arch);
    if (params.batchNorms.length !== bnOps.length) throw new Error(`${arch.name} has ${bnOps.length} batchnorm layers, params have ${params.batchNorms.length}`);
    const s = this.solver;
    // (tf.variable keeps its initial tensor alive unless that is created inside a tidy.)
    const variable = (make: () => tf.Tensor, trainable: boolean): tf.Variable => tf.tidy(() => tf.variable(make(), trainable));
    const trainable = (data: Float32Array, shape: number[], lrMult: number, decayMult: number): Trainable => ({
      value: variable(() => tf.tensor(data, shape, 'float32'), true),
      momentum: variable(() => tf.zeros(shape, 'float32'), false),
      lrMult,
      decayMult,
    });
    this.layers = ops.map((op, i) => {
      const p = params.layers[i]!;
      const ws = weightShape(op);
      checkLength(`${op.name} weight`, p.weight, size(ws));
      checkLength(`${op.name} bias`, p.bias, biasLength(op));
      return {
        weight: trainable(p.weight, ws, s.weightLrMult, s.weightDecayMult),
        bias: trainable(p.bias, [biasLength(op)], s.biasLrMult, s.biasDecayMult),
      };
    });
    this.bns = bnOps.map((op: BatchNormOp, i) => {
      const b = params.batchNorms[i]!;
      for (const k of ['gamma', 'beta', 'movingMean', 'movingVariance'] as const) checkLength(`${op.name} ${k}`, b[k], op.channels);
      return {
        gamma: trainable(b.gamma, [op.channels], s.bnLrMult, s.bnDecayMult),
        beta: trainable(b.beta, [op.channels], s.bnLrMult, s.bnDecayMult),
        movingMean: variable(() => tf.tensor1d(b.movingMean, 'float32'), false),
        movingVariance: variable(() => tf.tensor1d(b.movingVariance, 'float32'), false),
      };
    });
  }

  /** Rebuilds a trainer from state(): the next steps are bit-identical to those of the trainer that saved it. */
  static restore(arch: Architecture, state: TrainerState, train: ImageSet): Trainer {
    if (state.format !== 'prunus-trainer' || state.version !== 1) throw new Error(`not a prunus trainer state (format ${String(state.format)}, version ${String(state.version)})`);
    if (state.arch !== arch.name) throw new Error(`trainer state is for ${state.arch}, not ${arch.name}`);
    const t = new Trainer(arch, state.params, train, { solver: state.solver, startIteration: state.iteration, cursor: state.cursor % train.count });
    t.setMomentum(state.momentum);
    t.setMasks(state.masks);
    t.setGates(state.gates ?? null);
    return t;
  }

  /** Iterations done so far (the lr of the next step is lr(iteration)). */
  get iteration(): number {
    return this._iteration;
  }

  /** Index of the next training image. */
  get cursor(): number {
    return this._cursor;
  }

  /** Learning rate of iteration t ("inv" policy). */
  lr(t: number = this._iteration): number {
    return learningRate(this.solver, t);
  }

  /** Current masks (copies), or null when training dense. */
  getMasks(): LayerMasks[] | null {
    return this.maskArrays ? this.maskArrays.map((m) => ({ weight: m.weight.slice(), bias: m.bias.slice() })) : null;
  }

  /** Sets the DNS masks used by the following steps (copied); null trains dense. */
  setMasks(masks: LayerMasks[] | null): void {
    this.assertLive();
    const ops = prunableOps(this.arch);
    if (masks) {
      if (masks.length !== ops.length) throw new Error(`${masks.length} masks for ${ops.length} prunable layers`);
      masks.forEach((m, i) => {
        checkLength(`${ops[i]!.name} weight mask`, m.weight, size(weightShape(ops[i]!)));
        checkLength(`${ops[i]!.name} bias mask`, m.bias, biasLength(ops[i]!));
      });
    }
    const old = this.maskTensors;
    if (masks) {
      this.maskArrays = masks.map((m) => ({ weight: m.weight.slice(), bias: m.bias.slice() }));
      this.maskTensors = masks.map((m, i) => ({
        weight: tf.tensor(Float32Array.from(m.weight), weightShape(ops[i]!), 'float32'),
        bias: tf.tensor1d(Float32Array.from(m.bias), 'float32'),
      }));
    } else {
      this.maskArrays = null;
      this.maskTensors = null;
    }
    if (old) for (const m of old) tf.dispose([m.weight, m.bias]);
  }

  /**
   * Per-channel multiplicative gates after each prunable layer (forward's `gates`: channel masks for channel-pruning
   * finetuning). Entries are per prunable layer (null = no gate); null clears all.
   */
  setGates(gates: (Float32Array | null)[] | null): void {
    this.assertLive();
    const ops = prunableOps(this.arch);
    if (gates && gates.length !== ops.length) throw new Error(`${gates.length} gate entries for ${ops.length} prunable layers`);
    const old = this.gateTensors;
    this.gateArrays = gates ? gates.map((g) => (g ? g.slice() : null)) : null;
    this.gateTensors = gates
      ? gates.map((g, i) => {
          if (!g) return null;
          checkLength(`${ops[i]!.name} gate`, g, biasLength(ops[i]!));
          return tf.tensor1d(g, 'float32');
        })
      : null;
    if (old) for (const g of old) if (g) g.dispose();
  }

  /** The batch the next step() will use (copies). */
  peekBatch(): Batch {
    const b = this.readBatch(this._cursor);
    return { images: b.images.slice(), labels: b.labels.slice() };
  }

  /** Images/labels from `start`, batchSize of them, wrapping around the end (views when contiguous). */
  private readBatch(start: number): Batch {
    const B = this.solver.batchSize;
    const n = this.train.count;
    const per = this.perImage;
    if (start + B <= n) {
      return { images: this.train.images.subarray(start * per, (start + B) * per), labels: this.train.labels.subarray(start, start + B) };
    }
    const images = new Float32Array(B * per);
    const labels = new Uint8Array(B);
    for (let i = 0; i < B; i++) {
      const j = (start + i) % n;
      images.set(this.train.images.subarray(j * per, (j + 1) * per), i * per);
      labels[i] = this.train.labels[j]!;
    }
    return { images, labels };
  }

  /** Effective tensors w⊙m, b⊙m (the variables themselves when training dense). */
  private effective(): { weights: tf.Tensor[] } {
    const weights: tf.Tensor[] = [];
    this.layers.forEach((l, i) => {
      const m = this.maskTensors?.[i];
      weights.push(m ? tf.mul(l.weight.value, m.weight) : l.weight.value);
      weights.push(m ? tf.mul(l.bias.value, m.bias) : l.bias.value);
    });
    return { weights };
  }

  private modelTensors(layerArgs: tf.Tensor[], bnArgs: tf.Tensor[]): ModelTensors {
    return {
      layers: this.layers.map((_, i) => ({ weight: layerArgs[2 * i]!, bias: layerArgs[2 * i + 1] as tf.Tensor1D })),
      batchNorms: this.bns.map((b, i) => ({
        gamma: bnArgs[2 * i] as tf.Tensor1D,
        beta: bnArgs[2 * i + 1] as tf.Tensor1D,
        movingMean: b.movingMean as unknown as tf.Tensor1D,
        movingVariance: b.movingVariance as unknown as tf.Tensor1D,
      })),
    };
  }

  /** One SGD step on the next batch at lr(iteration); then iteration++ and the cursor moves on. */
  step(): { loss: number } {
    this.assertLive();
    const s = this.solver;
    const B = s.batchSize;
    const batch = this.readBatch(this._cursor);
    const K = this.arch.numClasses;
    const oneHot = new Float32Array(B * K);
    for (let i = 0; i < B; i++) {
      const y = batch.labels[i]!;
      if (y >= K) throw new Error(`label ${y} out of range for ${K} classes`);
      oneHot[i * K + y] = 1;
    }
    const lr = this.lr(this._iteration);
    const [H, W, C] = this.inputShape;
    const bnStats: tf.Tensor[] = [];
    const lossT = tf.tidy(() => {
      const x = tf.tensor4d(batch.images, [B, H, W, C], 'float32');
      const y = tf.tensor2d(oneHot, [B, K], 'float32');
      const eff = this.effective().weights;
      const bnArgs = this.bns.flatMap((b) => [b.gamma.value as tf.Tensor, b.beta.value as tf.Tensor]);
      const nL = eff.length;
      // Zero-length arrays (the bias of a layer without one) are passed through, not differentiated: nothing reads them.
      const all = [...eff, ...bnArgs];
      const live = all.flatMap((t, i) => (t.size > 0 ? [i] : []));
      const f = (...xs: tf.Tensor[]): tf.Scalar => {
        const args = all.slice();
        live.forEach((i, k) => (args[i] = xs[k]!));
        const t = this.modelTensors(args.slice(0, nL), args.slice(nL));
        const logits = runGraph(this.arch, t, x, {
          mode: 'train',
          gates: this.gateTensors,
          dropoutSeed: this._iteration,
          onBatchNormStats: (i, mean, variance) => {
            const b = this.bns[i]!;
            const mu = s.bnMomentum;
            bnStats[2 * i] = tf.keep(tf.add(tf.mul(b.movingMean, mu), tf.mul(mean, 1 - mu)));
            bnStats[2 * i + 1] = tf.keep(tf.add(tf.mul(b.movingVariance, mu), tf.mul(variance, 1 - mu)));
          },
        });
        return tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads(f)(live.map((i) => all[i]!));
      const params: Trainable[] = [...this.layers.flatMap((l) => [l.weight, l.bias]), ...this.bns.flatMap((b) => [b.gamma, b.beta])];
      live.forEach((i, k) => {
        const p = params[i]!;
        const g = grads[k]!;
        const decay = s.weightDecay * p.decayMult;
        const diff = decay !== 0 ? tf.add(g, tf.mul(p.value, decay)) : g;
        const v = tf.add(tf.mul(diff, lr * p.lrMult), tf.mul(p.momentum, s.momentum));
        p.momentum.assign(v);
        p.value.assign(tf.sub(p.value, v));
      });
      return value;
    });
    try {
      this.bns.forEach((b, i) => {
        if (bnStats[2 * i]) b.movingMean.assign(bnStats[2 * i] as tf.Tensor1D);
        if (bnStats[2 * i + 1]) b.movingVariance.assign(bnStats[2 * i + 1] as tf.Tensor1D);
      });
    } finally {
      tf.dispose(bnStats.filter(Boolean));
    }
    const loss = lossT.dataSync()[0]!;
    lossT.dispose();
    this._iteration++;
    this._cursor = (this._cursor + B) % this.train.count;
    return { loss };
  }

  /** Runs n steps; `onStep` sees each step's loss. Returns the mean loss. */
  run(n: number, onStep?: (iteration: number, loss: number) => void): number {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const { loss } = this.step();
      sum += loss;
      onStep?.(this._iteration, loss);
    }
    return n > 0 ? sum / n : NaN;
  }

  /** Accuracy and mean loss of the current (masked, gated) weights on a set, in inference mode, without downloading the weights. */
  evaluate(set: ImageSet, batchSize = 1000): EvalResult {
    this.assertLive();
    const eff = this.effective().weights;
    try {
      const t = this.modelTensors(eff, this.bns.flatMap((b) => [b.gamma.value as tf.Tensor, b.beta.value as tf.Tensor]));
      return evaluateLogits(this.arch, t, set, batchSize, this.gateTensors);
    } finally {
      for (let i = 0; i < eff.length; i++) if (this.maskTensors) eff[i]!.dispose();
    }
  }

  /** Downloads the dense (unmasked) weights and the batchnorm parameters. */
  getParams(): ModelParams {
    this.assertLive();
    return {
      layers: this.layers.map((l) => ({ weight: l.weight.value.dataSync().slice() as Float32Array, bias: l.bias.value.dataSync().slice() as Float32Array })),
      batchNorms: this.bns.map((b) => ({
        gamma: b.gamma.value.dataSync().slice() as Float32Array,
        beta: b.beta.value.dataSync().slice() as Float32Array,
        movingMean: b.movingMean.dataSync().slice() as Float32Array,
        movingVariance: b.movingVariance.dataSync().slice() as Float32Array,
      })),
    };
  }

  /** Replaces the dense weights (e.g. after an external edit); momentum is kept. */
  setParams(params: ModelParams): void {
    this.assertLive();
    const ops = prunableOps(this.arch);
    params.layers.forEach((p, i) => {
      const l = this.layers[i]!;
      checkLength(`${ops[i]!.name} weight`, p.weight, l.weight.value.size);
      checkLength(`${ops[i]!.name} bias`, p.bias, l.bias.value.size);
      tf.tidy(() => {
        l.weight.value.assign(tf.tensor(p.weight, l.weight.value.shape, 'float32'));
        l.bias.value.assign(tf.tensor(p.bias, l.bias.value.shape, 'float32'));
      });
    });
    params.batchNorms.forEach((p, i) => {
      const b = this.bns[i]!;
      tf.tidy(() => {
        b.gamma.value.assign(tf.tensor1d(p.gamma, 'float32'));
        b.beta.value.assign(tf.tensor1d(p.beta, 'float32'));
        b.movingMean.assign(tf.tensor1d(p.movingMean, 'float32'));
        b.movingVariance.assign(tf.tensor1d(p.movingVariance, 'float32'));
      });
    });
  }

  getMomentum(): MomentumState {
    this.assertLive();
    return {
      layers: this.layers.map((l) => ({ weight: l.weight.momentum.dataSync().slice() as Float32Array, bias: l.bias.momentum.dataSync().slice() as Float32Array })),
      batchNorms: this.bns.map((b) => ({ gamma: b.gamma.momentum.dataSync().slice() as Float32Array, beta: b.beta.momentum.dataSync().slice() as Float32Array })),
    };
  }

  setMomentum(m: MomentumState): void {
    this.assertLive();
    if (m.layers.length !== this.layers.length || m.batchNorms.length !== this.bns.length) throw new Error('momentum state does not match the architecture');
    const set = (v: tf.Variable, a: Float32Array, what: string): void => {
      checkLength(what, a, v.size);
      tf.tidy(() => v.assign(tf.tensor(a, v.shape, 'float32')));
    };
    m.layers.forEach((l, i) => {
      set(this.layers[i]!.weight.momentum, l.weight, `momentum ${i} weight`);
      set(this.layers[i]!.bias.momentum, l.bias, `momentum ${i} bias`);
    });
    m.batchNorms.forEach((b, i) => {
      set(this.bns[i]!.gamma.momentum, b.gamma, `bn momentum ${i} gamma`);
      set(this.bns[i]!.beta.momentum, b.beta, `bn momentum ${i} beta`);
    });
  }

  state(): TrainerState {
    this.assertLive();
    return {
      format: 'prunus-trainer',
      version: 1,
      arch: this.arch.name,
      iteration: this._iteration,
      cursor: this._cursor,
      solver: { ...this.solver },
      params: this.getParams(),
      momentum: this.getMomentum(),
      masks: this.getMasks(),
      gates: this.gateArrays ? this.gateArrays.map((g) => (g ? g.slice() : null)) : null,
    };
  }

  /** Frees every tensor the trainer holds. The trainer cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) for (const p of [l.weight, l.bias]) tf.dispose([p.value, p.momentum]);
    for (const b of this.bns) {
      for (const p of [b.gamma, b.beta]) tf.dispose([p.value, p.momentum]);
      tf.dispose([b.movingMean, b.movingVariance]);
    }
    if (this.maskTensors) for (const m of this.maskTensors) tf.dispose([m.weight, m.bias]);
    if (this.gateTensors) for (const g of this.gateTensors) if (g) g.dispose();
    this.maskTensors = null;
    this.gateTensors = null;
  }

  private assertLive(): void {
    if (this.disposed) throw new Error('the trainer has been disposed');
  }
}
