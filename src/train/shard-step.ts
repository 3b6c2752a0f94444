/**
 * One thread's part of a sharded training step: the loss gradients of its shards, each shard with its own tensors
 * of the parameters so that its gradient stays apart from the others', summed along the fixed reduction tree
 * (shard-plan.ts) as far as the thread's block allows; each of those node sums goes to the slot of the node's first
 * shard, and the main thread adds the rest of the tree. The same function runs on the main thread and in the
 * workers, so every node is the same bits whichever thread computes it.
 *
 * Each shard's loss is its images' summed cross-entropy divided by the whole batch's size, so the slots sum to the
 * gradient of the batch-mean loss. BatchNorm normalises every shard with the statistics of the whole batch, formed
 * by an all-reduce over the threads; its backward reduces Σdy and Σdy·x̂ the same way (they are also the γ and β
 * gradients), which gives exactly the unsharded BatchNorm gradient up to float rounding.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture, BatchNormOp } from '../../models/graph.js';
import { runShardsTrain } from '../../models/forward-shards.js';
import { runGraph, type ModelTensors } from '../../models/forward.js';
import { channelSum } from '../../models/ops/train-ops.js';
import { reduceTree, treeCover, type FlatLayout } from './shard-plan.js';
import type { ShardExchange, ShardMemory } from './shard-sync.js';

export interface ShardImages {
  /** Global shard index. */
  shard: number;
  images: Float32Array;
  labels: Uint8Array;
}

/** What the main thread needs from each BatchNorm of the step: batch statistics and the γ, β gradients. */
export interface BatchNormRecord {
  mean: Float32Array;
  variance: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

export interface ShardStepInput {
  arch: Architecture;
  /** The (effective, i.e. masked) parameters of the step; batchnorm moving statistics are not read. */
  tensors: ModelTensors;
  /** This thread's non-empty shards. */
  shards: ShardImages[];
  /** This thread's block of shards [lo, hi) (empty ones included). */
  block: [number, number];
  /** Shards in the batch. */
  shardCount: number;
  /** Images in the whole batch. */
  batchSize: number;
  /** Layout of a gradient slot: weight, bias of each prunable layer in order. */
  gradLayout: FlatLayout;
  mem: ShardMemory;
  exchange: ShardExchange;
  gates: readonly (tf.Tensor1D | null)[] | null;
  /** Dropout seed of each shard (by global index). */
  dropoutSeed: (shard: number) => number;
  distill: { teacher: ModelTensors; alpha: number; temperature: number } | null;
  /** Filled per batchnorm (main thread); workers pass an array they drop. */
  batchNorms: BatchNormRecord[];
}

const toF32 = (a: Float64Array, scale: number): Float32Array => Float32Array.from(a, (v) => v / scale);

/** The batchnorm of every shard of this thread with whole-batch statistics (see the module comment). */
function syncedBatchNorm(input: ShardStepInput, bn: number, op: BatchNormOp, xs: tf.Tensor[]): tf.Tensor[] {
  const { exchange, tensors } = input;
  const gamma = tensors.batchNorms[bn]!.gamma;
  const beta = tensors.batchNorms[bn]!.beta;
  const C = op.channels;
  const per = xs[0]!.size / xs[0]!.shape[0]! / C;
  const M = input.batchSize * per;
  const ids = input.shards.map((s) => s.shard);
  const sizes = xs.map((x) => x.shape[0]!);
  const record: Partial<BatchNormRecord> = {};
  input.batchNorms[bn] = record as BatchNormRecord;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const ins = args as tf.Tensor[];
    const sums = new Map(ins.map((x, j) => [ids[j]!, channelSum(x).dataSync() as Float32Array]));
    record.mean = toF32(exchange.allReduce(sums, C), M);
    const mean = tf.tensor1d(record.mean);
    const xcs = ins.map((x) => tf.sub(x, mean));
    const squares = new Map(xcs.map((xc, j) => [ids[j]!, channelSum(tf.square(xc)).dataSync() as Float32Array]));
    record.variance = toF32(exchange.allReduce(squares, C), M);
    const rstd = tf.rsqrt(tf.add(tf.tensor1d(record.variance), op.epsilon));
    const xhats = xcs.map((xc) => tf.mul(xc, rstd));
    const ys = xhats.map((xh) => tf.add(tf.mul(xh, gamma), beta));
    save([...xhats, rstd]);
    return {
      value: ys.length === 1 ? ys[0]! : tf.concat(ys, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const sxhats = saved.slice(0, -1);
        const srstd = saved[saved.length - 1]!;
        const dys = sizes.length === 1 ? [dy] : tf.split(dy, sizes, 0);
        const parts = new Map(
          dys.map((d, j) => {
            const both = new Float32Array(2 * C);
            both.set(channelSum(d).dataSync() as Float32Array, 0);
            both.set(channelSum(tf.mul(d, sxhats[j]!)).dataSync() as Float32Array, C);
            return [ids[j]!, both];
          }),
        );
        const tot = exchange.allReduce(parts, 2 * C);
        record.dbeta = Float32Array.from(tot.subarray(0, C));
        record.dgamma = Float32Array.from(tot.subarray(C, 2 * C));
        const dbeta = tf.tensor1d(record.dbeta);
        const dgamma = tf.tensor1d(record.dgamma);
        const k = tf.div(tf.mul(gamma, srstd), M);
        return dys.map((d, j) => tf.mul(k, tf.sub(tf.sub(tf.mul(d, M), dbeta), tf.mul(sxhats[j]!, dgamma))));
      },
    };
  });
  const out = f(...xs);
  return sizes.length === 1 ? [out] : tf.split(out, sizes, 0);
}

