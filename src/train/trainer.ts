/**
 * The one SGD trainer: a stateful trainer driven one step at a time, by the OLMP pipeline and the reference training
 * (Caffe's solver) and by the channel-pruning finetuners (momentum SGD, src/train/sgd.ts).
 *
 * Weights, biases and momentum live on the device as tf.Variables between steps. Masked training is Dynamic Network
 * Surgery (spec olmp.md §2): the forward pass uses w⊙m, the gradient with respect to the effective weight w⊙m
 * (computed by tf.grads over the effective tensors) updates every dense weight, pruned ones included, and weight
 * decay acts on the dense weights. SGD never changes the masks. Channel finetuning instead holds parameter masks:
 * pruned channels are zero from the start and after every update. Batches are read sequentially from the train set
 * in its stored (already seeded-shuffled) order, cycling like Caffe's data layer, or from seeded epoch-wise
 * permutations (batches.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture, BatchNormOp } from '../../models/graph.js';
import { prunableOps, weightShape, biasLength, batchNormOps } from '../../models/graph.js';
import type { ModelParams, LayerMasks } from '../../models/params.js';
import type { ParamMasks } from '../../models/channels.js';
import { runGraph, toTensors, disposeModelTensors, type ModelTensors, type RunOptions } from '../../models/forward.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { Rng } from '../../foundation/rng.js';
import { resolveSolver, learningRate, lrAt, checkSgdConfig, type SolverOptions, type SgdConfig } from './solver.js';
import { evaluateLogits, type EvalResult } from './evaluate.js';
import { applyUpdate, type Trainable, type UpdateRule } from './update.js';
import { BatchSampler, gatherBatch, sequentialBatch, type Batch } from './batches.js';
import { readMomentum, readParams, writeMomentum, writeParams, checkLength, type LayerVariables, type BatchNormVariables, type MomentumState } from './variables.js';
import { ShardPool, type ShardStepResult } from './shard-pool.js';
import type { BackendName } from '../../backends/backend.js';

export type { Batch } from './batches.js';
export type { MomentumState } from './variables.js';

/** A loss replacing softmax cross-entropy (DCP's heads): the model tensors, the batch, one-hot labels, the batchnorm statistics callback and the extra variables' tensors. */
export type LossFn = (t: ModelTensors, x: tf.Tensor4D, y: tf.Tensor2D, onBatchNormStats: NonNullable<RunOptions['onBatchNormStats']>, extras: tf.Tensor[]) => tf.Scalar;

export interface TrainerOptions {
  /** Caffe's solver (the default rule); its batchSize sets the batch unless `sgd` is given. */
  solver?: Partial<SolverOptions>;
  /** Momentum SGD instead (channel-pruning recipes): schedule, momentum, Nesterov, decay on kernels only. */
  sgd?: SgdConfig;
  /** Batches from seeded epoch-wise permutations (this seed) instead of the sequential cursor. */
  shuffleSeed?: string;
  /** Masks over every trainable array, held after every update (pruned channels stay zero). */
  held?: ParamMasks;
  /** Replaces the softmax cross-entropy loss. */
  loss?: LossFn;
  /** More variables trained by the same rule (no decay, no masks), e.g. DCP heads. The caller owns them. */
  extraVariables?: tf.Variable[];
  /** Iteration counter at start (drives the lr schedule); default 0. */
  startIteration?: number;
  /** Index in the train set of the next image to read; default 0. */
  cursor?: number;
  /** Replaces the schedule's learning rate of iteration t where it returns a number (e.g. a decay during retraining). */
  lrOverride?: (t: number) => number | undefined;
  /** Knowledge distillation from a fixed teacher (see Distillation); only with the default softmax loss. */
  distill?: Distillation;
  /**
   * Shards each batch is cut into (default 1: the whole batch at once). With K > 1 every shard's gradient is computed
   * apart and the gradients are summed in shard order, so results depend on K but not on `threads`. Needs the
   * default loss and no extra variables.
   */
  shards?: number;
  /** Threads computing the shards: this one and threads − 1 workers (default 1; at most `shards`). */
  threads?: number;
}

/**
 * Distillation (Hinton et al. 2015): the loss is (1 − α)·CE(labels, z) + α·T²·CE(softmax(z_T/T), z/T), z the
 * student's logits, z_T the teacher's (the teacher's dense parameters in inference mode, never trained).
 */
