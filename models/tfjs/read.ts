/**
 * Reads a TensorFlow.js LayersModel (`model.json` + weight shards), as written by tfjs `model.save()` or by
 * `tensorflowjs_converter --output_format tfjs_layers_model` from Keras (2 or 3): Sequential or functional
 * topologies, each layer mapped to a registry op (ops/ fromKeras), weights matched by name and checked. A softmax
 * at the output becomes Architecture.outputActivation (prunus scores and trains on logits; the argmax is the same).
 * Anything it cannot take — an unsupported layer or setting, a shared layer, a shape that does not fit, a missing or
 * short shard, a NaN or infinite weight — is one UsageError naming the layer (class and name) or the file.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../../foundation/errors.js';
import { readJsonObject } from '../../foundation/json.js';
import { isPrunable, opName, outChannels, type Architecture, type Op } from '../graph.js';
import { walkGraph } from '../walk.js';
import { KERAS_CLASSES, OPS, opSpec, type KerasLayer, type Value } from '../ops/index.js';
import type { BatchNormParams, LayerParams, ModelParams } from '../params.js';
import { readWeights, type NamedWeight } from './weights.js';

export interface LayersModelFile {
  arch: Architecture;
  params: ModelParams;
  /** Absolute path of model.json. */
  path: string;
  /** sha256 over model.json and every weight shard, in manifest order. */
  sha256: string;
  /** The parsed model.json (for readers of extra fields). */
  json: Record<string, unknown>;
}

interface Entry {
  className: string;
  name: string;
  config: Record<string, unknown>;
  /** Names of the layers feeding it (empty for the input layer). */
  inbound: string[];
}

/** The model.json of a path that is the file itself or a folder holding it. */
export function modelJsonPath(path: string): string {
  const p = resolve(path);
  if (!existsSync(p)) throw new UsageError(`${path} does not exist`);
  if (statSync(p).isDirectory()) {
    const m = join(p, 'model.json');
    if (!existsSync(m)) throw new UsageError(`${path}: no model.json in this folder`);
    return m;
  }
  return p;
}

/** Layer names in a Keras 3 inbound node's args (nested lists of __keras_tensor__ entries). */
function kerasHistory(x: unknown, out: [string, number][]): void {
  if (Array.isArray(x)) for (const y of x) kerasHistory(y, out);
  else if (x && typeof x === 'object') {
    const cfg = (x as { config?: { keras_history?: unknown } }).config;
    const h = cfg?.keras_history;
    if (Array.isArray(h) && typeof h[0] === 'string') out.push([h[0], Number(h[1] ?? 0)]);
  }
}

function inboundOf(layer: Record<string, unknown>, label: string): string[] {
  const nodes = layer.inbound_nodes;
  if (nodes === undefined || (Array.isArray(nodes) && nodes.length === 0)) return [];
  if (!Array.isArray(nodes)) throw new UsageError(`${label}: malformed inbound_nodes`);
  if (nodes.length > 1) throw new UsageError(`${label}: a layer used more than once (shared layers are not supported)`);
  const node = nodes[0] as unknown;
  const refs: [string, number][] = [];
  if (Array.isArray(node)) {
    for (const r of node) if (Array.isArray(r) && typeof r[0] === 'string') refs.push([r[0], Number(r[1] ?? 0)]);
  } else kerasHistory((node as { args?: unknown }).args, refs);
  if (refs.length === 0) throw new UsageError(`${label}: malformed inbound_nodes`);
  if (refs.some(([, k]) => k !== 0)) throw new UsageError(`${label}: reads a shared layer's second call (shared layers are not supported)`);
  return refs.map(([n]) => n);
}

/** Keras activations may be serialised as a name or (Keras 3) as an object around it. */
function normaliseConfig(config: Record<string, unknown>): Record<string, unknown> {
  const a = config.activation;
  if (a && typeof a === 'object' && typeof (a as { config?: unknown }).config === 'string') return { ...config, activation: (a as { config: string }).config };
  if (a && typeof a === 'object' && typeof (a as { class_name?: unknown }).class_name === 'string') return { ...config, activation: (a as { class_name: string }).class_name.toLowerCase() };
  return config;
}

