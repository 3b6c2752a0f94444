/**
 * DCP — discrimination-aware channel pruning (spec channel-pruning.md §2, §4), sized for 2 CPU cores.
 *
 *  - Auxiliary heads (BN → ReLU → GAP → FC, softmax CE) after the stage boundaries: LeNet-5 one head after pool2;
 *    the BN CNN heads after pool1 and pool2 (rule: every maxpool but the last when there are ≥ 3, else the last).
 *    Heads are first fitted on frozen features (their BN uses the features' statistics), then trained jointly with
 *    the network on L_f + Σ L_S^p (stage-wise finetuning; its steps come out of the run's finetune budget).
 *  - Greedy selection at the consumer, layer by layer in forward order: L = L_M + λ·L_S with
 *    L_M = ½·mean((O_b − O)²) at the consumer's pre-activation output and L_S the CE of the head of the consumer's
 *    stage (the network's own output for the last stage); channel score ‖∂L/∂W_{:,j}‖_F over the selection set;
 *    the best unselected channels are added (ceil(C/maxSteps) per step), then the consumer weights (selected slices
 *    only, the rest held at zero) take `itersPerStep` Nesterov-SGD steps with the network, BN and heads frozen.
 *  - As a scorer the greedy order is run to all C channels on the baseline (score = C − rank); as a pruner it runs
 *    to k_g on the progressively pruned network, then the final finetune uses L_f only.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../../models/graph.js';
import { prunableOps, weightShape } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import { cloneParams } from '../../models/params.js';
import { type ChannelGroup, type ChannelMasks, applyChannelMasks, consumerInputEntries, fullChannelMasks } from '../../models/channels.js';
import { toTensors, disposeModelTensors, runGraph, type ModelTensors } from '../../models/forward.js';
import { walkGraph } from '../../models/walk.js';
import { batchNormTrain, channelMoments } from '../../models/ops/train-ops.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { Rng } from '../../foundation/rng.js';
import { UsageError } from '../../foundation/errors.js';
import { batchOf, oneHot } from './data.js';
import { scoreBatches } from './scorers.js';
import { trainSgd } from '../train/sgd.js';
import type { SgdConfig } from '../train/solver.js';

export interface DcpOptions {
  /** λ of L_M + λ·L_S (spec: 1). */
  lambda: number;
  /** Images of the scoring split used for selection (fixed subset). */
  selectionImages: number;
  /** Mini-batch of the per-step optimisation. */
  batchSize: number;
  /** Greedy steps to add all of a group's channels: ceil(C / maxSteps) channels are added per step. */
  maxSteps: number;
  /** Consumer-weight SGD iterations after each addition (fixed count, PocketFlow style). */
  itersPerStep: number;
  /** Selection SGD: Nesterov momentum (SCUT: lr 0.01, momentum 0.9, wd 1e-4). */
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Head training: images of the training split, Adam steps, learning rate, batch. */
  headImages: number;
  headSteps: number;
  headLr: number;
}

export const DCP_DEFAULTS: DcpOptions = {
  lambda: 1,
  selectionImages: 1024,
  batchSize: 64,
  maxSteps: 12,
  itersPerStep: 30,
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 1e-4,
  headImages: 4096,
  headSteps: 400,
  headLr: 0.005,
};

/** An auxiliary head reading the output of op `point`. */
export interface DcpHead {
  point: number;
  channels: number;
  mean: Float32Array;
  variance: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  /** FC [channels, numClasses] and bias. */
  weight: Float32Array;
  bias: Float32Array;
  /** Head accuracy on its training features (for the report). */
  trainAccuracy: number;
}

/** Head positions (op indices): every maxpool but the last when there are ≥ 3, else the last maxpool. */
export function dcpHeadPoints(arch: Architecture): number[] {
  const pools = arch.ops.flatMap((op, i) => (op.type === 'maxpool' ? [i] : []));
  if (pools.length === 0) return [];
  return pools.length >= 3 ? pools.slice(0, -1) : [pools[pools.length - 1]!];
}

interface HeadTensors {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
  weight: tf.Tensor2D;
  bias: tf.Tensor1D;
}