export interface Distillation {
  teacher: ModelParams;
  alpha: number;
  temperature: number;
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
  /** Shards per batch (absent: 1). */
  shards?: number;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}


/** The worker threads' backend: the one running here, so that every shard is computed alike; null when workers cannot run it. */
function workerBackend(): BackendName | null {
  const b = tf.getBackend();
  return b === 'wasm' || b === 'cpu' ? b : null;
}

export class Trainer {
  readonly arch: Architecture;
  readonly solver: SolverOptions;
  /** The momentum-SGD recipe, when the trainer runs it instead of Caffe's solver. */
  readonly sgd: SgdConfig | null;
  private readonly rule: UpdateRule;
  private readonly batchSize: number;
  private readonly bnMomentum: number;
  private readonly sampler: BatchSampler | null;
  private readonly loss: LossFn | null;
  private readonly extras: Trainable[];
  private readonly heldMasks: tf.Tensor[] = [];
  private readonly train: ImageSet;
  private readonly inputShape: [number, number, number];
  private readonly layers: LayerVariables[];
  private readonly bns: BatchNormVariables[];
  private maskTensors: { weight: tf.Tensor; bias: tf.Tensor }[] | null = null;
  private maskArrays: LayerMasks[] | null = null;
  private gateTensors: (tf.Tensor1D | null)[] | null = null;
  private gateArrays: (Float32Array | null)[] | null = null;
  private _iteration: number;
  private _cursor: number;
  private disposed = false;
  private readonly lrOverride: ((t: number) => number | undefined) | null;
  private readonly distill: { alpha: number; temperature: number; teacher: ModelTensors } | null;
  /** Shards per batch; > 1 runs the sharded step. */
  readonly shards: number;
  private readonly pool: ShardPool | null;