function entriesOf(topology: Record<string, unknown>, file: string): { entries: Entry[]; outputs: string[]; name: string } {
  const cls = topology.class_name;
  const config = topology.config as Record<string, unknown> | unknown[] | undefined;
  if (cls === 'Sequential') {
    const layers = (Array.isArray(config) ? config : (config as { layers?: unknown[] } | undefined)?.layers) as Record<string, unknown>[] | undefined;
    if (!Array.isArray(layers) || layers.length === 0) throw new UsageError(`${file}: a Sequential model without layers`);
    const entries: Entry[] = [];
    let prev = '';
    layers.forEach((l, i) => {
      const c = normaliseConfig((l.config ?? {}) as Record<string, unknown>);
      const className = String(l.class_name);
      const name = typeof c.name === 'string' ? c.name : `${className.toLowerCase()}_${i}`;
      if (i === 0 && className !== 'InputLayer') {
        const shape = c.batch_input_shape ?? c.batch_shape ?? (Array.isArray(c.input_shape) ? [null, ...(c.input_shape as unknown[])] : undefined);
        entries.push({ className: 'InputLayer', name: 'input', config: { batch_input_shape: shape }, inbound: [] });
        prev = 'input';
      }
      entries.push({ className, name, config: c, inbound: prev ? [prev] : [] });
      prev = name;
    });
    const n = Array.isArray(config) ? 'sequential' : String((config as { name?: unknown }).name ?? 'sequential');
    return { entries, outputs: [prev], name: n };
  }
  if (cls === 'Model' || cls === 'Functional') {
    const c = config as { name?: unknown; layers?: Record<string, unknown>[]; output_layers?: unknown[] };
    if (!c || !Array.isArray(c.layers)) throw new UsageError(`${file}: a functional model without layers`);
    const entries = c.layers.map((l) => {
      const className = String(l.class_name);
      const cfg = normaliseConfig((l.config ?? {}) as Record<string, unknown>);
      const name = String(l.name ?? cfg.name);
      return { className, name, config: cfg, inbound: inboundOf(l, `${className} '${name}'`) };
    });
    const outs = Array.isArray(c.output_layers) ? c.output_layers : [];
    const outputs = (Array.isArray(outs[0]) ? outs : [outs]).map((o) => String((o as unknown[])[0]));
    return { entries, outputs, name: String(c.name ?? 'model') };
  }
  throw new UsageError(`${file}: model class '${String(cls)}' is not supported (Sequential or functional LayersModels)`);
}

/** Orders entries so that every layer comes after the layers it reads (Keras writes them so; checked anyway). */
function topological(entries: Entry[], file: string): Entry[] {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const done = new Set<string>();
  const out: Entry[] = [];
  const visit = (e: Entry, stack: Set<string>) => {
    if (done.has(e.name)) return;
    if (stack.has(e.name)) throw new UsageError(`${file}: layer '${e.name}' is part of a cycle`);
    stack.add(e.name);
    for (const n of e.inbound) {
      const d = byName.get(n);
      if (!d) throw new UsageError(`${e.className} '${e.name}': reads '${n}', which is not a layer of the model`);
      visit(d, stack);
    }
    stack.delete(e.name);
    done.add(e.name);
    out.push(e);
  };
  for (const e of entries) visit(e, new Set());
  return out;
}

function inputValue(e: Entry): { value: Value; shape: [number, number, number]; flat: boolean } {
  const label = `InputLayer '${e.name}'`;
  const s = (e.config.batch_input_shape ?? e.config.batch_shape) as unknown;
  if (!Array.isArray(s)) throw new UsageError(`${label}: no input shape (batch_input_shape)`);
  const dims = s.slice(1);
  if (!dims.every((d) => Number.isInteger(d) && (d as number) > 0)) throw new UsageError(`${label}: input shape ${JSON.stringify(s)} has unknown dimensions`);
  if (dims.length === 3) return { value: { shape: dims as [number, number, number], flat: false }, shape: dims as [number, number, number], flat: false };
  if (dims.length === 1) return { value: { shape: [1, 1, dims[0] as number], flat: true }, shape: [1, 1, dims[0] as number], flat: true };
  throw new UsageError(`${label}: input shape ${JSON.stringify(s)} is not supported (H×W×C images, or flat vectors)`);
}

