/**
 * The ops with parameters: conv2d, depthwise conv2d and dense (prunable: kernel and bias) and batchnorm.
 *
 * Forward modes: 'infer' runs tf.fused conv2d / matMul with bias and activation (unfused where a gate or a tap needs
 * the pre-activation output); 'train' runs the plain ops plus a bias add, whose gradients tfjs computes lazily per
 * input (the fused ops' custom gradients always compute the gradient w.r.t. the input images, which is never needed),
 * and BatchNorm on batch statistics.
 */
import * as tf from '@tensorflow/tfjs';
import { UsageError } from '../../foundation/errors.js';
import { hasBias, outChannels, windowOut, type BatchNormOp, type Conv2DOp, type DenseOp, type DepthwiseConv2DOp, type PrunableOp } from '../graph.js';
import type { OpRun, OpSpec, Value, KerasWeight } from './spec.js';
import { activate, fusable } from './activation.js';
import { conv2dTrainable, batchNormTrain, channelMoments } from './train-ops.js';
import { channelsLast, noDilation, positiveInt, readActivation, readPadding, squarePair, useBias, lastAxis } from './keras-config.js';

function spatialIn(ins: Value[], label: string): Value {
  const v = ins[0]!;
  if (v.flat) throw new UsageError(`${label}: needs an H×W×C input, gets a flat vector of ${v.shape[2]}`);
  return v;
}

/** The output of a square window op with `channels` input channels producing `outChannels`. */
function windowInfer(op: Pick<Conv2DOp, 'kernel' | 'stride' | 'padding'>, ins: Value[], label: string, channels: number, outChannels: number): Value {
  const [H, W, C] = spatialIn(ins, label).shape;
  if (C !== channels) throw new UsageError(`${label}: expects ${channels} input channels, gets ${C}`);
  const h = windowOut(H, op.kernel, op.stride, op.padding);
  const w = windowOut(W, op.kernel, op.stride, op.padding);
  if (h < 1 || w < 1) throw new UsageError(`${label}: its output would be ${h}x${w} (the input is too small for the window)`);
  return { shape: [h, w, outChannels], flat: false };
}

/** What Conv2D and DepthwiseConv2D configs share: window, padding, activation, bias (checked as prunus supports them). */
function windowFromKeras(c: Record<string, unknown>, label: string): Pick<Conv2DOp, 'kernel' | 'stride' | 'padding' | 'activation' | 'useBias'> {
  channelsLast(c, label);
  noDilation(c, label);
  return {
    kernel: squarePair(c, 'kernel_size', label),
    stride: squarePair(c, 'strides', label, 1),
    padding: readPadding(c, label),
    activation: readActivation(c, label),
    ...(useBias(c) ? {} : { useBias: false }),
  };
}

/** A prunable op's forward: `fused` (infer mode: product, bias and activation in one op) or `plain` (train mode: the product alone). */
function prunableForward(op: PrunableOp, run: OpRun, fused: (act: 'linear' | 'relu' | 'relu6' | 'sigmoid', bias: tf.Tensor1D | undefined) => tf.Tensor, plain: () => tf.Tensor): tf.Tensor {
  const l = run.layer!;
  const bias = hasBias(op) ? l.bias : undefined;
  let h: tf.Tensor;
  let applied: string;
  if (run.mode === 'infer') {
    const fuseAct = run.gate === null && !run.tap ? fusable(op.activation) : 'linear';
    h = fused(fuseAct, bias);
    applied = fuseAct;
  } else {
    h = plain();
    if (bias) h = tf.add(h, bias);
    applied = 'linear';
  }
  run.tap?.(h);
  if (run.gate !== null) h = tf.mul(h, run.gate);
  if (applied !== op.activation) h = activate(h, op.activation);
  return h;
}

const PRUNABLE_WEIGHTS: KerasWeight[] = [
  { name: 'kernel', param: 'weight' },
  { name: 'bias', param: 'bias' },
];

export const conv2d: OpSpec<Conv2DOp> = {
  className: 'Conv2D',
  kerasClasses: ['Conv2D'],
  arity: 'one',
  infer: (op, ins, label) => windowInfer(op, ins, label, op.inChannels, op.outChannels),
  macs: (op, _ins, out) => op.kernel * op.kernel * op.inChannels * op.outChannels * out.shape[0] * out.shape[1],
  forward(op, run) {
    const x = run.inputs[0] as tf.Tensor4D;
    const w = run.layer!.weight as tf.Tensor4D;
    return prunableForward(
      op,
      run,
      (activation, bias) => tf.fused.conv2d({ x, filter: w, strides: op.stride, pad: op.padding, bias, activation }),
      () => conv2dTrainable(x, w, op, !run.dataInput),
    );
  },
  toKeras: (op) => [{
    class_name: 'Conv2D',
    config: {
      filters: op.outChannels,
      kernel_size: [op.kernel, op.kernel],
      strides: [op.stride, op.stride],
      padding: op.padding,
      data_format: 'channels_last',
      dilation_rate: [1, 1],
      activation: op.activation,
      use_bias: hasBias(op),
    },
  }],
  kerasWeights: (op) => (hasBias(op) ? PRUNABLE_WEIGHTS : PRUNABLE_WEIGHTS.slice(0, 1)),
  fromKeras(layer, name, ins, label) {
    const c = layer.config;
    if (c.groups !== undefined && c.groups !== 1) throw new UsageError(`${label}: groups ${JSON.stringify(c.groups)} is not supported (1 only)`);
    return { type: 'conv2d', name, inChannels: ins[0]!.shape[2], outChannels: positiveInt(c, 'filters', label), ...windowFromKeras(c, label) };
  },
};