  constructor(arch: Architecture, params: ModelParams, train: ImageSet, opts: TrainerOptions = {}) {
    this.arch = arch;
    this.solver = resolveSolver(opts.solver);
    this.sgd = opts.sgd ?? null;
    if (this.sgd) checkSgdConfig(this.sgd);
    this.rule = this.sgd ? { kind: 'momentum', momentum: this.sgd.momentum, nesterov: this.sgd.nesterov } : { kind: 'caffe', momentum: this.solver.momentum };
    this.batchSize = this.sgd ? this.sgd.batchSize : this.solver.batchSize;
    this.bnMomentum = this.sgd ? this.sgd.bnMomentum : this.solver.bnMomentum;
    this.sampler = opts.shuffleSeed !== undefined ? new BatchSampler(train.count, this.batchSize, new Rng(opts.shuffleSeed)) : null;
    this.loss = opts.loss ?? null;
    this.train = train;
    this.inputShape = train.shape;
    const [h, w, c] = arch.inputShape;
    if (train.shape[0] !== h || train.shape[1] !== w || train.shape[2] !== c) {
      throw new Error(`train images are ${train.shape.join('x')}, ${arch.name} takes ${arch.inputShape.join('x')}`);
    }
    if (train.count < 1) throw new Error('the train set is empty');
    this._iteration = opts.startIteration ?? 0;
    this._cursor = opts.cursor ?? 0;
    this.lrOverride = opts.lrOverride ?? null;
    const d = opts.distill;
    if (d) {
      if (this.loss) throw new Error('distillation needs the default softmax loss');
      if (!(d.alpha >= 0 && d.alpha <= 1)) throw new Error(`distillation alpha must be in [0, 1], got ${d.alpha}`);
      if (!(d.temperature > 0) || !Number.isFinite(d.temperature)) throw new Error(`distillation temperature must be > 0, got ${d.temperature}`);
    }
    this.distill = d ? { alpha: d.alpha, temperature: d.temperature, teacher: toTensors(arch, d.teacher) } : null;
    if (!Number.isInteger(this._iteration) || this._iteration < 0) throw new Error(`startIteration must be an integer >= 0, got ${this._iteration}`);
    if (!Number.isInteger(this._cursor) || this._cursor < 0 || this._cursor >= train.count) throw new Error(`cursor must be an integer in [0, ${train.count}), got ${this._cursor}`);
    const ops = prunableOps(arch);
    if (params.layers.length !== ops.length) throw new Error(`${arch.name} has ${ops.length} prunable layers, params have ${params.layers.length}`);
    const bnOps = batchNormOps(arch);
    if (params.batchNorms.length !== bnOps.length) throw new Error(`${arch.name} has ${bnOps.length} batchnorm layers, params have ${params.batchNorms.length}`);
    const s = this.solver;
    const sgd = this.sgd;
    // (tf.variable keeps its initial tensor alive unless that is created inside a tidy.)
    const variable = (make: () => tf.Tensor, trainable: boolean): tf.Variable => tf.tidy(() => tf.variable(make(), trainable));
    // Caffe: lr and decay multipliers per kind; momentum SGD: decay on kernels only. A held mask zeroes the start too.
    const trainable = (data: Float32Array, shape: number[], kind: 'weight' | 'bias' | 'bn', held?: Uint8Array): Trainable => {
      const mask = held && held.some((e) => e === 0) ? tf.tensor(Float32Array.from(held), shape, 'float32') : null;
      if (mask) this.heldMasks.push(mask);
      const lrMult = sgd ? 1 : kind === 'weight' ? s.weightLrMult : kind === 'bias' ? s.biasLrMult : s.bnLrMult;
      const decay = sgd ? (kind === 'weight' ? sgd.weightDecay : 0) : s.weightDecay * (kind === 'weight' ? s.weightDecayMult : kind === 'bias' ? s.biasDecayMult : s.bnDecayMult);
      return {
        value: variable(() => (mask ? tf.mul(tf.tensor(data, shape, 'float32'), mask) : tf.tensor(data, shape, 'float32')), true),
        momentum: variable(() => tf.zeros(shape, 'float32'), false),
        lrMult,
        decay,
        held: mask,
      };
    };
    const held = opts.held;
    this.layers = ops.map((op, i) => {
      const p = params.layers[i]!;
      const ws = weightShape(op);
      checkLength(`${op.name} weight`, p.weight, size(ws));
      checkLength(`${op.name} bias`, p.bias, biasLength(op));
      return {
        weight: trainable(p.weight, ws, 'weight', held?.layers[i]?.weight),
        bias: trainable(p.bias, [biasLength(op)], 'bias', held?.layers[i]?.bias),
      };
    });
    this.extras = (opts.extraVariables ?? []).map((v) => ({ value: v, momentum: variable(() => tf.zerosLike(v), false), lrMult: 1, decay: 0, held: null }));
    this.bns = bnOps.map((op: BatchNormOp, i) => {
      const b = params.batchNorms[i]!;
      for (const k of ['gamma', 'beta', 'movingMean', 'movingVariance'] as const) checkLength(`${op.name} ${k}`, b[k], op.channels);
      return {
        gamma: trainable(b.gamma, [op.channels], 'bn', held?.batchNorms[i]?.gamma),
        beta: trainable(b.beta, [op.channels], 'bn', held?.batchNorms[i]?.beta),
        movingMean: variable(() => tf.tensor1d(b.movingMean, 'float32'), false),
        movingVariance: variable(() => tf.tensor1d(b.movingVariance, 'float32'), false),
      };
    });
    this.shards = opts.shards ?? 1;
    this.pool = null;
    if (!Number.isInteger(this.shards) || this.shards < 1) throw new Error(`train shards must be an integer >= 1, got ${this.shards}`);
    if (this.shards > 1) {
      if (this.loss || this.extras.length) throw new Error('sharded training needs the default loss and no extra variables');
      // Worker threads run wasm or cpu, the backend of this thread; under tfjs-node or WebGPU (not loaded in workers)
      // the shards are computed here alone, which keeps results independent of the thread count.
      const threads = workerBackend() === null ? 1 : (opts.threads ?? 1);
      this.pool = new ShardPool(arch, { threads, shards: this.shards, batchSize: this.batchSize, backend: workerBackend() ?? 'wasm', distill: d ?? null });
    }
  }

