/**
 * Writes an architecture and its parameters as a TensorFlow.js LayersModel (`model.json` + one weights file),
 * loadable with plain `tf.loadLayersModel` and no prunus code: a functional topology whose layers are the registry's
 * Keras configs (ops/ toKeras), weights named `<layer>/<weight>` in Keras order, float32 or quantised. A model scored
 * on logits gets its output softmax back.
 */
import { writeFile } from '../../foundation/atomic.js';
import { join } from 'node:path';
import { inputName, isPrunable, type Architecture } from '../graph.js';
import { walkGraph } from '../walk.js';
import { opSpec, type KerasLayer } from '../ops/index.js';
import type { ModelParams } from '../params.js';
import { encodeWeights, type Quantization, type WeightSpec } from './weights.js';

export const TFJS_LAYERS_VERSION = '4.22.0';

export interface NamedTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

interface KerasEntry {
  name: string;
  layer: KerasLayer;
  inbound: string[];
}

function tensorShape(op: Parameters<typeof isPrunable>[0], param: string, length: number): number[] {
  if (isPrunable(op) && param === 'weight') {
    return op.type === 'dense' ? [op.inUnits, op.outUnits] : op.type === 'conv2d' ? [op.kernel, op.kernel, op.inChannels, op.outChannels] : [op.kernel, op.kernel, op.channels, op.depthMultiplier];
  }
  return [length];
}

/** The Keras layers of an architecture (input layer first), and its weights as named tensors in layer order. */
export function kerasLayers(arch: Architecture, params: ModelParams): { layers: KerasEntry[]; tensors: NamedTensor[]; output: string } {
  const walk = walkGraph(arch);
  const taken = new Set<string>();
  const unique = (base: string): string => {
    let n = base;
    for (let k = 1; taken.has(n); k++) n = `${base}_${k}`;
    taken.add(n);
    return n;
  };
  const inName = unique(inputName(arch));
  for (const n of walk.nodes) taken.add(n.name);
  const [H, W, C] = arch.inputShape;
  const layers: KerasEntry[] = [
    {
      name: inName,
      layer: { class_name: 'InputLayer', config: { batch_input_shape: [null, ...(arch.flatInput ? [H * W * C] : [H, W, C])], dtype: 'float32', sparse: false, name: inName } },
      inbound: [],
    },
  ];
  const tensors: NamedTensor[] = [];
  const lastLayerOf: string[] = [];
  for (const n of walk.nodes) {
    const spec = opSpec(n.op);
    const kl = spec.toKeras(n.op as never, n.out);
    const inbound = n.inputs.map((j) => (j < 0 ? inName : lastLayerOf[j]!));
    let prev = '';
    kl.forEach((l, k) => {
      const name = k === 0 ? n.name : unique(`${n.name}_${String(l.config.activation ?? l.class_name).toLowerCase()}`);
      layers.push({ name, layer: { class_name: l.class_name, config: { ...l.config, name, trainable: true, dtype: 'float32' } }, inbound: k === 0 ? inbound : [prev] });
      prev = name;
    });
    lastLayerOf[n.index] = prev;
    const ws = spec.kerasWeights(n.op as never);
    if (ws.length > 0) {
      const src: Record<string, Float32Array> = n.layer >= 0 ? { weight: params.layers[n.layer]!.weight, bias: params.layers[n.layer]!.bias } : { ...params.batchNorms[n.bn]! };
      for (const w of ws) tensors.push({ name: `${n.name}/${w.name}`, shape: tensorShape(n.op, w.param, src[w.param]!.length), values: src[w.param]! });
    }
  }
  let output = lastLayerOf[walk.nodes.length - 1]!;
  if (arch.outputActivation === 'softmax') {
    const last = layers[layers.length - 1]!;
    const cfg = last.layer.config;
    if (['Dense', 'Conv2D', 'DepthwiseConv2D'].includes(last.layer.class_name) && cfg.activation === 'linear') cfg.activation = 'softmax';
    else {
      const name = unique(`${output}_softmax`);
      layers.push({ name, layer: { class_name: 'Activation', config: { activation: 'softmax', name, trainable: true, dtype: 'float32' } }, inbound: [output] });
      output = name;
    }
  }
  return { layers, tensors, output };
}

/** The `modelTopology` of a functional tfjs LayersModel for the architecture. */
export function kerasTopology(arch: Architecture, layers: KerasEntry[], output: string): Record<string, unknown> {
  return {
    class_name: 'Model',
    config: {
      name: arch.name.replace(/[^A-Za-z0-9_.-]/g, '_'),
      layers: layers.map((e) => ({
        name: e.name,
        class_name: e.layer.class_name,
        config: e.layer.config,
        inbound_nodes: e.inbound.length ? [e.inbound.map((i) => [i, 0, 0, {}])] : [],
      })),
      input_layers: [[layers[0]!.name, 0, 0]],
      output_layers: [[output, 0, 0]],
    },
    keras_version: `tfjs-layers ${TFJS_LAYERS_VERSION}`,
    backend: 'tensor_flow.js',
  };
}

export interface LayersModelFiles {
  /** The model.json object (write it with JSON.stringify). */
  modelJson: Record<string, unknown>;
  /** The weights file's bytes. */
  weights: Uint8Array;
  specs: WeightSpec[];
}

export interface LayersModelOptions {
  quantize?: Quantization | 'none';
  /** Name of the weights file (default weights.bin). */
  weightsFile?: string;
  /** Extra top-level fields of model.json (tfjs ignores them). */
  extra?: Record<string, unknown>;
  generatedBy?: string;
}

/** The files of a tfjs LayersModel for (arch, params). */
export function layersModelFiles(arch: Architecture, params: ModelParams, opts: LayersModelOptions = {}): LayersModelFiles {
  const { layers, tensors, output } = kerasLayers(arch, params);
  const { specs, bytes } = encodeWeights(tensors, opts.quantize ?? 'none');
  const modelJson: Record<string, unknown> = {
    format: 'layers-model',
    generatedBy: opts.generatedBy ?? 'prunus',
    convertedBy: null,
    modelTopology: kerasTopology(arch, layers, output),
    weightsManifest: [{ paths: [opts.weightsFile ?? 'weights.bin'], weights: specs }],
    ...(opts.extra ?? {}),
  };
  return { modelJson, weights: bytes, specs };
}

/** Writes the files into an existing folder (callers building a folder atomically use this). */
export function writeLayersModelFiles(dir: string, files: LayersModelFiles, weightsFile = 'weights.bin'): void {
  writeFile(join(dir, weightsFile), files.weights);
  writeFile(join(dir, 'model.json'), JSON.stringify(files.modelJson) + '\n');
}