/** Computes this thread's shards and writes their gradients and losses into the shared slots. */
export function runShardStep(input: ShardStepInput): void {
  const { arch, tensors, shards, mem, gradLayout } = input;
  if (shards.length === 0) return;
  const [H, W, C] = arch.inputShape;
  const K = arch.numClasses;
  const B = input.batchSize;
  const nL = tensors.layers.length;
  tf.tidy(() => {
    const xs = shards.map((s) => tf.tensor4d(s.images, [s.labels.length, H, W, C], 'float32'));
    const ys = shards.map((s) => {
      const oneHot = new Float32Array(s.labels.length * K);
      s.labels.forEach((y, i) => {
        if (y >= K) throw new Error(`label ${y} out of range for ${K} classes`);
        oneHot[i * K + y] = 1;
      });
      return tf.tensor2d(oneHot, [s.labels.length, K], 'float32');
    });
    const d = input.distill;
    const soft = d ? xs.map((x) => tf.softmax(tf.div(runGraph(arch, d.teacher, x, { mode: 'infer' }), d.temperature))) : null;
    // Per shard: its own tensors of every non-empty weight and bias, sharing the data (a reshape copies nothing), so
    // that each shard's gradient comes back apart. Zero-length biases are passed through, never read.
    const live: number[] = [];
    for (let i = 0; i < 2 * nL; i++) if (gradLayout.sizes[i]! > 0) live.push(i);
    const base = tensors.layers.flatMap((l) => [l.weight, l.bias as tf.Tensor]);
    const vars = shards.flatMap(() => live.map((i) => tf.reshape(base[i]!, base[i]!.shape)));
    const losses = new Float64Array(shards.length);
    const f = (...args: tf.Tensor[]): tf.Scalar => {
      const perShard: ModelTensors[] = shards.map((_, s) => {
        const flat = base.slice();
        live.forEach((i, j) => (flat[i] = args[s * live.length + j]!));
        return { layers: tensors.layers.map((_, l) => ({ weight: flat[2 * l]!, bias: flat[2 * l + 1] as tf.Tensor1D })), batchNorms: tensors.batchNorms };
      });
      const logits = runShardsTrain(arch, perShard, xs, {
        gates: input.gates,
        dropoutSeeds: shards.map((s) => input.dropoutSeed(s.shard)),
        batchNorm: (bn, op, ins) => syncedBatchNorm(input, bn, op, ins),
      });
      const terms = logits.map((z, s) => {
        const hard = tf.div(tf.losses.softmaxCrossEntropy(ys[s]!, z, undefined, undefined, tf.Reduction.SUM), B);
        if (!d || !soft) return hard as tf.Scalar;
        const distilled = tf.div(tf.losses.softmaxCrossEntropy(soft[s]!, tf.div(z, d.temperature), undefined, undefined, tf.Reduction.SUM), B);
        return tf.add(tf.mul(hard, 1 - d.alpha), tf.mul(distilled, d.alpha * d.temperature * d.temperature)) as tf.Scalar;
      });
      terms.forEach((t, s) => (losses[s] = t.dataSync()[0]!));
      return (terms.length === 1 ? terms[0]! : tf.addN(terms)) as tf.Scalar;
    };
    const grads = tf.grads(f)(vars);
    const slot = mem.sizes.grads;
    const byShard = new Map(shards.map((s, si) => [s.shard, live.map((_, j) => grads[si * live.length + j]!)]));
    shards.forEach((s, si) => (mem.losses[s.shard] = losses[si]!));
    for (const node of treeCover(input.block[0], input.block[1], input.shardCount)) {
      const sum = reduceTree(node, (n) => (n.hi - n.lo === 1 ? (byShard.get(n.lo) ?? null) : undefined), (l, r) => l.map((t, j) => tf.add(t, r[j]!)));
      if (!sum) continue;
      live.forEach((i, j) => mem.grads.set(sum[j]!.dataSync() as Float32Array, node.lo * slot + gradLayout.offsets[i]!));
    }
  });
}
