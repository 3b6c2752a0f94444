/**
 * The one forward pass. Weights are arguments, not layer state, so one walk of the graph serves every use:
 *  - mode 'infer' (default): fused ops, BatchNorm on moving statistics, dropout off — evaluation, export checks;
 *  - mode 'train': unfused ops with lazy per-input gradients, BatchNorm on batch statistics, seeded dropout —
 *    training, GFBS gradients, DCP's joint finetuning;
 *  - mode 'frozen': the unfused ops on a network in inference mode — DCP's selection gradients and features.
 * Either mode takes per-channel gates after prunable layers, taps on their pre-activation outputs, and feeds and a
 * fetch (given outputs instead of computed ones, another node's output returned), which is how a part of the
 * network runs (DCP: from a consumer layer to a head); only the nodes the fetch needs are computed.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from './graph.js';
import type { ModelParams, LayerMasks } from './params.js';
import { maskedParams } from './params.js';
import { weightShape, prunableOps } from './graph.js';
import { walkGraph } from './walk.js';
import { opSpec, type ForwardMode, type LayerTensors, type BatchNormTensors } from './ops/index.js';

export type { LayerTensors, BatchNormTensors, ForwardMode } from './ops/index.js';

export interface ModelTensors {
  layers: LayerTensors[];
  batchNorms: BatchNormTensors[];
}

/** Uploads parameters (masked first when masks are given) as tensors. Caller disposes them (disposeModelTensors). */
export function toTensors(arch: Architecture, params: ModelParams, masks?: LayerMasks[]): ModelTensors {
  const p = masks ? maskedParams(params, masks) : params;
  const ops = prunableOps(arch);
  return {
    layers: p.layers.map((l, i) => ({
      weight: tf.tensor(l.weight, weightShape(ops[i]!), 'float32'),
      bias: tf.tensor1d(l.bias, 'float32'),
    })),
    batchNorms: p.batchNorms.map((b) => ({
      gamma: tf.tensor1d(b.gamma),
      beta: tf.tensor1d(b.beta),
      movingMean: tf.tensor1d(b.movingMean),
      movingVariance: tf.tensor1d(b.movingVariance),
    })),
  };
}

export function disposeModelTensors(t: ModelTensors): void {
  for (const l of t.layers) tf.dispose([l.weight, l.bias]);
  for (const b of t.batchNorms) tf.dispose([b.gamma, b.beta, b.movingMean, b.movingVariance]);
}

export interface RunOptions {
  mode?: ForwardMode;
  /** Per prunable layer: a per-channel multiplicative gate on its output, before its activation (null = none). */
  gates?: readonly (tf.Tensor1D | null)[] | null;
  /** Receives each prunable layer's output before its gate and activation (layer index, tensor). */
  onLayerOutput?: (layer: number, out: tf.Tensor) => void;
  /** Train mode: each batchnorm's batch mean and biased variance (batchnorm index, mean, variance). */
  onBatchNormStats?: (bn: number, mean: tf.Tensor1D, variance: tf.Tensor1D) => void;
  /** Outputs given instead of computed: node index → tensor (its inputs are then not needed; -1 is the model input). */
  feeds?: ReadonlyMap<number, tf.Tensor>;
  /** Node whose output is returned (default: the last). */
  fetch?: number;
  /** Train mode: dropout masks are drawn with seeds derived from this one and the node (default 0); null: no dropout. */
  dropoutSeed?: number | null;
  /** Called with every computed node's output (node index, tensor). */
  onOutput?: (node: number, out: tf.Tensor) => void;
  /** Train mode: gradients with respect to fed tensors are needed (default false: they are data). */
  feedGrads?: boolean;
}

/**
 * Runs the network on x ([B, H, W, C], or [B, H·W·C] flat; null when the feeds make the input unnecessary) and
 * returns the fetched node's output ([B, classes] logits by default). Differentiable in train mode.
 */