export const depthwise: OpSpec<DepthwiseConv2DOp> = {
  className: 'DepthwiseConv2D',
  kerasClasses: ['DepthwiseConv2D'],
  arity: 'one',
  infer: (op, ins, label) => windowInfer(op, ins, label, op.channels, outChannels(op)),
  macs: (op, _ins, out) => op.kernel * op.kernel * op.channels * op.depthMultiplier * out.shape[0] * out.shape[1],
  forward(op, run) {
    const x = run.inputs[0] as tf.Tensor4D;
    const w = run.layer!.weight as tf.Tensor4D;
    return prunableForward(
      op,
      run,
      (activation, bias) => tf.fused.depthwiseConv2d({ x, filter: w, strides: op.stride, pad: op.padding, bias, activation }),
      () => tf.depthwiseConv2d(x, w, op.stride, op.padding),
    );
  },
  toKeras: (op) => [{
    class_name: 'DepthwiseConv2D',
    config: {
      kernel_size: [op.kernel, op.kernel],
      strides: [op.stride, op.stride],
      padding: op.padding,
      depth_multiplier: op.depthMultiplier,
      data_format: 'channels_last',
      dilation_rate: [1, 1],
      activation: op.activation,
      use_bias: hasBias(op),
    },
  }],
  kerasWeights: (op) => [{ name: 'depthwise_kernel', param: 'weight' }, ...(hasBias(op) ? [{ name: 'bias', param: 'bias' } as const] : [])],
  fromKeras(layer, name, ins, label) {
    const c = layer.config;
    const depthMultiplier = c.depth_multiplier === undefined ? 1 : positiveInt(c, 'depth_multiplier', label);
    return { type: 'depthwise', name, channels: ins[0]!.shape[2], depthMultiplier, ...windowFromKeras(c, label) };
  },
};

export const dense: OpSpec<DenseOp> = {
  className: 'Dense',
  kerasClasses: ['Dense'],
  arity: 'one',
  infer(op, ins, label) {
    const v = ins[0]!;
    if (!v.flat) throw new UsageError(`${label}: reads a ${v.shape.join('x')} tensor; only flat inputs are supported (put a Flatten or GlobalAveragePooling2D before it)`);
    if (v.shape[2] !== op.inUnits) throw new UsageError(`${label}: expects ${op.inUnits} inputs, gets ${v.shape[2]}`);
    return { shape: [1, 1, op.outUnits], flat: true };
  },
  macs: (op) => op.inUnits * op.outUnits,
  forward(op, run) {
    let x = run.inputs[0]!;
    if (x.rank !== 2) x = x.reshape([x.shape[0]!, -1]);
    const a = x as tf.Tensor2D;
    const w = run.layer!.weight as tf.Tensor2D;
    return prunableForward(
      op,
      run,
      (activation, bias) => tf.fused.matMul({ a, b: w, bias, activation }),
      () => tf.matMul(a, w),
    );
  },
  toKeras: (op) => [{ class_name: 'Dense', config: { units: op.outUnits, activation: op.activation, use_bias: hasBias(op) } }],
  kerasWeights: (op) => (hasBias(op) ? PRUNABLE_WEIGHTS : PRUNABLE_WEIGHTS.slice(0, 1)),
  fromKeras(layer, name, ins, label) {
    const c = layer.config;
    return {
      type: 'dense',
      name,
      inUnits: ins[0]!.shape[2],
      outUnits: positiveInt(c, 'units', label),
      activation: readActivation(c, label),
      ...(useBias(c) ? {} : { useBias: false }),
    };
  },
};

export const batchnorm: OpSpec<BatchNormOp> = {
  className: 'BatchNormalization',
  kerasClasses: ['BatchNormalization'],
  arity: 'one',
  infer(op, ins, label) {
    const v = ins[0]!;
    if (v.shape[2] !== op.channels) throw new UsageError(`${label}: has ${op.channels} channels, its input ${v.shape[2]}`);
    return v;
  },
  macs: () => 0,
  forward(op, run) {
    const h = run.inputs[0]!;
    const b = run.bn!;
    let y: tf.Tensor;
    if (run.mode === 'train') {
      if (run.onBatchNormStats) {
        const m = channelMoments(h);
        run.onBatchNormStats(m.mean, m.variance);
      }
      y = batchNormTrain(h, b.gamma, b.beta, op.epsilon);
    } else {
      y = tf.batchNorm(h, b.movingMean, b.movingVariance, b.beta, b.gamma, op.epsilon);
    }
    return activate(y, op.activation);
  },
  toKeras: (op, out) => [
    { class_name: 'BatchNormalization', config: { axis: out.flat ? 1 : 3, momentum: op.momentum ?? 0.99, epsilon: op.epsilon, center: true, scale: true } },
    ...(op.activation !== 'linear' ? [{ class_name: 'Activation', config: { activation: op.activation } }] : []),
  ],
  kerasWeights: () => [
    { name: 'gamma', param: 'gamma' },
    { name: 'beta', param: 'beta' },
    { name: 'moving_mean', param: 'movingMean' },
    { name: 'moving_variance', param: 'movingVariance' },
  ],
  fromKeras(layer, name, ins, label) {
    const c = layer.config;
    lastAxis(c, 'axis', ins[0]!.flat ? 2 : 4, label);
    if (c.center === false || c.scale === false) throw new UsageError(`${label}: center/scale false is not supported`);
    const epsilon = typeof c.epsilon === 'number' ? c.epsilon : 1e-3;
    return {
      type: 'batchnorm',
      name,
      channels: ins[0]!.shape[2],
      epsilon,
      activation: 'linear',
      ...(typeof c.momentum === 'number' ? { momentum: c.momentum } : {}),
    };
  },
};
