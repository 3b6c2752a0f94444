/** The trainer's tf.Variables read into and written from plain arrays (parameters, momentum buffers). */
import * as tf from '@tensorflow/tfjs';
import type { ModelParams } from '../../models/params.js';
import type { Trainable } from './update.js';

export interface LayerVariables {
  weight: Trainable;
  bias: Trainable;
}
export interface BatchNormVariables {
  gamma: Trainable;
  beta: Trainable;
  movingMean: tf.Variable;
  movingVariance: tf.Variable;
}

/** Momentum buffers ("history" in Caffe), same layout as the parameters they belong to. */
export interface MomentumState {
  layers: { weight: Float32Array; bias: Float32Array }[];
  batchNorms: { gamma: Float32Array; beta: Float32Array }[];
}

export function checkLength(what: string, a: ArrayLike<number>, n: number): void {
  if (a.length !== n) throw new Error(`${what}: length ${a.length}, expected ${n}`);
}

const read = (v: tf.Variable): Float32Array => v.dataSync().slice() as Float32Array;

export function readParams(layers: LayerVariables[], bns: BatchNormVariables[]): ModelParams {
  return {
    layers: layers.map((l) => ({ weight: read(l.weight.value), bias: read(l.bias.value) })),
    batchNorms: bns.map((b) => ({ gamma: read(b.gamma.value), beta: read(b.beta.value), movingMean: read(b.movingMean), movingVariance: read(b.movingVariance) })),
  };
}

function assign(v: tf.Variable, a: Float32Array, what: string): void {
  checkLength(what, a, v.size);
  tf.tidy(() => v.assign(tf.tensor(a, v.shape, 'float32')));
}

export function writeParams(layers: LayerVariables[], bns: BatchNormVariables[], params: ModelParams, names: string[]): void {
  params.layers.forEach((p, i) => {
    const l = layers[i]!;
    assign(l.weight.value, p.weight, `${names[i]} weight`);
    assign(l.bias.value, p.bias, `${names[i]} bias`);
  });
  params.batchNorms.forEach((p, i) => {
    const b = bns[i]!;
    assign(b.gamma.value, p.gamma, `batchnorm ${i} gamma`);
    assign(b.beta.value, p.beta, `batchnorm ${i} beta`);
    assign(b.movingMean, p.movingMean, `batchnorm ${i} moving mean`);
    assign(b.movingVariance, p.movingVariance, `batchnorm ${i} moving variance`);
  });
}

export function readMomentum(layers: LayerVariables[], bns: BatchNormVariables[]): MomentumState {
  return {
    layers: layers.map((l) => ({ weight: read(l.weight.momentum), bias: read(l.bias.momentum) })),
    batchNorms: bns.map((b) => ({ gamma: read(b.gamma.momentum), beta: read(b.beta.momentum) })),
  };
}

export function writeMomentum(layers: LayerVariables[], bns: BatchNormVariables[], m: MomentumState): void {
  if (m.layers.length !== layers.length || m.batchNorms.length !== bns.length) throw new Error('momentum state does not match the architecture');
  m.layers.forEach((l, i) => {
    assign(layers[i]!.weight.momentum, l.weight, `momentum ${i} weight`);
    assign(layers[i]!.bias.momentum, l.bias, `momentum ${i} bias`);
  });
  m.batchNorms.forEach((b, i) => {
    assign(bns[i]!.gamma.momentum, b.gamma, `bn momentum ${i} gamma`);
    assign(bns[i]!.beta.momentum, b.beta, `bn momentum ${i} beta`);
  });
}