function headTensors(h: DcpHead): HeadTensors {
  return {
    mean: tf.tensor1d(h.mean),
    variance: tf.tensor1d(h.variance),
    gamma: tf.tensor1d(h.gamma),
    beta: tf.tensor1d(h.beta),
    weight: tf.tensor2d(h.weight, [h.channels, h.weight.length / h.channels]),
    bias: tf.tensor1d(h.bias),
  };
}

function disposeHead(t: HeadTensors): void {
  tf.dispose([t.mean, t.variance, t.gamma, t.beta, t.weight, t.bias]);
}

/** BN (inference, feature statistics) → ReLU → global average pool → FC. */
function headForward(f: tf.Tensor, h: HeadTensors): tf.Tensor2D {
  let z = tf.relu(tf.batchNorm(f, h.mean, h.variance, h.beta, h.gamma, 1e-3));
  if (z.rank === 4) z = tf.mean(z, [1, 2]);
  return tf.add(tf.matMul(z as tf.Tensor2D, h.weight), h.bias);
}

/**
 * Outputs of `nodes` (-1: the images themselves) for `set[idx]`, in chunks, the network frozen in inference mode
 * ('frozen': the differentiable ops the selection's gradients use).
 */
function valuesAt(arch: Architecture, t: ModelTensors, set: ImageSet, idx: ArrayLike<number>, nodes: readonly number[], chunk = 256): tf.Tensor[] {
  const parts: tf.Tensor[][] = nodes.map(() => []);
  const last = Math.max(...nodes);
  for (let s = 0; s < idx.length; s += chunk) {
    const sub = Array.from({ length: Math.min(chunk, idx.length - s) }, (_, i) => idx[s + i]!);
    const { x } = batchOf(set, sub);
    const got = new Map<number, tf.Tensor>();
    if (nodes.includes(-1)) got.set(-1, x.clone());
    if (last >= 0) {
      tf.tidy(() => {
        runGraph(arch, t, x, { mode: 'frozen', fetch: last, onOutput: (i, out) => (nodes.includes(i) ? got.set(i, tf.keep(out.clone())) : undefined) });
      });
    }
    nodes.forEach((n, k) => parts[k]!.push(got.get(n)!));
    x.dispose();
  }
  return parts.map((p) => {
    const out = p.length === 1 ? p[0]! : tf.concat(p, 0);
    if (p.length > 1) tf.dispose(p);
    return out;
  });
}

/** Features at op `point` (its output) for `set[idx]`. */
function featuresAt(arch: Architecture, t: ModelTensors, set: ImageSet, idx: ArrayLike<number>, point: number): tf.Tensor {
  return valuesAt(arch, t, set, idx, [point])[0]!;
}

/**
 * The part of the network a selection loss runs: the nodes that depend on `from` and that `to` needs, and the values
 * from outside that part they read (its frontier: fixed while the consumer's weight changes, so computed once).
 */
export function selectionRegion(arch: Architecture, from: number, to: number): { frontier: number[] } {
  const nodes = walkGraph(arch).nodes;
  const down = new Uint8Array(nodes.length);
  down[from] = 1;
  for (let i = from + 1; i < nodes.length; i++) if (nodes[i]!.inputs.some((j) => j >= 0 && down[j])) down[i] = 1;
  const need = new Uint8Array(nodes.length);
  const stack = [to];
  while (stack.length) {
    const i = stack.pop()!;
    if (i < 0 || need[i]) continue;
    need[i] = 1;
    stack.push(...nodes[i]!.inputs);
  }
  const frontier = new Set<number>();
  for (let i = 0; i < nodes.length; i++) {
    if (!(down[i] && need[i])) continue;
    for (const j of nodes[i]!.inputs) if (j < 0 || !(down[j] && need[j])) frontier.add(j);
  }
  return { frontier: [...frontier].sort((a, b) => a - b) };
}

