/** The ops without parameters: pooling, flatten, dropout, activation, and the merges add and concat. */
import * as tf from '@tensorflow/tfjs';
import { UsageError } from '../../foundation/errors.js';
import { windowOut, type ActivationOp, type AddOp, type AvgPoolOp, type ConcatOp, type DropoutOp, type FlattenOp, type GlobalAvgPoolOp, type MaxPoolOp } from '../graph.js';
import type { OpSpec, Value, KerasLayer } from './spec.js';
import { activate } from './activation.js';
import { channelsLast, lastAxis, readActivation, readPadding, squarePair } from './keras-config.js';

function spatial(v: Value, label: string): Value {
  if (v.flat) throw new UsageError(`${label}: needs an H×W×C input, gets a flat vector of ${v.shape[2]}`);
  return v;
}

function pool<O extends MaxPoolOp | AvgPoolOp>(type: O['type'], className: string): OpSpec<O> {
  return {
    className,
    kerasClasses: [className],
    arity: 'one',
    infer(op, ins, label) {
      const [H, W, C] = spatial(ins[0]!, label).shape;
      const pad = op.padding ?? 'valid';
      const h = windowOut(H, op.size, op.stride, pad);
      const w = windowOut(W, op.size, op.stride, pad);
      if (h < 1 || w < 1) throw new UsageError(`${label}: its output would be ${h}x${w} (the input is too small for the window)`);
      return { shape: [h, w, C], flat: false };
    },
    macs: () => 0,
    forward(op, run) {
      const x = run.inputs[0] as tf.Tensor4D;
      const pad = op.padding ?? 'valid';
      return type === 'maxpool' ? tf.maxPool(x, op.size, op.stride, pad) : tf.avgPool(x, op.size, op.stride, pad);
    },
    toKeras: (op) => [
      { class_name: className, config: { pool_size: [op.size, op.size], strides: [op.stride, op.stride], padding: op.padding ?? 'valid', data_format: 'channels_last' } },
    ],
    kerasWeights: () => [],
    fromKeras(layer, name, _ins, label) {
      const c = layer.config;
      channelsLast(c, label);
      const size = squarePair(c, 'pool_size', label, 2);
      const stride = c.strides === null || c.strides === undefined ? size : squarePair(c, 'strides', label);
      const padding = readPadding(c, label);
      return { type, name, size, stride, ...(padding === 'same' ? { padding } : {}) } as O;
    },
  };
}

export const maxpool = pool<MaxPoolOp>('maxpool', 'MaxPooling2D');
export const avgpool = pool<AvgPoolOp>('avgpool', 'AveragePooling2D');

export const gap: OpSpec<GlobalAvgPoolOp> = {
  className: 'GlobalAveragePooling2D',
  kerasClasses: ['GlobalAveragePooling2D'],
  arity: 'one',
  infer: (_op, ins, label) => ({ shape: [1, 1, spatial(ins[0]!, label).shape[2]], flat: true }),
  macs: () => 0,
  forward: (_op, run) => tf.mean(run.inputs[0]!, [1, 2]),
  toKeras: () => [{ class_name: 'GlobalAveragePooling2D', config: { data_format: 'channels_last' } }],
  kerasWeights: () => [],
  fromKeras(layer, name, _ins, label) {
    channelsLast(layer.config, label);
    if (layer.config.keepdims === true) throw new UsageError(`${label}: keepdims true is not supported`);
    return { type: 'gap', name };
  },
};

export const flatten: OpSpec<FlattenOp> = {
  className: 'Flatten',
  kerasClasses: ['Flatten'],
  arity: 'one',
  infer: (_op, ins) => {
    const [h, w, c] = ins[0]!.shape;
    return { shape: [1, 1, h * w * c], flat: true };
  },
  macs: () => 0,
  forward: (_op, run) => {
    const x = run.inputs[0]!;
    return x.reshape([x.shape[0]!, -1]);
  },
  toKeras: () => [{ class_name: 'Flatten', config: {} }],
  kerasWeights: () => [],
  fromKeras(layer, name, _ins, label) {
    channelsLast(layer.config, label);
    return { type: 'flatten', name };
  },
};

