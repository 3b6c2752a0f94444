/**
 * The training forward pass of several shards of one batch in lockstep: node by node, every shard's op runs on its
 * own images and its own parameter tensors (so a gradient taken over all shards at once keeps each shard's
 * contribution apart), and every BatchNorm is one call over all shards (`batchNorm`), which is where statistics of the
 * whole batch are formed (the sharded trainer reduces them across threads there). Everything else is runGraph's
 * 'train' mode: the same op registry, gates after prunable layers, seeded dropout (a seed per shard).
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture, BatchNormOp } from './graph.js';
import { walkGraph } from './walk.js';
import { opSpec } from './ops/index.js';
import { activate } from './ops/activation.js';
import type { ModelTensors } from './forward.js';

/** BatchNorm over every shard: normalises each shard's input with statistics of the whole batch (no activation). */
export type ShardedBatchNorm = (bn: number, op: BatchNormOp, inputs: tf.Tensor[]) => tf.Tensor[];

export interface ShardRunOptions {
  /** Per prunable layer: a per-channel gate on its output, before its activation (null = none). */
  gates?: readonly (tf.Tensor1D | null)[] | null;
  /** Dropout seed of each shard (see runGraph); null: no dropout. */
  dropoutSeeds: readonly (number | null)[];
  batchNorm: ShardedBatchNorm;
}

/**
 * Logits of each shard (xs[s]: [n_s, H, W, C] or flat) with tensors[s] as its parameters, in training mode.
 * Differentiable with respect to every shard's tensors.
 */
export function runShardsTrain(arch: Architecture, tensors: readonly ModelTensors[], xs: readonly tf.Tensor[], opts: ShardRunOptions): tf.Tensor[] {
  const walk = walkGraph(arch);
  const nodes = walk.nodes;
  const S = xs.length;
  if (tensors.length !== S || opts.dropoutSeeds.length !== S) throw new Error(`runShardsTrain: ${S} shards, ${tensors.length} parameter sets, ${opts.dropoutSeeds.length} seeds`);
  const [H, W, C] = arch.inputShape;
  const inputs = xs.map((x) => {
    const want = walk.input.flat ? [x.shape[0]!, H * W * C] : [x.shape[0]!, H, W, C];
    return x.rank === want.length ? x : x.reshape(want);
  });
  const outputs: tf.Tensor[][] = new Array(nodes.length);
  const value = (j: number, s: number): tf.Tensor => (j < 0 ? inputs[s]! : outputs[j]![s]!);
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    if (n.bn >= 0) {
      const op = n.op as BatchNormOp;
      outputs[i] = opts.batchNorm(n.bn, op, inputs.map((_, s) => value(n.inputs[0]!, s))).map((y) => activate(y, op.activation));
      continue;
    }
    const layer = n.layer;
    outputs[i] = inputs.map((_, s) =>
      opSpec(n.op).forward(n.op as never, {
        mode: 'train',
        inputs: n.inputs.map((j) => value(j, s)),
        layer: layer >= 0 ? tensors[s]!.layers[layer] : undefined,
        gate: layer >= 0 ? (opts.gates?.[layer] ?? null) : null,
        dropoutSeed: opts.dropoutSeeds[s] === null ? null : (opts.dropoutSeeds[s]! * 1_000_003 + i) % 2_147_483_647,
        dataInput: n.inputs[0]! < 0,
      }),
    );
  }
  return outputs[nodes.length - 1]!;
}
