/**
 * Channel groups from the graph (channel-pruning spec §0, §4), as Torch-Pruning's dependency graph finds them.
 * Every conv or dense output opens a channel space; ops that keep channels in place (batchnorm, activations,
 * pooling, dropout, a depthwise conv with multiplier 1, global average pooling, flatten) carry it along; an Add ties
 * the spaces of its inputs into one group (pruned together: a residual stream); a Concatenate lays its inputs'
 * spaces side by side. A group is one tied set of spaces: its producers' output channels, the batchnorms and
 * depthwise convs on it, and the input slices of its consumers (the next conv's in-channels; after a flatten, the
 * dense inputs s·C + c of each position s). Spaces that reach the model output, the model input, or an op that mixes
 * channels in a way these rules do not map (a depthwise multiplier above 1, a merge of flattened images) are not
 * pruned.
 *
 * Channel masks are one Uint8Array per group (1 = keep). Costs of a keep configuration are in closed form.
 */
import { type Architecture, type PrunableOp, outChannels, prunableOps } from './graph.js';
import { walkGraph, type NodeInfo } from './walk.js';
import type { ModelParams, LayerMasks } from './params.js';
import { UsageError } from '../foundation/errors.js';

/** One consumer of a group's channels: prunable layer `layer` reads them as input. */
export interface ConsumerSlice {
  /** Prunable-layer index (into prunableOps / params.layers). */
  layer: number;
  kind: 'conv2d' | 'dense';
  /** Dense inputs per channel (H·W at a flatten; 1 for a conv consumer or a dense layer reading a vector). */
  spatial: number;
  /** Where the group's channels start in the consumer's input channels (a concatenation); absent = 0. */
  offset?: number;
}

export interface ChannelGroup {
  /** Index of the group (0-based, forward order of the first producer). */
  id: number;
  /** The first producer's name (e.g. 'conv1'). */
  name: string;
  /** Prunable-layer index of the first producer. */
  producer: number;
  /** Every producer (prunable-layer indices): more than one when an Add ties their outputs. */
  producers: number[];
  /** Node index of the first producer. */
  producerOp: number;
  kind: 'conv2d' | 'dense';
  /** The first batchnorm (index into params.batchNorms) normalising these channels, or null. */
  batchNorm: number | null;
  /** Every batchnorm on these channels, with the channels' offset in it. */
  batchNorms: { bn: number; offset: number }[];
  /** Depthwise convs (multiplier 1) whose channels follow these (prunable-layer index, offset). */
  depthwise: { layer: number; offset: number }[];
  consumers: ConsumerSlice[];
  /** C_g. */
  channels: number;
  /** Dense MACs of everything the group's channels touch. */
  macs: number;
  /** Dense parameters of everything the group's channels touch (weights, biases, BN gamma/beta). */
  params: number;
}

/** A node's output channel axis: consecutive segments, each a space (group, or -1 when not pruned). */
interface Segment {
  group: number;
  size: number;
  offset: number;
}
interface ValueChannels {
  segments: Segment[];
  channels: number;
  /** Positions folded into each channel by a flatten (H·W), else 1. */
  spatial: number;
}
interface Analysis {
  groups: ChannelGroup[];
  /** Per node, then the model input at index nodes.length. */
  values: ValueChannels[];
}

/** Union-find over channel spaces. */
class Spaces {
  parent: number[] = [];
  size: number[] = [];
  blocked: boolean[] = [];
  add(size: number, blocked = false): number {
    this.parent.push(this.parent.length);
    this.size.push(size);
    this.blocked.push(blocked);
    return this.parent.length - 1;
  }
  find(s: number): number {
    while (this.parent[s] !== s) s = this.parent[s] = this.parent[this.parent[s]!]!;
    return s;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    this.parent[rb] = ra;
    this.blocked[ra] = this.blocked[ra]! || this.blocked[rb]!;
  }
  block(s: number): void {
    this.blocked[this.find(s)] = true;
  }
}

interface RawValue {
  segments: { space: number; size: number; offset: number }[];
  channels: number;
  spatial: number;
}

const analyses = new WeakMap<Architecture, Analysis>();