/** Architecture of a topology (no weights). */
export function archFromTopology(topology: Record<string, unknown>, file: string): Architecture {
  const { entries: raw, outputs, name } = entriesOf(topology, file);
  if (outputs.length !== 1) throw new UsageError(`${file}: the model has ${outputs.length} outputs (one is supported)`);
  const entries = topological(raw, file);
  const inputs = entries.filter((e) => e.className === 'InputLayer');
  if (inputs.length !== 1) throw new UsageError(`${file}: the model has ${inputs.length} inputs (one is supported)`);
  const input = inputValue(inputs[0]!);
  let output = outputs[0]!;
  let outputActivation: 'softmax' | undefined;
  // A softmax at the output: as its own layer (dropped), or inside the output layer (made linear).
  const out = entries.find((e) => e.name === output);
  if (!out) throw new UsageError(`${file}: the output layer '${output}' is not in the model`);
  if (out.className === 'Softmax' || (out.className === 'Activation' && out.config.activation === 'softmax')) {
    if (out.className === 'Softmax') {
      const axis = out.config.axis ?? -1;
      if (axis !== -1 && !(Array.isArray(axis) && axis.length === 1 && axis[0] === -1)) throw new UsageError(`Softmax '${out.name}': axis ${JSON.stringify(axis)} is not supported (-1 only)`);
    }
    outputActivation = 'softmax';
    output = out.inbound[0]!;
  } else if (out.config.activation === 'softmax') {
    outputActivation = 'softmax';
    out.config = { ...out.config, activation: 'linear' };
  }
  const values = new Map<string, Value>([[inputs[0]!.name, input.value]]);
  const ops: Op[] = [];
  const dropped = output !== outputs[0] ? outputs[0] : null;
  for (const e of entries) {
    if (e.className === 'InputLayer' || e.name === dropped) continue;
    const label = `${e.className} '${e.name}'`;
    const type = KERAS_CLASSES.get(e.className);
    if (!type) {
      const known = [...KERAS_CLASSES.keys(), 'InputLayer', 'Softmax (at the output)'].join(', ');
      throw new UsageError(`${file}: layer ${label} is not supported (supported: ${known})`);
    }
    const ins = e.inbound.map((n) => values.get(n)!);
    const spec = OPS[type];
    const op = spec.fromKeras({ class_name: e.className, config: e.config } as KerasLayer, e.name, ins, label) as Op;
    const v = opSpec(op).infer(op as never, ins, label);
    values.set(e.name, v);
    ops.push({ ...op, inputs: e.inbound } as Op);
  }
  // A chain needs no wiring: drop inputs that name the op before (or the input, for the first).
  const inName = inputs[0]!.name;
  ops.forEach((op, i) => {
    const prev = i === 0 ? inName : opName(ops[i - 1]!, i - 1);
    if (op.inputs && op.inputs.length === 1 && op.inputs[0] === prev) delete op.inputs;
  });
  const last = values.get(output)!;
  const arch: Architecture = {
    name,
    inputShape: input.shape,
    numClasses: last.flat ? last.shape[2] : 0,
    ops,
    maskGamma: ops.filter(isPrunable).map((op) => (op.type === 'dense' ? 2e-4 : 2e-5)),
    ...(inName !== 'input' ? { inputName: inName } : {}),
    ...(input.flat ? { flatInput: true } : {}),
    ...(outputActivation ? { outputActivation } : {}),
  };
  if (arch.numClasses === 0) throw new UsageError(`${file}: the output ${output} is a ${last.shape.join('x')} tensor; prunus needs one logit per class (a flat output)`);
  walkGraph(arch);
  return arch;
}

