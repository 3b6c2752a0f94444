/**
 * Channel groups of a sequential architecture (channel-pruning spec §0, §4): each group is one producer's output
 * channels (conv filters or dense units), its BatchNorm if one follows, and the consumers' input slices (the next
 * conv's in-channels; after a flatten, the dense inputs of that channel, NHWC index (h·W+w)·C + c).
 * The last prunable layer (the logits) produces no group.
 *
 * Channel masks are one Uint8Array per group (1 = keep). Costs of a keep configuration are in closed form.
 */
import { type Architecture, type PrunableOp, prunableOps, layerStats, weightShape } from './architectures.js';
import type { ModelParams, LayerMasks } from './params.js';
import { UsageError } from '../foundation/errors.js';

/** One consumer of a group's channels: prunable layer `layer` reads them as input. */
export interface ConsumerSlice {
  /** Prunable-layer index (into prunableOps / params.layers). */
  layer: number;
  kind: 'conv2d' | 'dense';
  /** Dense inputs per channel (H·W at the flatten; 1 for a conv consumer or a dense-after-dense). */
  spatial: number;
}

export interface ChannelGroup {
  /** Index of the group (0-based, forward order). */
  id: number;
  /** The producer's name (e.g. 'conv1'). */
  name: string;
  /** Prunable-layer index of the producer. */
  producer: number;
  /** Index of the producer in arch.ops. */
  producerOp: number;
  kind: 'conv2d' | 'dense';
  /** BatchNorm index (into params.batchNorms) normalising these channels, or null. */
  batchNorm: number | null;
  consumers: ConsumerSlice[];
  /** C_g. */
  channels: number;
  /** Dense MACs of the producer and of the consumers (what the group's channels touch). */
  macs: number;
  /** Dense parameters of the producer (weights, bias, BN gamma/beta) and of the consumers' input slices. */
  params: number;
}

function opLayerIndex(arch: Architecture): Map<number, number> {
  const m = new Map<number, number>();
  let l = 0;
  arch.ops.forEach((op, i) => {
    if (op.type === 'conv2d' || op.type === 'dense') m.set(i, l++);
  });
  return m;
}

/** Derives the prunable channel groups of a sequential architecture. */
export function channelGroups(arch: Architecture): ChannelGroup[] {
  const stats = layerStats(arch); // also validates shapes
  const ops = prunableOps(arch);
  const layerOf = opLayerIndex(arch);
  const groups: ChannelGroup[] = [];
  let current: ChannelGroup | null = null;
  let [h, w] = arch.inputShape;
  let spatialAtFlatten = 1;
  let flattened = false;
  let bn = 0;
  arch.ops.forEach((op, i) => {
    switch (op.type) {
      case 'conv2d':
      case 'dense': {
        const l = layerOf.get(i)!;
        if (current) {
          current.consumers.push({ layer: l, kind: op.type, spatial: op.type === 'dense' ? (flattened ? spatialAtFlatten : h * w) : 1 });
        }
        if (op.type === 'conv2d') {
          h = stats[l]!.outH;
          w = stats[l]!.outW;
        } else {
          flattened = true;
          spatialAtFlatten = 1;
          h = 1;
          w = 1;
        }
        if (l < ops.length - 1) {
          current = {
            id: groups.length,
            name: op.name,
            producer: l,
            producerOp: i,
            kind: op.type,
            batchNorm: null,
            consumers: [],
            channels: op.type === 'conv2d' ? op.outChannels : op.outUnits,
            macs: 0,
            params: 0,
          };
          groups.push(current);
        } else {
          current = null;
        }
        break;
      }
      case 'batchnorm':
        if (current) {
          if (op.channels !== current.channels) throw new Error(`${arch.name}: ${op.name} has ${op.channels} channels, ${current.name} produces ${current.channels}`);
          if (current.batchNorm !== null) throw new Error(`${arch.name}: two batchnorms after ${current.name}`);
          current.batchNorm = bn;
        }
        bn++;
        break;
      case 'maxpool':
        h = Math.floor((h - op.size) / op.stride) + 1;
        w = Math.floor((w - op.size) / op.stride) + 1;
        break;
      case 'flatten':
        spatialAtFlatten = flattened ? 1 : h * w;
        flattened = true;
        break;
    }
  });
  for (const g of groups) {
    const full = groups.map((x) => x.channels);
    const drop = full.slice();
    drop[g.id] = 0;
    const a = configCost(arch, groups, full);
    const b = configCost(arch, groups, drop, { allowZero: true });
    g.macs = a.macs - b.macs;
    g.params = a.params - b.params;
  }
  return groups;
}