function analyse(arch: Architecture): Analysis {
  const hit = analyses.get(arch);
  if (hit) return hit;
  const walk = walkGraph(arch);
  const sp = new Spaces();
  const inputSpace = sp.add(walk.input.shape[2], true);
  const input: RawValue = { segments: [{ space: inputSpace, size: walk.input.shape[2], offset: 0 }], channels: walk.input.shape[2], spatial: 1 };
  const values: RawValue[] = [];
  const producers = new Map<number, { layer: number; node: number }>();
  const members: { space: number; kind: 'bn' | 'dw' | 'consumer'; index: number; offset: number; slice?: ConsumerSlice }[] = [];
  const valueOf = (j: number): RawValue => (j < 0 ? input : values[j]!);
  const blockAll = (vs: RawValue[]) => vs.forEach((v) => v.segments.forEach((s) => sp.block(s.space)));
  const fresh = (size: number, blocked: boolean): RawValue => ({ segments: [{ space: sp.add(size, blocked), size, offset: 0 }], channels: size, spatial: 1 });

  for (const n of walk.nodes) {
    const ins = n.inputs.map(valueOf);
    const v = ins[0]!;
    const op = n.op;
    let out: RawValue;
    switch (op.type) {
      case 'conv2d':
      case 'dense': {
        for (const s of v.segments) {
          const slice: ConsumerSlice = { layer: n.layer, kind: op.type, spatial: v.spatial, ...(s.offset > 0 ? { offset: s.offset } : {}) };
          members.push({ space: s.space, kind: 'consumer', index: n.layer, offset: s.offset, slice });
        }
        out = fresh(outChannels(op), false);
        producers.set(out.segments[0]!.space, { layer: n.layer, node: n.index });
        break;
      }
      case 'depthwise':
        if (op.depthMultiplier === 1) {
          for (const s of v.segments) members.push({ space: s.space, kind: 'dw', index: n.layer, offset: s.offset });
          out = v;
        } else {
          blockAll([v]);
          out = fresh(outChannels(op), true);
        }
        break;
      case 'batchnorm':
        if (v.spatial > 1) blockAll([v]);
        else for (const s of v.segments) members.push({ space: s.space, kind: 'bn', index: n.bn, offset: s.offset });
        out = v;
        break;
      case 'gap':
        out = { ...v, spatial: 1 };
        break;
      case 'flatten':
        out = n.inFlat ? v : { ...v, spatial: n.inShape[0] * n.inShape[1] };
        break;
      case 'add': {
        const aligned = ins.every((x) => x.spatial === 1 && x.segments.length === v.segments.length && x.segments.every((s, k) => s.size === v.segments[k]!.size));
        if (aligned) for (const x of ins.slice(1)) x.segments.forEach((s, k) => sp.union(v.segments[k]!.space, s.space));
        else blockAll(ins);
        out = v;
        break;
      }
      case 'concat': {
        if (ins.some((x) => x.spatial > 1)) {
          blockAll(ins);
          out = fresh(n.out.shape[2], true);
        } else {
          // Each input's segments shifted by the channels before it.
          let offset = 0;
          const shifted: RawValue['segments'] = [];
          for (const x of ins) {
            for (const s of x.segments) shifted.push({ space: s.space, size: s.size, offset: offset + s.offset });
            offset += x.channels;
          }
          out = { segments: shifted, channels: offset, spatial: 1 };
        }
        break;
      }
      default:
        // maxpool, avgpool, activation, dropout: channels stay in place.
        out = v;
    }
    values.push(out);
  }
  blockAll([values[values.length - 1]!]);

  // Groups: unblocked classes, in forward order of their first producer.
  const roots = [...producers.entries()]
    .filter(([s]) => !sp.blocked[sp.find(s)])
    .sort((a, b) => a[1].layer - b[1].layer)
    .map(([s]) => sp.find(s));
  const order = [...new Set(roots)];
  const groupOfRoot = new Map(order.map((r, i) => [r, i]));
  const groupOf = (space: number): number => groupOfRoot.get(sp.find(space)) ?? -1;
  const groups: ChannelGroup[] = order.map((root, id) => {
    const prods = [...producers.entries()].filter(([s]) => sp.find(s) === root).map(([, p]) => p).sort((a, b) => a.layer - b.layer);
    const first = prods[0]!;
    const firstOp = walk.nodes[first.node]!.op as PrunableOp;
    return {
      id,
      name: firstOp.name,
      producer: first.layer,
      producers: prods.map((p) => p.layer),
      producerOp: first.node,
      kind: firstOp.type === 'conv2d' ? 'conv2d' : 'dense',
      batchNorm: null,
      batchNorms: [],
      depthwise: [],
      consumers: [],
      channels: sp.size[root]!,
      macs: 0,
      params: 0,
    };
  });
  for (const m of members) {
    const g = groups[groupOf(m.space)];
    if (!g) continue;
    if (m.kind === 'bn' && !g.batchNorms.some((b) => b.bn === m.index && b.offset === m.offset)) g.batchNorms.push({ bn: m.index, offset: m.offset });
    if (m.kind === 'dw' && !g.depthwise.some((d) => d.layer === m.index && d.offset === m.offset)) g.depthwise.push({ layer: m.index, offset: m.offset });
    if (m.kind === 'consumer' && !g.consumers.some((c) => c.layer === m.index && (c.offset ?? 0) === m.offset)) g.consumers.push(m.slice!);
  }
  for (const g of groups) {
    g.batchNorms.sort((a, b) => a.bn - b.bn || a.offset - b.offset);
    g.batchNorm = g.batchNorms[0]?.bn ?? null;
    g.consumers.sort((a, b) => a.layer - b.layer || (a.offset ?? 0) - (b.offset ?? 0));
  }
  const resolve = (r: RawValue): ValueChannels => ({
    segments: r.segments.map((s) => ({ group: groupOf(s.space), size: s.size, offset: s.offset })),
    channels: r.channels,
    spatial: r.spatial,
  });
  const analysis: Analysis = { groups, values: [...values.map(resolve), resolve(input)] };
  analyses.set(arch, analysis);
  for (const g of groups) {
    const full = groups.map((x) => x.channels);
    const drop = full.slice();
    drop[g.id] = 0;
    const a = costOf(arch, full);
    const b = costOf(arch, drop);
    g.macs = a.macs - b.macs;
    g.params = a.params - b.params;
  }
  return analysis;
}