function findWeight(weights: Map<string, NamedWeight>, layer: string, w: string): NamedWeight | undefined {
  const exact = weights.get(`${layer}/${w}`);
  if (exact) return exact;
  // Converters may scope names (model/layer/kernel) or suffix them (:0).
  for (const [k, v] of weights) {
    const name = k.replace(/:0$/, '');
    if (name === `${layer}/${w}` || name.endsWith(`/${layer}/${w}`)) return v;
  }
  return undefined;
}

/** Parameters of `arch` from named weights (checked: present, right shape, finite). */
export function paramsFromWeights(arch: Architecture, weights: Map<string, NamedWeight>, file: string): ModelParams {
  const walk = walkGraph(arch);
  const layers: LayerParams[] = [];
  const batchNorms: BatchNormParams[] = [];
  for (const n of walk.nodes) {
    const op = n.op;
    const spec = opSpec(op);
    const ws = spec.kerasWeights(op as never);
    if (ws.length === 0) continue;
    const got: Partial<Record<string, Float32Array>> = {};
    for (const w of ws) {
      const t = findWeight(weights, n.name, w.name);
      if (!t) throw new UsageError(`${n.label}: weight ${n.name}/${w.name} is not in the weights of ${file}`);
      const expect = expectedShape(op, w.param);
      if (t.shape.length !== expect.length || t.shape.some((d, i) => d !== expect[i])) {
        throw new UsageError(`${n.label}: weight ${n.name}/${w.name} has shape [${t.shape.join(',')}], the layer needs [${expect.join(',')}]`);
      }
      for (let i = 0; i < t.values.length; i++) {
        if (!Number.isFinite(t.values[i]!)) throw new UsageError(`${n.label}: weight ${n.name}/${w.name} holds ${t.values[i]} at index ${i} (NaN or infinite weights are refused)`);
      }
      got[w.param] = t.values;
    }
    if (isPrunable(op)) layers.push({ weight: got.weight!, bias: got.bias ?? new Float32Array(0) });
    else batchNorms.push({ gamma: got.gamma!, beta: got.beta!, movingMean: got.movingMean!, movingVariance: got.movingVariance! });
  }
  return { layers, batchNorms };
}

function expectedShape(op: Op, param: string): number[] {
  if (isPrunable(op)) {
    if (param === 'bias') return [outChannels(op)];
    return op.type === 'dense' ? [op.inUnits, op.outUnits] : op.type === 'conv2d' ? [op.kernel, op.kernel, op.inChannels, op.outChannels] : [op.kernel, op.kernel, op.channels, op.depthMultiplier];
  }
  if (op.type === 'batchnorm') return [op.channels];
  return [];
}

/** sha256 over model.json and every shard its manifest names, in order. */
export function modelSha256(file: string, json: Record<string, unknown>): string {
  const h = createHash('sha256').update(readFileSync(file));
  const groups = Array.isArray(json.weightsManifest) ? (json.weightsManifest as { paths?: unknown[] }[]) : [];
  for (const g of groups) for (const p of g.paths ?? []) if (typeof p === 'string' && existsSync(join(dirname(file), p))) h.update(readFileSync(join(dirname(file), p)));
  return h.digest('hex');
}

/** Reads a TensorFlow.js LayersModel (model.json path, or the folder holding it). */
export function readLayersModel(path: string): LayersModelFile {
  const file = modelJsonPath(path);
  const json = readJsonObject(file);
  const topo = json.modelTopology as Record<string, unknown> | undefined;
  if (!topo || typeof topo !== 'object') throw new UsageError(`${file}: no modelTopology (is this a TensorFlow.js LayersModel? graph models are not supported)`);
  const topology = (topo.model_config ?? topo) as Record<string, unknown>;
  let arch = archFromTopology(topology, file);
  if (arch.name === 'model' || arch.name === 'sequential') arch = { ...arch, name: basename(dirname(file)) || arch.name };
  const weights = readWeights(dirname(file), json.weightsManifest, file);
  const params = paramsFromWeights(arch, weights, file);
  return { arch, params, path: file, sha256: modelSha256(file, json), json };
}
