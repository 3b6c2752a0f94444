/**
 * A network as plain data: a list of ops in topological order, each reading the outputs of named ops (a DAG).
 * An op without `inputs` reads the op before it (the model input for the first), so a sequential network is
 * just its list of ops. Parameters are held outside (params.ts) in tfjs layouts:
 *   dense kernel [in, out], conv2d kernel [kh, kw, in, out], depthwise kernel [kh, kw, in, multiplier], bias [out]
 *   (a layer without bias has a bias of length 0).
 * Activations are NHWC; `flatten` flattens H,W,C in that order (tfjs order).
 *
 * Prunable layers (masks, crates, DNS) are the conv2d, depthwise and dense ops, indexed in op order; BatchNorm
 * parameters are indexed by the batchnorm ops' order. Everything structural (shapes, parameter counts, MACs) is
 * derived by the one walker (walk.ts) from the op registry (ops/).
 */

/** In-layer activations. Softmax is allowed only at the output (Architecture.outputActivation): it does not change the argmax. */
export type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh';
export const ACTIVATIONS: readonly Activation[] = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh'];

export type Padding = 'valid' | 'same';

interface Wired {
  /** Names of the ops (or the model input) this op reads; default: the op before it. */
  inputs?: string[];
}

export interface Conv2DOp extends Wired {
  type: 'conv2d';
  name: string;
  /** Square kernel size. */
  kernel: number;
  inChannels: number;
  outChannels: number;
  stride: number;
  padding: Padding;
  activation: Activation;
  /** Default true. */
  useBias?: boolean;
}
export interface DepthwiseConv2DOp extends Wired {
  type: 'depthwise';
  name: string;
  kernel: number;
  /** Input channels; the op produces channels · depthMultiplier outputs (channel c·m + j from input c). */
  channels: number;
  depthMultiplier: number;
  stride: number;
  padding: Padding;
  activation: Activation;
  useBias?: boolean;
}
export interface DenseOp extends Wired {
  type: 'dense';
  name: string;
  inUnits: number;
  outUnits: number;
  activation: Activation;
  useBias?: boolean;
}
export interface MaxPoolOp extends Wired {
  type: 'maxpool';
  name?: string;
  size: number;
  stride: number;
  /** Default 'valid'. */
  padding?: Padding;
}
export interface AvgPoolOp extends Wired {
  type: 'avgpool';
  name?: string;
  size: number;
  stride: number;
  padding?: Padding;
}
export interface GlobalAvgPoolOp extends Wired {
  type: 'gap';
  name?: string;
}
export interface FlattenOp extends Wired {
  type: 'flatten';
  name?: string;
}
export interface BatchNormOp extends Wired {
  type: 'batchnorm';
  name: string;
  channels: number;
  epsilon: number;
  /** Applied after normalisation. */
  activation: Activation;
  /** Moving-average momentum recorded for export (tfjs/Keras convention, default 0.99); training uses the solver's. */
  momentum?: number;
}
export interface ActivationOp extends Wired {
  type: 'activation';
  name?: string;
  activation: Activation;
}
export interface DropoutOp extends Wired {
  type: 'dropout';
  name?: string;
  rate: number;
}
export interface AddOp extends Wired {
  type: 'add';
  name?: string;
}
export interface ConcatOp extends Wired {
  type: 'concat';
  name?: string;
}

export type Op =
  | Conv2DOp
  | DepthwiseConv2DOp
  | DenseOp
  | MaxPoolOp
  | AvgPoolOp
  | GlobalAvgPoolOp
  | FlattenOp
  | BatchNormOp
  | ActivationOp
  | DropoutOp
  | AddOp
  | ConcatOp;
export type OpType = Op['type'];
export type PrunableOp = Conv2DOp | DepthwiseConv2DOp | DenseOp;
export type PrunableType = PrunableOp['type'];

export interface Architecture {
  name: string;
  /** H, W, C of one input image. */
  inputShape: [number, number, number];
  numClasses: number;
  ops: Op[];
  /** Mask-update gamma of the OLMP pipeline per prunable layer (spec §5): 2e-4 fc, 2e-5 convs. */
  maskGamma: number[];
  /** Name the ops use for the model input (default 'input'). */
  inputName?: string;
  /** The model reads each image as one flat vector of H·W·C values (NHWC order) instead of an H×W×C tensor. */
  flatInput?: boolean;
  /** Softmax after the last op: the model is scored and trained on logits (argmax unchanged) and exported with it. */
  outputActivation?: 'softmax';
}

export const DEFAULT_INPUT_NAME = 'input';

export function isPrunable(op: Op): op is PrunableOp {
  return op.type === 'conv2d' || op.type === 'dense' || op.type === 'depthwise';
}

/** An op's name: its own, or `<type>_<index>` for unnamed structural ops. */
export function opName(op: Op, index: number): string {
  return op.name ?? `${op.type}_${index}`;
}

export function inputName(arch: Architecture): string {
  return arch.inputName ?? DEFAULT_INPUT_NAME;
}

export function prunableOps(arch: Architecture): PrunableOp[] {
  return arch.ops.filter(isPrunable);
}

export function batchNormOps(arch: Architecture): BatchNormOp[] {
  return arch.ops.filter((op): op is BatchNormOp => op.type === 'batchnorm');
}

export function hasBias(op: PrunableOp): boolean {
  return op.useBias !== false;
}

/** Output channels (units) of a prunable op. */
export function outChannels(op: PrunableOp): number {
  switch (op.type) {
    case 'dense':
      return op.outUnits;
    case 'conv2d':
      return op.outChannels;
    case 'depthwise':
      return op.channels * op.depthMultiplier;
  }
}

export function weightShape(op: PrunableOp): number[] {
  switch (op.type) {
    case 'dense':
      return [op.inUnits, op.outUnits];
    case 'conv2d':
      return [op.kernel, op.kernel, op.inChannels, op.outChannels];
    case 'depthwise':
      return [op.kernel, op.kernel, op.channels, op.depthMultiplier];
  }
}

export function weightCount(op: PrunableOp): number {
  return weightShape(op).reduce((a, b) => a * b, 1);
}

export function biasLength(op: PrunableOp): number {
  return hasBias(op) ? outChannels(op) : 0;
}

/** Inputs feeding one output (Xavier's fan-in). */
export function fanIn(op: PrunableOp): number {
  switch (op.type) {
    case 'dense':
      return op.inUnits;
    case 'conv2d':
      return op.kernel * op.kernel * op.inChannels;
    case 'depthwise':
      return op.kernel * op.kernel;
  }
}

/** Output size of a windowed op along one axis (tfjs / Keras rule). */
export function windowOut(size: number, kernel: number, stride: number, padding: Padding): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
}