export const dropout: OpSpec<DropoutOp> = {
  className: 'Dropout',
  kerasClasses: ['Dropout'],
  arity: 'one',
  infer: (_op, ins) => ins[0]!,
  macs: () => 0,
  // Identity outside training; in training each step draws its mask from the trainer's seed for this op.
  forward: (op, run) => (run.mode === 'train' && op.rate > 0 && run.dropoutSeed !== null ? tf.dropout(run.inputs[0]!, op.rate, undefined, run.dropoutSeed) : run.inputs[0]!),
  toKeras: (op) => [{ class_name: 'Dropout', config: { rate: op.rate } }],
  kerasWeights: () => [],
  fromKeras(layer, name, _ins, label) {
    const rate = layer.config.rate;
    if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new UsageError(`${label}: rate ${JSON.stringify(rate)} is not in [0, 1)`);
    if (layer.config.noise_shape !== undefined && layer.config.noise_shape !== null) throw new UsageError(`${label}: noise_shape is not supported`);
    return { type: 'dropout', name, rate };
  },
};

/** Keras classes that are an activation: Activation, ReLU (with max_value 6: relu6). */
function activationFromKeras(layer: KerasLayer, label: string): ActivationOp['activation'] {
  const c = layer.config;
  if (layer.class_name === 'ReLU') {
    const max = c.max_value ?? null;
    if ((c.negative_slope ?? 0) !== 0 || (c.threshold ?? 0) !== 0) throw new UsageError(`${label}: negative_slope and threshold other than 0 are not supported`);
    if (max === null) return 'relu';
    if (max === 6) return 'relu6';
    throw new UsageError(`${label}: max_value ${JSON.stringify(max)} is not supported (none or 6)`);
  }
  return readActivation(c, label);
}

export const activation: OpSpec<ActivationOp> = {
  className: 'Activation',
  kerasClasses: ['Activation', 'ReLU'],
  arity: 'one',
  infer: (_op, ins) => ins[0]!,
  macs: () => 0,
  forward: (op, run) => activate(run.inputs[0]!, op.activation),
  toKeras: (op) => [{ class_name: 'Activation', config: { activation: op.activation } }],
  kerasWeights: () => [],
  fromKeras: (layer, name, _ins, label) => ({ type: 'activation', name, activation: activationFromKeras(layer, label) }),
};

function sameShapes(ins: Value[], label: string): Value {
  const a = ins[0]!;
  for (const b of ins.slice(1)) {
    if (b.flat !== a.flat || b.shape.some((d, i) => d !== a.shape[i])) {
      throw new UsageError(`${label}: inputs of shapes ${ins.map((v) => (v.flat ? `[${v.shape[2]}]` : v.shape.join('x'))).join(' and ')} do not match`);
    }
  }
  return a;
}

export const add: OpSpec<AddOp> = {
  className: 'Add',
  kerasClasses: ['Add'],
  arity: 'many',
  infer: (_op, ins, label) => sameShapes(ins, label),
  macs: () => 0,
  // Summed left to right, in input order: the same rounding on every backend path.
  forward: (_op, run) => run.inputs.slice(1).reduce((s, t) => tf.add(s, t), run.inputs[0]!),
  toKeras: () => [{ class_name: 'Add', config: {} }],
  kerasWeights: () => [],
  fromKeras: (_layer, name) => ({ type: 'add', name }),
};

export const concat: OpSpec<ConcatOp> = {
  className: 'Concatenate',
  kerasClasses: ['Concatenate'],
  arity: 'many',
  infer(_op, ins, label) {
    const a = ins[0]!;
    let c = 0;
    for (const v of ins) {
      if (v.flat !== a.flat || v.shape[0] !== a.shape[0] || v.shape[1] !== a.shape[1]) {
        throw new UsageError(`${label}: inputs of shapes ${ins.map((x) => x.shape.join('x')).join(' and ')} differ outside the channel axis`);
      }
      c += v.shape[2];
    }
    return { shape: [a.shape[0], a.shape[1], c], flat: a.flat };
  },
  macs: () => 0,
  forward: (_op, run) => tf.concat(run.inputs, -1),
  toKeras: () => [{ class_name: 'Concatenate', config: { axis: -1 } }],
  kerasWeights: () => [],
  fromKeras(layer, name, ins, label) {
    lastAxis(layer.config, 'axis', ins[0]!.flat ? 2 : 4, label);
    return { type: 'concat', name };
  },
};