/** k_g = clamp(round(r·C), 1, C). Refuses r outside (0, 1] (k_g = 0 is never allowed). */
export function keepCount(ratio: number, channels: number): number {
  if (!Number.isFinite(ratio) || ratio <= 0 || ratio > 1) throw new UsageError(`keep ratio must be in (0, 1], got ${ratio}`);
  return Math.min(channels, Math.max(1, Math.round(ratio * channels)));
}

export function keepCounts(groups: ChannelGroup[], ratios: readonly number[]): number[] {
  if (ratios.length !== groups.length) throw new UsageError(`expected ${groups.length} keep ratios, got ${ratios.length}`);
  return groups.map((g, i) => keepCount(ratios[i]!, g.channels));
}

/** Refuses a keep count outside [1, C_g]. */
export function checkKeep(groups: ChannelGroup[], keep: readonly number[]): void {
  if (keep.length !== groups.length) throw new UsageError(`expected ${groups.length} keep counts, got ${keep.length}`);
  groups.forEach((g, i) => {
    const k = keep[i]!;
    if (!Number.isInteger(k) || k < 1 || k > g.channels) {
      throw new UsageError(`group ${g.name}: keep count ${k} is not in [1, ${g.channels}] (k_g = 0 would disconnect the network)`);
    }
  });
}

export interface Cost {
  /** Conv/fc multiply-accumulates per image (kh·kw·Cin·Cout·Hout·Wout). */
  macs: number;
  /** Weights + biases + BatchNorm gamma and beta (moving statistics not counted). */
  params: number;
}

/** MACs and parameters of a configuration (kept channels per group), closed form. */
export function configCost(arch: Architecture, groups: ChannelGroup[], keep: readonly number[], opts: { allowZero?: boolean } = {}): Cost {
  if (!opts.allowZero) checkKeep(groups, keep);
  const ops = prunableOps(arch);
  const stats = layerStats(arch);
  const outKeep: (number | null)[] = ops.map(() => null);
  const inKeep: ({ keep: number; spatial: number } | null)[] = ops.map(() => null);
  groups.forEach((g, i) => {
    outKeep[g.producer] = keep[i]!;
    for (const c of g.consumers) inKeep[c.layer] = { keep: keep[i]!, spatial: c.spatial };
  });
  let macs = 0;
  let params = 0;
  ops.forEach((op, l) => {
    const s = stats[l]!;
    const out = outKeep[l] ?? (op.type === 'conv2d' ? op.outChannels : op.outUnits);
    if (op.type === 'conv2d') {
      const cin = inKeep[l]?.keep ?? op.inChannels;
      const wts = op.kernel * op.kernel * cin * out;
      macs += wts * s.outH * s.outW;
      params += wts + out;
    } else {
      const inUnits = inKeep[l] ? inKeep[l]!.keep * inKeep[l]!.spatial : op.inUnits;
      macs += inUnits * out;
      params += inUnits * out + out;
    }
  });
  let bn = 0;
  for (const op of arch.ops) {
    if (op.type !== 'batchnorm') continue;
    const g = groups.find((x) => x.batchNorm === bn);
    params += 2 * (g ? keep[g.id]! : op.channels);
    bn++;
  }
  return { macs, params };
}

/** Cost of the unpruned model. */
export function denseCost(arch: Architecture, groups: ChannelGroup[] = channelGroups(arch)): Cost {
  return configCost(arch, groups, groups.map((g) => g.channels));
}