/** The prunable channel groups of an architecture (copies: callers may keep them). */
export function channelGroups(arch: Architecture): ChannelGroup[] {
  return analyse(arch).groups.map((g) => ({
    ...g,
    producers: g.producers.slice(),
    batchNorms: g.batchNorms.map((b) => ({ ...b })),
    depthwise: g.depthwise.map((d) => ({ ...d })),
    consumers: g.consumers.map((c) => ({ ...c })),
  }));
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

/** Channels of a value when each group keeps keep[g]. */
function keptChannels(v: ValueChannels, keep: readonly number[]): number {
  let n = 0;
  for (const s of v.segments) n += s.group >= 0 ? keep[s.group]! : s.size;
  return n;
}

function costOf(arch: Architecture, keep: readonly number[]): Cost {
  const { values } = analyses.get(arch)!;
  const walk = walkGraph(arch);
  const valueOf = (j: number) => values[j < 0 ? walk.nodes.length : j]!;
  let macs = 0;
  let params = 0;
  for (const n of walk.nodes) {
    const op = n.op;
    const inV = valueOf(n.inputs[0]!);
    const positions = n.out.flat ? 1 : n.out.shape[0] * n.out.shape[1];
    const bias = op.type !== 'conv2d' && op.type !== 'dense' && op.type !== 'depthwise' ? 0 : op.useBias === false ? 0 : 1;
    switch (op.type) {
      case 'conv2d': {
        const out = keptChannels(valueOf(n.index), keep);
        const w = op.kernel * op.kernel * keptChannels(inV, keep) * out;
        macs += w * positions;
        params += w + bias * out;
        break;
      }
      case 'dense': {
        const out = keptChannels(valueOf(n.index), keep);
        const w = keptChannels(inV, keep) * inV.spatial * out;
        macs += w;
        params += w + bias * out;
        break;
      }
      case 'depthwise': {
        const out = keptChannels(inV, keep) * op.depthMultiplier;
        const w = op.kernel * op.kernel * out;
        macs += w * positions;
        params += w + bias * out;
        break;
      }
      case 'batchnorm':
        params += 2 * keptChannels(inV, keep) * inV.spatial;
        break;
      default:
        break;
    }
  }
  return { macs, params };
}

/** MACs and parameters of a configuration (kept channels per group), closed form. */
export function configCost(arch: Architecture, groups: ChannelGroup[], keep: readonly number[], opts: { allowZero?: boolean } = {}): Cost {
  analyse(arch);
  if (!opts.allowZero) checkKeep(groups, keep);
  else if (keep.length !== groups.length) throw new UsageError(`expected ${groups.length} keep counts, got ${keep.length}`);
  return costOf(arch, keep);
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

/** Per node (then the model input), which channels of its output are kept (1) under these channel masks. */
export function valueKeeps(arch: Architecture, groups: ChannelGroup[], masks: ChannelMasks): { keep: Uint8Array; spatial: number }[] {
  checkChannelMasks(groups, masks);
  return analyse(arch).values.map((v) => {
    const keep = new Uint8Array(v.channels).fill(1);
    for (const s of v.segments) if (s.group >= 0) keep.set(masks[s.group]!, s.offset);
    return { keep, spatial: v.spatial };
  });
}

/** A prunable node's input channel keep mask and the spatial factor of its input units. */
function inputKeep(walk: ReturnType<typeof walkGraph>, keeps: { keep: Uint8Array; spatial: number }[], n: NodeInfo): { keep: Uint8Array; spatial: number } {
  const j = n.inputs[0]!;
  return keeps[j < 0 ? walk.nodes.length : j]!;
}

/** Weight-level masks (models/params LayerMasks) equivalent to channel masks: producer filters, biases and consumer slices. */
export function layerMasksFromChannels(arch: Architecture, groups: ChannelGroup[], masks: ChannelMasks): LayerMasks[] {
  const walk = walkGraph(arch);
  const keeps = valueKeeps(arch, groups, masks);
  return walk.layers.map((i) => {
    const n = walk.nodes[i]!;
    const op = n.op as PrunableOp;
    const outKeep = keeps[i]!.keep;
    const inK = inputKeep(walk, keeps, n);
    const Co = outChannels(op);
    const rows = op.type === 'depthwise' ? op.kernel * op.kernel * op.channels : op.type === 'conv2d' ? op.kernel * op.kernel * op.inChannels : op.inUnits;
    const C = inK.keep.length;
    const weight = new Uint8Array(rows * (op.type === 'depthwise' ? op.depthMultiplier : Co));
    if (op.type === 'depthwise') {
      const m = op.depthMultiplier;
      for (let r = 0; r < rows; r++) if (inK.keep[r % C]) weight.fill(1, r * m, r * m + m);
    } else {
      for (let r = 0; r < rows; r++) {
        if (!inK.keep[r % C]) continue;
        const base = r * Co;
        for (let o = 0; o < Co; o++) weight[base + o] = outKeep[o]!;
      }
    }
    const bias = op.useBias === false ? new Uint8Array(0) : Uint8Array.from(outKeep);
    return { weight, bias };
  });
}

/** Per batchnorm, which of its channels are kept. */
function batchNormKeeps(arch: Architecture, keeps: { keep: Uint8Array }[]): Uint8Array[] {
  const walk = walkGraph(arch);
  return walk.batchNorms.map((i) => keeps[i]!.keep);
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
  const bnKeep = batchNormKeeps(arch, valueKeeps(arch, groups, masks));
  const batchNorms = params.batchNorms.map((b, i) => {
    const keep = bnKeep[i]!;
    const gamma = b.gamma.slice();
    const beta = b.beta.slice();
    for (let c = 0; c < gamma.length; c++) {
      if (!keep[c]) {
        gamma[c] = 0;
        beta[c] = 0;
      }
    }
    return { gamma, beta, movingMean: b.movingMean.slice(), movingVariance: b.movingVariance.slice() };
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
  const batchNorms = batchNormKeeps(arch, valueKeeps(arch, groups, masks)).map((k) => ({ gamma: k.slice(), beta: k.slice() }));
  return { layers, batchNorms };
}

/** Indices into a prunable layer's weight of output channel `c`. */
function forEachOutputEntry(op: PrunableOp, c: number, fn: (i: number) => void): void {
  if (op.type === 'depthwise') {
    const m = op.depthMultiplier;
    const ch = Math.floor(c / m);
    for (let a = 0; a < op.kernel * op.kernel; a++) fn((a * op.channels + ch) * m + (c % m));
    return;
  }
  const out = outChannels(op);
  const rows = (op.type === 'dense' ? op.inUnits * op.outUnits : op.kernel * op.kernel * op.inChannels * op.outChannels) / out;
  for (let r = 0; r < rows; r++) fn(r * out + c);
}

/** Per-channel L1 norm of a group's producer filters (the weights feeding each output channel), summed over tied producers. */
export function producerL1(arch: Architecture, group: ChannelGroup, params: ModelParams): Float32Array {
  const ops = prunableOps(arch);
  const s = new Float64Array(group.channels);
  for (const p of group.producers) {
    const op = ops[p]!;
    const w = params.layers[p]!.weight;
    for (let c = 0; c < group.channels; c++) forEachOutputEntry(op, c, (i) => (s[c] += Math.abs(w[i]!)));
  }
  return Float32Array.from(s);
}

/** Every weight index of consumer slice `slice` that reads channel c of the group (exported for scorers working at the consumer). */
export function consumerInputEntries(arch: Architecture, group: ChannelGroup, slice: ConsumerSlice, c: number): number[] {
  const walk = walkGraph(arch);
  const n = walk.nodes[walk.layers[slice.layer]!]!;
  const op = n.op as PrunableOp;
  const C = n.inShape[2] / (n.inFlat ? slice.spatial : 1);
  const ch = (slice.offset ?? 0) + c;
  const out: number[] = [];
  const Co = outChannels(op);
  const blocks = op.type === 'conv2d' ? op.kernel * op.kernel : slice.spatial;
  for (let a = 0; a < blocks; a++) {
    const row = a * C + ch;
    for (let o = 0; o < Co; o++) out.push(row * Co + o);
  }
  if (c >= group.channels) throw new RangeError(`channel ${c} of ${group.name} is not in [0, ${group.channels})`);
  return out;
}