export function runGraph(arch: Architecture, t: ModelTensors, x: tf.Tensor | null, opts: RunOptions = {}): tf.Tensor {
  const walk = walkGraph(arch);
  const nodes = walk.nodes;
  const fetch = opts.fetch ?? nodes.length - 1;
  const feeds = opts.feeds ?? new Map<number, tf.Tensor>();
  const mode = opts.mode ?? 'infer';
  // Which nodes the fetch needs: walk back from it, stopping at fed outputs.
  const needed = new Uint8Array(nodes.length);
  let needInput = false;
  const stack = [fetch];
  while (stack.length) {
    const i = stack.pop()!;
    if (i < 0) {
      needInput = true;
      continue;
    }
    if (needed[i] || feeds.has(i)) continue;
    needed[i] = 1;
    stack.push(...nodes[i]!.inputs);
  }
  let input: tf.Tensor | null = null;
  if (needInput) {
    x = feeds.get(-1) ?? x;
    if (!x) throw new Error('runGraph: the fetch needs the model input, but none was given');
    const [H, W, C] = arch.inputShape;
    const B = x.shape[0]!;
    const want = walk.input.flat ? [B, H * W * C] : [B, H, W, C];
    input = x.rank === want.length ? x : x.reshape(want);
  }
  const outputs: (tf.Tensor | undefined)[] = new Array(nodes.length);
  for (const [i, v] of feeds) if (i >= 0) outputs[i] = v;
  const value = (j: number): tf.Tensor => (j < 0 ? input! : outputs[j]!);
  const isData = (j: number): boolean => j < 0 || (feeds.has(j) && !opts.feedGrads);
  for (let i = 0; i <= fetch; i++) {
    if (!needed[i]) continue;
    const n = nodes[i]!;
    const layer = n.layer;
    outputs[i] = opSpec(n.op).forward(n.op as never, {
      mode,
      inputs: n.inputs.map(value),
      layer: layer >= 0 ? t.layers[layer] : undefined,
      bn: n.bn >= 0 ? t.batchNorms[n.bn] : undefined,
      gate: layer >= 0 ? (opts.gates?.[layer] ?? null) : null,
      tap: layer >= 0 && opts.onLayerOutput ? (out) => opts.onLayerOutput!(layer, out) : undefined,
      onBatchNormStats: n.bn >= 0 && opts.onBatchNormStats ? (m, v) => opts.onBatchNormStats!(n.bn, m, v) : undefined,
      dropoutSeed: opts.dropoutSeed === null ? null : ((opts.dropoutSeed ?? 0) * 1_000_003 + i) % 2_147_483_647,
      dataInput: isData(n.inputs[0]!),
    });
    opts.onOutput?.(i, outputs[i]!);
  }
  return outputs[fetch] ?? value(fetch);
}

export interface ForwardOptions {
  /** Per-channel multiplicative gates after each prunable layer (channel pruning: masks or GFBS gates). */
  gates?: (tf.Tensor1D | null)[];
  /** Receives the output of each prunable layer before its activation, in layer order (DI scoring reads them). */
  taps?: (tf.Tensor | null)[];
}

/** Logits of the network in inference mode for a batch of NHWC images [B,H,W,C] (or flat [B, H*W*C]). */
export function forward(arch: Architecture, t: ModelTensors, x: tf.Tensor, opts: ForwardOptions = {}): tf.Tensor2D {
  const taps = opts.taps;
  return runGraph(arch, t, x, { gates: opts.gates, onLayerOutput: taps ? (l, out) => (taps[l] = out) : undefined }) as tf.Tensor2D;
}

/** Number of correct top-1 predictions of logits against integer labels (first-max wins ties, like argMax). */
export function countCorrect(logits: Float32Array, labels: Uint8Array | Int32Array, numClasses: number, offset = 0): number {
  let correct = 0;
  const n = logits.length / numClasses;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = logits[i * numClasses]!;
    for (let c = 1; c < numClasses; c++) {
      const v = logits[i * numClasses + c]!;
      if (v > bv) {
        bv = v;
        best = c;
      }
    }
    if (best === labels[offset + i]) correct++;
  }
  return correct;
}