/** Channel masks (one 0/1 array per group, 1 = keep). */
export type ChannelMasks = Uint8Array[];

export function fullChannelMasks(groups: ChannelGroup[]): ChannelMasks {
  return groups.map((g) => new Uint8Array(g.channels).fill(1));
}

/** Kept channel indices, ascending. */
export function keptIndices(mask: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}

export function keptCounts(masks: ChannelMasks): number[] {
  return masks.map((m) => m.reduce((s, v) => s + v, 0));
}

/**
 * Indices of the k highest scores, ascending. Ties go to the lower index; NaN scores rank last.
 * Refuses k outside [1, n].
 */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const n = scores.length;
  if (!Number.isInteger(k) || k < 1 || k > n) throw new UsageError(`keep count ${k} is not in [1, ${n}]`);
  const idx = Array.from({ length: n }, (_, i) => i);
  const v = (i: number) => (Number.isNaN(scores[i]!) ? -Infinity : scores[i]!);
  idx.sort((a, b) => v(b) - v(a) || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Channel masks keeping the top-k_g channels of each group by score (higher = keep). */
export function masksFromScores(groups: ChannelGroup[], scores: ArrayLike<number>[], keep: readonly number[]): ChannelMasks {
  checkKeep(groups, keep);
  return groups.map((g, i) => {
    const s = scores[i]!;
    if (s.length !== g.channels) throw new Error(`scores of ${g.name}: ${s.length} values for ${g.channels} channels`);
    const m = new Uint8Array(g.channels);
    for (const j of topK(s, keep[i]!)) m[j] = 1;
    return m;
  });
}

/** Checks that every group keeps at least one channel and that sizes match. */
export function checkChannelMasks(groups: ChannelGroup[], masks: ChannelMasks): void {
  if (masks.length !== groups.length) throw new UsageError(`expected ${groups.length} channel masks, got ${masks.length}`);
  groups.forEach((g, i) => {
    const m = masks[i]!;
    if (m.length !== g.channels) throw new UsageError(`channel mask of ${g.name}: ${m.length} entries for ${g.channels} channels`);
    if (!m.some((v) => v === 1)) throw new UsageError(`group ${g.name} keeps no channel (k_g = 0 is refused)`);
  });
}

/** Indices into a consumer's weight (tfjs layout) of input channel `c`: visits each weight entry of that input. */
function forEachInputEntry(op: PrunableOp, slice: ConsumerSlice, channels: number, c: number, fn: (i: number) => void): void {
  if (op.type === 'conv2d') {
    const [kh, kw, cin, cout] = weightShape(op) as [number, number, number, number];
    for (let a = 0; a < kh * kw; a++) {
      const base = (a * cin + c) * cout;
      for (let o = 0; o < cout; o++) fn(base + o);
    }
  } else {
    const out = op.outUnits;
    for (let s = 0; s < slice.spatial; s++) {
      const row = s * channels + c;
      for (let o = 0; o < out; o++) fn(row * out + o);
    }
  }
}

/** Indices into a producer's weight of output channel `c`. */
function forEachOutputEntry(op: PrunableOp, c: number, fn: (i: number) => void): void {
  const shape = weightShape(op);
  const out = shape[shape.length - 1]!;
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  for (let r = 0; r < rows; r++) fn(r * out + c);
}

/** Weight-level masks (models/params LayerMasks) equivalent to channel masks: producer filters, biases and consumer slices. */
export function layerMasksFromChannels(arch: Architecture, groups: ChannelGroup[], masks: ChannelMasks): LayerMasks[] {
  checkChannelMasks(groups, masks);
  const ops = prunableOps(arch);
  const out: LayerMasks[] = ops.map((op) => ({
    weight: new Uint8Array(weightShape(op).reduce((a, b) => a * b, 1)).fill(1),
    bias: new Uint8Array(op.type === 'conv2d' ? op.outChannels : op.outUnits).fill(1),
  }));
  groups.forEach((g, gi) => {
    const m = masks[gi]!;
    for (let c = 0; c < g.channels; c++) {
      if (m[c]) continue;
      const lm = out[g.producer]!;
      forEachOutputEntry(ops[g.producer]!, c, (i) => (lm.weight[i] = 0));
      lm.bias[c] = 0;
      for (const s of g.consumers) forEachInputEntry(ops[s.layer]!, s, g.channels, c, (i) => (out[s.layer]!.weight[i] = 0));
    }
  });
  return out;
}

/**
 * The masked model's parameters: pruned channels' producer filters, biases, BatchNorm gamma and beta, and the
 * consumers' input slices set to zero (a copy; moving statistics kept). Its outputs equal the slimmed model's.
 */
export function applyChannelMasks(arch: Architecture, groups: ChannelGroup[], params: ModelParams, masks: ChannelMasks): ModelParams {
  const lm = layerMasksFromChannels(arch, groups, masks);
  const layers = params.layers.map((l, i) => {
    const m = lm[i]!;
    const weight = l.weight.slice();
    for (let j = 0; j < weight.length; j++) if (!m.weight[j]) weight[j] = 0;
    const bias = l.bias.slice();
    for (let j = 0; j < bias.length; j++) if (!m.bias[j]) bias[j] = 0;
    return { weight, bias };
  });
  const batchNorms = params.batchNorms.map((b) => ({
    gamma: b.gamma.slice(),
    beta: b.beta.slice(),
    movingMean: b.movingMean.slice(),
    movingVariance: b.movingVariance.slice(),
  }));
  groups.forEach((g, gi) => {
    if (g.batchNorm === null) return;
    const b = batchNorms[g.batchNorm]!;
    const m = masks[gi]!;
    for (let c = 0; c < g.channels; c++) {
      if (!m[c]) {
        b.gamma[c] = 0;
        b.beta[c] = 0;
      }
    }
  });
  return { layers, batchNorms };
}

/** 0/1 masks over every trainable array (weights, biases, BN gamma/beta) for holding channel masks during training. */
export interface ParamMasks {
  layers: LayerMasks[];
  batchNorms: { gamma: Uint8Array; beta: Uint8Array }[];
}

export function paramMasksFromChannels(arch: Architecture, groups: ChannelGroup[], masks: ChannelMasks): ParamMasks {
  const layers = layerMasksFromChannels(arch, groups, masks);
  const bnChannels = arch.ops.filter((o) => o.type === 'batchnorm').map((o) => (o.type === 'batchnorm' ? o.channels : 0));
  const batchNorms = bnChannels.map((c) => ({ gamma: new Uint8Array(c).fill(1), beta: new Uint8Array(c).fill(1) }));
  groups.forEach((g, gi) => {
    if (g.batchNorm === null) return;
    const m = masks[gi]!;
    for (let c = 0; c < g.channels; c++) {
      if (!m[c]) {
        batchNorms[g.batchNorm]!.gamma[c] = 0;
        batchNorms[g.batchNorm]!.beta[c] = 0;
      }
    }
  });
  return { layers, batchNorms };
}

/** Per-channel L1 norm of a group's producer filters (the weights feeding each output channel). */
export function producerL1(arch: Architecture, group: ChannelGroup, params: ModelParams): Float32Array {
  const op = prunableOps(arch)[group.producer]!;
  const w = params.layers[group.producer]!.weight;
  const s = new Float64Array(group.channels);
  for (let c = 0; c < group.channels; c++) forEachOutputEntry(op, c, (i) => (s[c] += Math.abs(w[i]!)));
  return Float32Array.from(s);
}

/** Visits, for input channel c of consumer slice `s`, every weight index (exported for scorers working at the consumer). */
export function consumerInputEntries(arch: Architecture, group: ChannelGroup, slice: ConsumerSlice, c: number): number[] {
  const op = prunableOps(arch)[slice.layer]!;
  const out: number[] = [];
  forEachInputEntry(op, slice, group.channels, c, (i) => out.push(i));
  return out;
}
