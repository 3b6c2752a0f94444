/**
 * Model zoo: sequential architectures described as plain data. Prunable layers are the conv2d and dense ops;
 * their parameters are held outside tfjs (see params.ts) in tfjs layouts:
 *   dense kernel [in, out], conv2d kernel [kh, kw, in, out], bias [out].
 * Activations are NHWC; `flatten` flattens H,W,C (tfjs order).
 */
import { UsageError } from '../foundation/errors.js';

export type Activation = 'linear' | 'relu';

export interface Conv2DOp {
  type: 'conv2d';
  name: string;
  kernel: number; // square kernel size
  inChannels: number;
  outChannels: number;
  stride: number;
  padding: 'valid' | 'same';
  activation: Activation;
}
export interface DenseOp {
  type: 'dense';
  name: string;
  inUnits: number;
  outUnits: number;
  activation: Activation;
}
export interface MaxPoolOp {
  type: 'maxpool';
  size: number;
  stride: number;
}
export interface FlattenOp {
  type: 'flatten';
}
export interface BatchNormOp {
  type: 'batchnorm';
  name: string;
  channels: number;
  epsilon: number;
  /** Applied after normalisation. */
  activation: Activation;
}
export type Op = Conv2DOp | DenseOp | MaxPoolOp | FlattenOp | BatchNormOp;
export type PrunableOp = Conv2DOp | DenseOp;

export interface Architecture {
  name: string;
  /** H, W, C of one input image. */
  inputShape: [number, number, number];
  numClasses: number;
  ops: Op[];
  /** Mask-update gamma of the OLMP pipeline per prunable layer (spec §5): 2e-4 fc, 2e-5 LeNet-5 convs. */
  maskGamma: number[];
}

export const MODEL_NAMES = ['lenet-300-100', 'lenet-5'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** LeNet-300-100 (spec §1): 784 → 300 ReLU → 100 ReLU → 10. */
export function lenet300100(): Architecture {
  return {
    name: 'lenet-300-100',
    inputShape: [28, 28, 1],
    numClasses: 10,
    ops: [
      { type: 'flatten' },
      { type: 'dense', name: 'ip1', inUnits: 784, outUnits: 300, activation: 'relu' },
      { type: 'dense', name: 'ip2', inUnits: 300, outUnits: 100, activation: 'relu' },
      { type: 'dense', name: 'ip3', inUnits: 100, outUnits: 10, activation: 'linear' },
    ],
    maskGamma: [2e-4, 2e-4, 2e-4],
  };
}

/** Caffe's LeNet-5 (spec §1): conv1 20@5x5 → max 2/2 → conv2 50@5x5 → max 2/2 → ip1 500 ReLU → ip2 10. No ReLU after the convs. */
export function lenet5(): Architecture {
  return {
    name: 'lenet-5',
    inputShape: [28, 28, 1],
    numClasses: 10,
    ops: [
      { type: 'conv2d', name: 'conv1', kernel: 5, inChannels: 1, outChannels: 20, stride: 1, padding: 'valid', activation: 'linear' },
      { type: 'maxpool', size: 2, stride: 2 },
      { type: 'conv2d', name: 'conv2', kernel: 5, inChannels: 20, outChannels: 50, stride: 1, padding: 'valid', activation: 'linear' },
      { type: 'maxpool', size: 2, stride: 2 },
      { type: 'flatten' },
      { type: 'dense', name: 'ip1', inUnits: 800, outUnits: 500, activation: 'relu' },
      { type: 'dense', name: 'ip2', inUnits: 500, outUnits: 10, activation: 'linear' },
    ],
    maskGamma: [2e-5, 2e-5, 2e-4, 2e-4],
  };
}

const ZOO: Record<string, () => Architecture> = {
  'lenet-300-100': lenet300100,
  'lenet-5': lenet5,
};

/** Registers an extra architecture (e.g. the channel-pruning CNNs) under a name. */
export function registerArchitecture(name: string, factory: () => Architecture): void {
  ZOO[name] = factory;
}

export function modelNames(): string[] {
  return Object.keys(ZOO);
}

export function getArchitecture(name: string): Architecture {
  const f = ZOO[name];
  if (!f) throw new UsageError(`unknown model '${name}' (known: ${modelNames().join(', ')})`);
  return f();
}

export function prunableOps(arch: Architecture): PrunableOp[] {
  return arch.ops.filter((op): op is PrunableOp => op.type === 'conv2d' || op.type === 'dense');
}

export function weightShape(op: PrunableOp): number[] {
  return op.type === 'dense' ? [op.inUnits, op.outUnits] : [op.kernel, op.kernel, op.inChannels, op.outChannels];
}

export function biasLength(op: PrunableOp): number {
  return op.type === 'dense' ? op.outUnits : op.outChannels;
}

export function fanIn(op: PrunableOp): number {
  return op.type === 'dense' ? op.inUnits : op.kernel * op.kernel * op.inChannels;
}

/** Per prunable layer: weight count, bias count, parameter count, MACs per image (kh·kw·Cin·Cout·Hout·Wout for convs). */
export interface LayerStats {
  name: string;
  kind: 'conv2d' | 'dense';
  weights: number;
  biases: number;
  params: number;
  macs: number;
  /** Output spatial size (1x1 for dense). */
  outH: number;
  outW: number;
}

function convOut(size: number, kernel: number, stride: number, padding: 'valid' | 'same'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
}

/** Walks the architecture, checking shapes, and returns per-layer statistics. */
export function layerStats(arch: Architecture): LayerStats[] {
  let [h, w, c] = arch.inputShape;
  let flat = -1;
  const out: LayerStats[] = [];
  for (const op of arch.ops) {
    switch (op.type) {
      case 'conv2d': {
        if (flat >= 0 || c !== op.inChannels) throw new Error(`${arch.name}: ${op.name} expects ${op.inChannels} channels, gets ${c}`);
        h = convOut(h, op.kernel, op.stride, op.padding);
        w = convOut(w, op.kernel, op.stride, op.padding);
        c = op.outChannels;
        const weights = op.kernel * op.kernel * op.inChannels * op.outChannels;
        out.push({ name: op.name, kind: 'conv2d', weights, biases: c, params: weights + c, macs: weights * h * w, outH: h, outW: w });
        break;
      }
      case 'maxpool':
        h = Math.floor((h - op.size) / op.stride) + 1;
        w = Math.floor((w - op.size) / op.stride) + 1;
        break;
      case 'flatten':
        flat = h * w * c;
        break;
      case 'batchnorm':
        break;
      case 'dense': {
        const inUnits = flat >= 0 ? flat : h * w * c;
        if (inUnits !== op.inUnits) throw new Error(`${arch.name}: ${op.name} expects ${op.inUnits} inputs, gets ${inUnits}`);
        flat = op.outUnits;
        const weights = op.inUnits * op.outUnits;
        out.push({ name: op.name, kind: 'dense', weights, biases: op.outUnits, params: weights + op.outUnits, macs: weights, outH: 1, outW: 1 });
        break;
      }
    }
  }
  return out;
}

export function totalParams(arch: Architecture): number {
  return layerStats(arch).reduce((s, l) => s + l.params, 0);
}