/** Trains the auxiliary heads on frozen features of the training split (Adam on γ, β, FC). */
export function trainHeads(arch: Architecture, params: ModelParams, train: ImageSet, seed: number | string, opts: DcpOptions): DcpHead[] {
  const points = dcpHeadPoints(arch);
  const rng = new Rng(`dcp-heads:${seed}`);
  const n = Math.min(opts.headImages, train.count);
  const idx = rng.permutation(train.count).slice(0, n);
  const labels = Int32Array.from(idx, (i) => train.labels[i]!);
  const t = toTensors(arch, params);
  const heads: DcpHead[] = [];
  try {
    for (const point of points) {
      const feats = featuresAt(arch, t, train, idx, point);
      const axes = feats.rank === 4 ? [0, 1, 2] : [0];
      const channels = feats.shape[feats.rank - 1]!;
      const m = tf.moments(feats, axes);
      const mean = tf.keep(m.mean as tf.Tensor1D);
      const variance = tf.keep(m.variance as tf.Tensor1D);
      const scale = Math.sqrt(6 / (channels + arch.numClasses));
      const w0 = Float32Array.from({ length: channels * arch.numClasses }, () => (2 * rng.uniform() - 1) * scale);
      const vars = {
        gamma: tf.variable(tf.ones([channels])) as tf.Variable<tf.Rank.R1>,
        beta: tf.variable(tf.zeros([channels])) as tf.Variable<tf.Rank.R1>,
        weight: tf.variable(tf.tensor2d(w0, [channels, arch.numClasses])) as tf.Variable<tf.Rank.R2>,
        bias: tf.variable(tf.zeros([arch.numClasses])) as tf.Variable<tf.Rank.R1>,
      };
      const ht: HeadTensors = { mean, variance, ...vars };
      const opt = tf.train.adam(opts.headLr);
      const bs = Math.min(opts.batchSize, n);
      let perm = rng.permutation(n);
      let pos = 0;
      for (let s = 0; s < opts.headSteps; s++) {
        if (pos + bs > n) {
          perm = rng.permutation(n);
          pos = 0;
        }
        const b = perm.slice(pos, pos + bs);
        pos += bs;
        const bi = tf.tensor1d(b, 'int32');
        const y = oneHot(Int32Array.from(b, (i) => labels[i]!), arch.numClasses);
        opt.minimize(() => tf.losses.softmaxCrossEntropy(y, headForward(tf.gather(feats, bi), ht)) as tf.Scalar, false, [vars.gamma, vars.beta, vars.weight, vars.bias]);
        tf.dispose([bi, y]);
      }
      // Training accuracy of the head.
      const logits = tf.tidy(() => headForward(feats, ht));
      const pred = tf.tidy(() => tf.argMax(logits, 1));
      const p = pred.dataSync();
      let correct = 0;
      for (let i = 0; i < n; i++) if (p[i] === labels[i]) correct++;
      heads.push({
        point,
        channels,
        mean: mean.dataSync().slice() as Float32Array,
        variance: variance.dataSync().slice() as Float32Array,
        gamma: vars.gamma.dataSync().slice() as Float32Array,
        beta: vars.beta.dataSync().slice() as Float32Array,
        weight: vars.weight.dataSync().slice() as Float32Array,
        bias: vars.bias.dataSync().slice() as Float32Array,
        trainAccuracy: correct / n,
      });
      opt.dispose();
      tf.dispose([feats, mean, variance, logits, pred, vars.gamma, vars.beta, vars.weight, vars.bias]);
    }
  } finally {
    disposeModelTensors(t);
  }
  return heads;
}

/**
 * Stage-wise finetuning (spec §2 "train the heads jointly with the network"): SGD on L_f + Σ_p L_S^p over the
 * network and the heads together, BatchNorm (network and heads) in training mode. The heads' BN statistics are then
 * re-estimated on the new features. Returns the finetuned network (M_b of the selection) and heads.
 */
