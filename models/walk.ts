/**
 * The one walker: resolves every op's inputs, infers every value's shape through the op registry, numbers the
 * prunable layers and batchnorms, and counts MACs. Everything structural in prunus (forward passes, the
 * evaluator's paths, channel groups, slimming, import and export, parameter and MAC counts) reads this walk.
 * Architectures are immutable values: a walk is computed once per architecture object.
 */
import { UsageError } from '../foundation/errors.js';
import { inputName, isPrunable, opName, weightCount, biasLength, type Architecture, type Op, type PrunableType } from './graph.js';
import { opSpec, type Shape3, type Value } from './ops/index.js';

export interface NodeInfo {
  index: number;
  op: Op;
  name: string;
  /** Class and name for messages, e.g. "Conv2D 'conv1'". */
  label: string;
  /** Node indices of the inputs; -1 is the model input. */
  inputs: number[];
  ins: Value[];
  out: Value;
  /** Shape of the first input and of the output (flat values are [1, 1, N]). */
  inShape: Shape3;
  inFlat: boolean;
  outShape: Shape3;
  outFlat: boolean;
  /** Prunable-layer index, or -1. */
  layer: number;
  /** Batchnorm index, or -1. */
  bn: number;
  /** Nodes reading this node's output. */
  consumers: number[];
  /** Dense MACs per image (conv and fc ops). */
  macs: number;
}

export interface Walk {
  nodes: NodeInfo[];
  /** The model input as the ops see it (flat when the model reads vectors). */
  input: Value;
  /** Node index of each prunable layer and of each batchnorm, in order. */
  layers: number[];
  batchNorms: number[];
  /** Nodes reading the model input directly. */
  inputConsumers: number[];
  /** Every op reads only the op before it (the first reads the input): a plain chain. */
  chain: boolean;
}

const walks = new WeakMap<Architecture, Walk>();

function describe(v: Value): string {
  return v.flat ? `[${v.shape[2]}]` : v.shape.join('x');
}

/** Walks (and checks) an architecture. Throws a one-line UsageError naming the op that does not fit. */
export function walkGraph(arch: Architecture): Walk {
  const hit = walks.get(arch);
  if (hit) return hit;
  const w = computeWalk(arch);
  walks.set(arch, w);
  return w;
}

function computeWalk(arch: Architecture): Walk {
  if (!Array.isArray(arch.ops) || arch.ops.length === 0) throw new UsageError(`${arch.name}: the model has no ops`);
  const [H, W, C] = arch.inputShape;
  const input: Value = arch.flatInput ? { shape: [1, 1, H * W * C], flat: true } : { shape: [H, W, C], flat: false };
  const inName = inputName(arch);
  const index = new Map<string, number>([[inName, -1]]);
  const nodes: NodeInfo[] = [];
  const layers: number[] = [];
  const batchNorms: number[] = [];
  const inputConsumers: number[] = [];
  let chain = true;
  arch.ops.forEach((op, i) => {
    const spec = opSpec(op);
    const name = opName(op, i);
    const label = `${spec.className} '${name}'`;
    if (index.has(name)) throw new UsageError(`${arch.name}: two ops are named '${name}'`);
    const inputs = (op.inputs ?? [i === 0 ? inName : opName(arch.ops[i - 1]!, i - 1)]).map((n) => {
      const j = index.get(n);
      if (j === undefined) {
        const later = arch.ops.findIndex((o, k) => opName(o, k) === n);
        throw new UsageError(`${label}: reads '${n}', ${later >= 0 ? 'which comes after it (ops must be in topological order)' : 'which is not an op of the model'}`);
      }
      return j;
    });
    if (spec.arity === 'one' && inputs.length !== 1) throw new UsageError(`${label}: takes one input, has ${inputs.length}`);
    if (spec.arity === 'many' && inputs.length < 2) throw new UsageError(`${label}: takes two or more inputs, has ${inputs.length}`);
    if (inputs.length !== 1 || inputs[0] !== i - 1) chain = false;
    const ins = inputs.map((j) => (j < 0 ? input : nodes[j]!.out));
    const out = spec.infer(op as never, ins, label);
    const prunable = isPrunable(op);
    const node: NodeInfo = {
      index: i,
      op,
      name,
      label,
      inputs,
      ins,
      out,
      inShape: ins[0]!.shape,
      inFlat: ins[0]!.flat,
      outShape: out.shape,
      outFlat: out.flat,
      layer: prunable ? layers.length : -1,
      bn: op.type === 'batchnorm' ? batchNorms.length : -1,
      consumers: [],
      macs: spec.macs(op as never, ins, out),
    };
    if (prunable) layers.push(i);
    if (op.type === 'batchnorm') batchNorms.push(i);
    for (const j of inputs) {
      if (j < 0) inputConsumers.push(i);
      else if (!nodes[j]!.consumers.includes(i)) nodes[j]!.consumers.push(i);
    }
    nodes.push(node);
    index.set(name, i);
  });
  const last = nodes[nodes.length - 1]!;
  const unused = nodes.slice(0, -1).find((n) => n.consumers.length === 0);
  if (unused) throw new UsageError(`${unused.label}: its output is not used (the model has one output, ${last.label})`);
  if (!last.out.flat || last.out.shape[2] !== arch.numClasses) {
    throw new UsageError(`${arch.name}: the output ${last.label} has shape ${describe(last.out)}, expected [${arch.numClasses}] (one logit per class)`);
  }
  return { nodes, input, layers, batchNorms, inputConsumers, chain };
}

/** Per prunable layer: weight count, bias count, parameter count, MACs per image (kh·kw·Cin·Cout·Hout·Wout for convs). */
export interface LayerStats {
  name: string;
  kind: PrunableType;
  weights: number;
  biases: number;
  params: number;
  macs: number;
  /** Output spatial size (1x1 for dense). */
  outH: number;
  outW: number;
}

/** Checks the architecture's shapes and returns per-prunable-layer statistics. */
export function layerStats(arch: Architecture): LayerStats[] {
  const w = walkGraph(arch);
  return w.layers.map((i) => {
    const n = w.nodes[i]!;
    const op = n.op;
    if (!isPrunable(op)) throw new Error('unreachable: a prunable index names a non-prunable op');
    const weights = weightCount(op);
    const biases = biasLength(op);
    return { name: n.name, kind: op.type, weights, biases, params: weights + biases, macs: n.macs, outH: n.out.flat ? 1 : n.out.shape[0], outW: n.out.flat ? 1 : n.out.shape[1] };
  });
}

export function totalParams(arch: Architecture): number {
  return layerStats(arch).reduce((s, l) => s + l.params, 0);
}