  /** Threads computing each step (1 unless sharded). */
  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  /** Rebuilds a trainer from state(): the next steps are bit-identical to those of the trainer that saved it. */
  static restore(arch: Architecture, state: TrainerState, train: ImageSet, opts: Pick<TrainerOptions, 'lrOverride' | 'distill' | 'threads'> = {}): Trainer {
    if (state.format !== 'prunus-trainer' || state.version !== 1) throw new Error(`not a prunus trainer state (format ${String(state.format)}, version ${String(state.version)})`);
    if (state.arch !== arch.name) throw new Error(`trainer state is for ${state.arch}, not ${arch.name}`);
    const t = new Trainer(arch, state.params, train, { ...opts, solver: state.solver, startIteration: state.iteration, cursor: state.cursor % train.count, shards: state.shards ?? 1 });
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

  /** Learning rate of iteration t (Caffe's "inv" policy, or the SGD recipe's schedule, unless overridden). */
  lr(t: number = this._iteration): number {
    const o = this.lrOverride?.(t);
    if (o !== undefined) return o;
    return this.sgd ? lrAt(this.sgd, t) : learningRate(this.solver, t);
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
    this.pool?.setGates(this.gateArrays);
  }

  /** The batch the next step() will use (copies; sequential batches only). */
  peekBatch(): Batch {
    if (this.sampler) throw new Error('peekBatch: shuffled batches are drawn when used');
    const b = sequentialBatch(this.train, this._cursor, this.batchSize);
    return { images: b.images.slice(), labels: b.labels.slice() };
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
    const B = this.batchSize;
    const batch = this.sampler ? gatherBatch(this.train, this.sampler.next()) : sequentialBatch(this.train, this._cursor, B);
    if (this.pool) return this.shardedStep(batch, this.pool);
    const n = batch.labels.length;
    const K = this.arch.numClasses;
    const oneHot = new Float32Array(n * K);
    for (let i = 0; i < n; i++) {
      const y = batch.labels[i]!;
      if (y >= K) throw new Error(`label ${y} out of range for ${K} classes`);
      oneHot[i * K + y] = 1;
    }
    const lr = this.lr(this._iteration);
    const [H, W, C] = this.inputShape;
    const mu = this.bnMomentum;
    const bnStats: tf.Tensor[] = [];
    const onBatchNormStats = (i: number, mean: tf.Tensor1D, variance: tf.Tensor1D): void => {
      const b = this.bns[i]!;
      bnStats[2 * i] = tf.keep(tf.add(tf.mul(b.movingMean, mu), tf.mul(mean, 1 - mu)));
      bnStats[2 * i + 1] = tf.keep(tf.add(tf.mul(b.movingVariance, mu), tf.mul(variance, 1 - mu)));
    };
    const lossT = tf.tidy(() => {
      const x = tf.tensor4d(batch.images, [n, H, W, C], 'float32');
      const y = tf.tensor2d(oneHot, [n, K], 'float32');
      const eff = this.effective().weights;
      const bnArgs = this.bns.flatMap((b) => [b.gamma.value as tf.Tensor, b.beta.value as tf.Tensor]);
      const nL = eff.length;
      const nB = bnArgs.length;
      // Zero-length arrays (the bias of a layer without one) are passed through, not differentiated: nothing reads them.
      const all = [...eff, ...bnArgs, ...this.extras.map((e) => e.value as tf.Tensor)];
      const d = this.distill;
      const soft = d ? tf.softmax(tf.div(runGraph(this.arch, d.teacher, x, { mode: 'infer' }), d.temperature)) : null;
      const live = all.flatMap((t, i) => (t.size > 0 ? [i] : []));
      const f = (...xs: tf.Tensor[]): tf.Scalar => {
        const args = all.slice();
        live.forEach((i, k) => (args[i] = xs[k]!));
        const t = this.modelTensors(args.slice(0, nL), args.slice(nL, nL + nB));
        if (this.loss) return this.loss(t, x, y, onBatchNormStats, args.slice(nL + nB));
        const logits = runGraph(this.arch, t, x, { mode: 'train', gates: this.gateTensors, dropoutSeed: this._iteration, onBatchNormStats });
        if (d && soft) {
          const hard = tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN);
          const distilled = tf.losses.softmaxCrossEntropy(soft, tf.div(logits, d.temperature), undefined, undefined, tf.Reduction.MEAN);
          return tf.add(tf.mul(hard, 1 - d.alpha), tf.mul(distilled, d.alpha * d.temperature * d.temperature)) as tf.Scalar;
        }
        // Caffe's softmax loss is the batch mean; the SGD recipes use tfjs's default reduction (sum / batch size).
        return (this.sgd ? tf.losses.softmaxCrossEntropy(y, logits) : tf.losses.softmaxCrossEntropy(y, logits, undefined, undefined, tf.Reduction.MEAN)) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads(f)(live.map((i) => all[i]!));
      const params: Trainable[] = [...this.layers.flatMap((l) => [l.weight, l.bias]), ...this.bns.flatMap((b) => [b.gamma, b.beta]), ...this.extras];
      live.forEach((i, k) => applyUpdate(this.rule, params[i]!, grads[k]!, lr));
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
    if (!this.sampler) this._cursor = (this._cursor + B) % this.train.count;
    return { loss };
  }

  /** step() with the batch cut into shards, computed by the pool's threads (see shard-pool.ts). */
  private shardedStep(batch: Batch, pool: ShardPool): { loss: number } {
    const lr = this.lr(this._iteration);
    const eff = this.effective().weights;
    let r: ShardStepResult;
    try {
      const tensors = this.modelTensors(eff, this.bns.flatMap((b) => [b.gamma.value as tf.Tensor, b.beta.value as tf.Tensor]));
      r = pool.step({
        tensors,
        images: batch.images,
        labels: batch.labels,
        iteration: this._iteration,
        gates: this.gateTensors,
        teacher: this.distill?.teacher ?? null,
        distill: this.distill ? { alpha: this.distill.alpha, temperature: this.distill.temperature } : null,
      });
    } finally {
      if (this.maskTensors) tf.dispose(eff);
    }
    const mu = this.bnMomentum;
    tf.tidy(() => {
      this.layers.forEach((l, i) => {
        for (const [p, g] of [
          [l.weight, r.grads[2 * i]!],
          [l.bias, r.grads[2 * i + 1]!],
        ] as const) {
          if (g.length > 0) applyUpdate(this.rule, p, tf.tensor(g, p.value.shape, 'float32'), lr);
        }
      });
      this.bns.forEach((b, i) => {
        const rec = r.batchNorms[i];
        if (!rec) return;
        applyUpdate(this.rule, b.gamma, tf.tensor1d(rec.dgamma, 'float32'), lr);
        applyUpdate(this.rule, b.beta, tf.tensor1d(rec.dbeta, 'float32'), lr);
        b.movingMean.assign(tf.add(tf.mul(b.movingMean, mu), tf.mul(tf.tensor1d(rec.mean, 'float32'), 1 - mu)));
        b.movingVariance.assign(tf.add(tf.mul(b.movingVariance, mu), tf.mul(tf.tensor1d(rec.variance, 'float32'), 1 - mu)));
      });
    });
    this._iteration++;
    if (!this.sampler) this._cursor = (this._cursor + this.batchSize) % this.train.count;
    return { loss: r.loss };
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
    return readParams(this.layers, this.bns);
  }

  /** Replaces the dense weights (e.g. after an external edit); momentum is kept. */
  setParams(params: ModelParams): void {
    this.assertLive();
    writeParams(this.layers, this.bns, params, prunableOps(this.arch).map((op) => op.name));
  }

  getMomentum(): MomentumState {
    this.assertLive();
    return readMomentum(this.layers, this.bns);
  }

  setMomentum(m: MomentumState): void {
    this.assertLive();
    writeMomentum(this.layers, this.bns, m);
  }

  state(): TrainerState {
    this.assertLive();
    if (this.sgd || this.sampler || this.extras.length) throw new Error('state(): only Caffe-solver trainers on sequential batches are checkpointed');
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
      ...(this.shards > 1 ? { shards: this.shards } : {}),
    };
  }

  /** Frees every tensor the trainer holds. The trainer cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool?.dispose();
    for (const l of this.layers) for (const p of [l.weight, l.bias]) tf.dispose([p.value, p.momentum]);
    for (const b of this.bns) {
      for (const p of [b.gamma, b.beta]) tf.dispose([p.value, p.momentum]);
      tf.dispose([b.movingMean, b.movingVariance]);
    }
    for (const e of this.extras) e.momentum.dispose();
    tf.dispose(this.heldMasks);
    if (this.maskTensors) for (const m of this.maskTensors) tf.dispose([m.weight, m.bias]);
    if (this.gateTensors) for (const g of this.gateTensors) if (g) g.dispose();
    if (this.distill) disposeModelTensors(this.distill.teacher);
    this.maskTensors = null;
    this.gateTensors = null;
  }

  private assertLive(): void {
    if (this.disposed) throw new Error('the trainer has been disposed');
  }
}