export function jointFinetune(arch: Architecture, params: ModelParams, heads: DcpHead[], train: ImageSet, sgd: SgdConfig, seed: number | string, opts: DcpOptions): { params: ModelParams; heads: DcpHead[]; losses: number[] } {
  if (sgd.steps === 0 || heads.length === 0) return { params, heads, losses: [] };
  const hv = heads.map((h) => ({
    gamma: tf.variable(tf.tensor1d(h.gamma)) as tf.Variable<tf.Rank.R1>,
    beta: tf.variable(tf.tensor1d(h.beta)) as tf.Variable<tf.Rank.R1>,
    weight: tf.variable(tf.tensor2d(h.weight, [h.channels, h.weight.length / h.channels])) as tf.Variable<tf.Rank.R2>,
    bias: tf.variable(tf.tensor1d(h.bias)) as tf.Variable<tf.Rank.R1>,
  }));
  try {
    const r = trainSgd(arch, params, train, sgd, `dcp-joint:${seed}`, {
      extraVariables: hv.flatMap((h) => [h.gamma, h.beta, h.weight, h.bias]),
      loss: (t, x, y, onBatchNormStats) => {
        const atHead = new Map<number, tf.Tensor>();
        const out = runGraph(arch, t, x, { mode: 'train', onBatchNormStats, dropoutSeed: null, onOutput: (i, o) => (heads.some((h) => h.point === i) ? atHead.set(i, o) : undefined) });
        let total: tf.Tensor = tf.scalar(0);
        heads.forEach((head, p) => {
          let z = tf.relu(batchNormTrain(atHead.get(head.point)!, hv[p]!.gamma, hv[p]!.beta, 1e-3));
          if (z.rank === 4) z = tf.mean(z, [1, 2]);
          total = tf.add(total, tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(z as tf.Tensor2D, hv[p]!.weight), hv[p]!.bias)));
        });
        return tf.add(total, tf.losses.softmaxCrossEntropy(y, out)) as tf.Scalar;
      },
      logEvery: Math.max(1, Math.floor(sgd.steps / 4)),
    });
    // Head BN statistics from the new features (a fixed subset of the training split).
    const rng = new Rng(`dcp-joint-stats:${seed}`);
    const idx = rng.permutation(train.count).slice(0, Math.min(opts.headImages, train.count));
    const t = toTensors(arch, r.params);
    const out = heads.map((head, p) => {
      const f = featuresAt(arch, t, train, idx, head.point);
      const m = tf.tidy(() => channelMoments(f));
      const next: DcpHead = {
        ...head,
        mean: m.mean.dataSync().slice() as Float32Array,
        variance: m.variance.dataSync().slice() as Float32Array,
        gamma: hv[p]!.gamma.dataSync().slice() as Float32Array,
        beta: hv[p]!.beta.dataSync().slice() as Float32Array,
        weight: hv[p]!.weight.dataSync().slice() as Float32Array,
        bias: hv[p]!.bias.dataSync().slice() as Float32Array,
      };
      tf.dispose([f, m.mean, m.variance]);
      return next;
    });
    disposeModelTensors(t);
    return { params: r.params, heads: out, losses: r.losses };
  } finally {
    for (const h of hv) tf.dispose([h.gamma, h.beta, h.weight, h.bias]);
  }
}

export interface SelectionResult {
  /** Input channels of the consumer in the order they were selected. */
  order: number[];
  /** The consumer's weight after selection (unselected slices zero). */
  weight: Float32Array;
  /** Selection loss L after each greedy step. */
  losses: number[];
  iterations: number;
}

/**
 * Greedy channel selection for group `g` at its (first) consumer, up to `target` channels.
 * `pruned` is the current (masked) network that feeds the consumer, `baseline` gives O_b.
 */
export function greedySelect(
  arch: Architecture,
  g: ChannelGroup,
  pruned: ModelParams,
  baseline: ModelParams,
  heads: DcpHead[],
  data: ImageSet,
  target: number,
  seed: number | string,
  opts: DcpOptions,
): SelectionResult {
  if (!Number.isInteger(target) || target < 1 || target > g.channels) throw new UsageError(`DCP: keep count ${target} for ${g.name} is not in [1, ${g.channels}]`);
  const consumer = g.consumers[0];
  if (!consumer) throw new Error(`group ${g.name} has no consumer`);
  const q = consumer.layer;
  const walk = walkGraph(arch);
  const opQ = walk.layers[q]!;
  const head = heads.find((h) => h.point > opQ) ?? null;
  const endNode = head ? head.point : walk.nodes.length - 1;
  const { frontier } = selectionRegion(arch, opQ, endNode);
  const rng = new Rng(`dcp-select:${seed}:${g.name}`);
  const sel = scoreBatches(data.count, 1, Math.min(opts.selectionImages, data.count), rng)[0]!;
  const S = sel.length;
  const labels = Int32Array.from(sel, (i) => data.labels[i]!);
  const op = prunableOps(arch)[q]!;
  const wShape = weightShape(op);
  const entries = Array.from({ length: g.channels }, (_, c) => consumerInputEntries(arch, g, consumer, c));

  const tP = toTensors(arch, pruned);
  const tB = toTensors(arch, baseline);
  const ht = head ? headTensors(head) : null;
  // The pruned network's values the loss reads from outside its part (the consumer's input, skip connections).
  const inputs = valuesAt(arch, tP, data, sel, frontier);
  // Baseline pre-activation output of the consumer.
  const ob = (() => {
    const parts: tf.Tensor[] = [];
    for (let s0 = 0; s0 < S; s0 += 256) {
      const { x } = batchOf(data, Array.from(sel.subarray(s0, Math.min(S, s0 + 256))));
      parts.push(
        tf.tidy(() => {
          let out: tf.Tensor | null = null;
          runGraph(arch, tB, x, { mode: 'frozen', fetch: opQ, onLayerOutput: (l, o) => (l === q ? (out = o) : undefined) });
          return out! as tf.Tensor;
        }),
      );
      x.dispose();
    }
    const all = parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
    if (parts.length > 1) tf.dispose(parts);
    return all;
  })();
  const yAll = oneHot(labels, arch.numClasses);

  const maskArr = new Float32Array(pruned.layers[q]!.weight.length);
  let mask = tf.tensor(maskArr, wShape);
  const W = tf.variable(tf.tensor(pruned.layers[q]!.weight, wShape));
  let velocity: tf.Tensor = tf.zerosLike(W);
  const selected = new Uint8Array(g.channels);
  const order: number[] = [];
  const losses: number[] = [];
  let iterations = 0;

  const loss = (weff: tf.Tensor, xin: tf.Tensor[], obB: tf.Tensor, y: tf.Tensor): tf.Scalar => {
    const tt: ModelTensors = { layers: tP.layers.map((l, i) => (i === q ? { weight: weff, bias: l.bias } : l)), batchNorms: tP.batchNorms };
    let o: tf.Tensor | null = null;
    const feeds = new Map(frontier.map((j, k) => [j, xin[k]!]));
    const h = runGraph(arch, tt, null, { mode: 'frozen', feeds, fetch: endNode, onLayerOutput: (l, out) => (l === q ? (o = out) : undefined) });
    const logits = ht ? headForward(h, ht) : h;
    const lm = tf.mul(0.5, tf.mean(tf.squaredDifference(o! as tf.Tensor, obB)));
    const ls = tf.losses.softmaxCrossEntropy(y, logits);
    return tf.add(lm, tf.mul(opts.lambda, ls)) as tf.Scalar;
  };
  const gatherRows = (t: tf.Tensor, idx: Int32Array) => tf.tidy(() => tf.gather(t, tf.tensor1d(idx, 'int32')));

  try {
    const perStep = Math.max(1, Math.ceil(g.channels / opts.maxSteps));
    let bperm = rng.permutation(S);
    let bpos = 0;
    while (order.length < target) {
      // G = ∂L/∂W_eff over the selection set at W_eff = W ⊙ M.
      const G = new Float64Array(maskArr.length);
      let total = 0;
      const chunk = 128;
      for (let s = 0; s < S; s += chunk) {
        const idx = Int32Array.from({ length: Math.min(chunk, S - s) }, (_, i) => s + i);
        const [xin, obB, y] = [inputs.map((t) => gatherRows(t, idx)), gatherRows(ob, idx), gatherRows(yAll, idx)];
        const weff = tf.mul(W, mask);
        const { value, grad } = tf.valueAndGrad((w: tf.Tensor) => loss(w, xin, obB, y))(weff);
        const gd = grad.dataSync();
        const f = idx.length / S;
        for (let i = 0; i < gd.length; i++) G[i] += f * gd[i]!;
        total += f * value.dataSync()[0]!;
        tf.dispose([...xin, obB, y, weff, value, grad]);
      }
      losses.push(total);
      const score = entries.map((e, c) => {
        if (selected[c]) return -Infinity;
        let s = 0;
        for (const i of e) s += G[i]! * G[i]!;
        return Math.sqrt(s);
      });
      const cand = Array.from({ length: g.channels }, (_, c) => c)
        .filter((c) => !selected[c])
        .sort((a, b) => score[b]! - score[a]! || a - b);
      const add = cand.slice(0, Math.min(perStep, target - order.length));
      for (const c of add) {
        selected[c] = 1;
        order.push(c);
        for (const i of entries[c]!) maskArr[i] = 1;
      }
      mask.dispose();
      mask = tf.tensor(maskArr, wShape);
      if (order.length === g.channels && target === g.channels) break; // ranking complete, nothing left to fit
      // Fit the selected slices (warm-started from the current weights).
      const bs = Math.min(opts.batchSize, S);
      for (let it = 0; it < opts.itersPerStep; it++) {
        if (bpos + bs > S) {
          bperm = rng.permutation(S);
          bpos = 0;
        }
        const idx = bperm.slice(bpos, bpos + bs);
        bpos += bs;
        const [xin, obB, y] = [inputs.map((t) => gatherRows(t, idx)), gatherRows(ob, idx), gatherRows(yAll, idx)];
        const grad = tf.grad((w: tf.Tensor) => loss(tf.mul(w, mask), xin, obB, y))(W);
        // Unselected slices get no gradient and no decay: they keep their original values for the warm start.
        const next = tf.tidy(() => {
          const gw = tf.add(grad, tf.mul(tf.mul(W, mask), opts.weightDecay));
          const vel = tf.add(tf.mul(velocity, opts.momentum), gw);
          const dir = tf.add(gw, tf.mul(vel, opts.momentum));
          return { w: tf.sub(W, tf.mul(dir, opts.lr)), vel };
        });
        W.assign(next.w);
        velocity.dispose();
        velocity = next.vel;
        tf.dispose([...xin, obB, y, grad, next.w]);
        iterations++;
      }
    }
    const weight = tf.tidy(() => tf.mul(W, mask)).dataSync().slice() as Float32Array;
    return { order, weight, losses, iterations };
  } finally {
    tf.dispose([...inputs, ob, yAll, mask, W, velocity]);
    disposeModelTensors(tP);
    disposeModelTensors(tB);
    if (ht) disposeHead(ht);
  }
}

/** DCP scores for the search: the greedy order to all C channels on the baseline, per group (score = C − rank). */
export function dcpScores(arch: Architecture, groups: ChannelGroup[], baseline: ModelParams, heads: DcpHead[], data: ImageSet, seed: number | string, opts: DcpOptions): Float32Array[] {
  return groups.map((g) => {
    const r = greedySelect(arch, g, baseline, baseline, heads, data, g.channels, `${seed}:score`, opts);
    const s = new Float32Array(g.channels);
    r.order.forEach((c, rank) => (s[c] = g.channels - rank));
    return s;
  });
}

export interface DcpPruneResult {
  masks: ChannelMasks;
  /** Pruned network after selection and consumer reconstruction (masked, full size). */
  params: ModelParams;
  perGroup: { name: string; kept: number; losses: number[]; iterations: number }[];
}

/** Layer-wise DCP pruning to `keep` channels per group, in forward order, on the progressively pruned network. */
export function dcpPrune(arch: Architecture, groups: ChannelGroup[], baseline: ModelParams, heads: DcpHead[], data: ImageSet, keep: readonly number[], seed: number | string, opts: DcpOptions): DcpPruneResult {
  const masks = fullChannelMasks(groups);
  let params = cloneParams(baseline);
  const perGroup: DcpPruneResult['perGroup'] = [];
  for (const g of groups) {
    const r = greedySelect(arch, g, params, baseline, heads, data, keep[g.id]!, `${seed}:prune`, opts);
    const m = new Uint8Array(g.channels);
    for (const c of r.order) m[c] = 1;
    masks[g.id] = m;
    params.layers[g.consumers[0]!.layer]!.weight = r.weight;
    params = applyChannelMasks(arch, groups, params, masks);
    perGroup.push({ name: g.name, kept: r.order.length, losses: r.losses, iterations: r.iterations });
  }
  return { masks, params, perGroup };
}
