/**
 * What the registry knows about each op type: its shape rule, its multiply-accumulates, its forward pass in each
 * mode, and its TensorFlow.js / Keras layer config in both directions. Adding an op type is one entry in
 * ops/index.ts (the registry is typed exhaustively over Op['type'], so a missing facet does not compile).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Op, OpType } from '../graph.js';

export type Shape3 = [number, number, number];

/** The value flowing between ops: an H×W×C image tensor, or a flat vector held as [1, 1, N]. */
export interface Value {
  shape: Shape3;
  flat: boolean;
}

/**
 * 'infer': fused ops, batchnorm on moving statistics, no dropout. 'train': plain differentiable ops, batchnorm on
 * batch statistics, seeded dropout. 'frozen': the plain differentiable ops of 'train' on a frozen network (batchnorm
 * on moving statistics, no dropout): gradients with respect to some weights of a network in inference mode.
 */
export type ForwardMode = 'infer' | 'train' | 'frozen';

export interface LayerTensors {
  weight: tf.Tensor;
  bias: tf.Tensor1D;
}
export interface BatchNormTensors {
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
  movingMean: tf.Tensor1D;
  movingVariance: tf.Tensor1D;
}

/** Everything one op's forward pass may read. */
export interface OpRun {
  mode: ForwardMode;
  inputs: tf.Tensor[];
  /** A prunable op's kernel and bias (bias of length 0 when the layer has none). */
  layer?: LayerTensors;
  bn?: BatchNormTensors;
  /** A prunable op's per-channel multiplicative gate, applied to its output before the activation. */
  gate: tf.Tensor1D | null;
  /** Receives a prunable op's output before its gate and activation. */
  tap?: (out: tf.Tensor) => void;
  /** Train mode: a batchnorm's batch mean and biased variance (for moving-average updates). */
  onBatchNormStats?: (mean: tf.Tensor1D, variance: tf.Tensor1D) => void;
  /** Train mode: seed of this op's dropout mask; null turns dropout off. */
  dropoutSeed: number | null;
  /** The first input is data: no gradient with respect to it is needed. */
  dataInput: boolean;
}

/** A Keras / tfjs-layers layer as written in a model.json topology (`config` without the wiring). */
export interface KerasLayer {
  class_name: string;
  config: Record<string, unknown>;
}

/** The weights a Keras layer stores, in the order Keras lists them, and where prunus keeps each. */
export type KerasWeight = { name: string; param: 'weight' | 'bias' | 'gamma' | 'beta' | 'movingMean' | 'movingVariance' };

export interface OpSpec<O extends Op> {
  /** The tfjs / Keras class name of the layer (also names the op in error messages). */
  className: string;
  /** 'one': exactly one input; 'many': two or more. */
  arity: 'one' | 'many';
  /** Output value from the input values; throws a UsageError naming the op (`label`) when they do not fit. */
  infer(op: O, ins: Value[], label: string): Value;
  /** Dense multiply-accumulates per image (conv and fc ops; 0 for the others). */
  macs(op: O, ins: Value[], out: Value): number;
  forward(op: O, run: OpRun): tf.Tensor;
  /**
   * The Keras layers of this op, in order (usually one; a batchnorm with an activation is two): class and config,
   * the exporter adds names and wiring. The op's weights belong to the first.
   */
  toKeras(op: O, out: Value): KerasLayer[];
  /** The Keras weights of this op, in Keras order. */
  kerasWeights(op: O): KerasWeight[];
  /** Keras class names this op is read from (className first). */
  kerasClasses: readonly string[];
  /**
   * The op for a Keras layer of one of kerasClasses, given its input values (shapes it cannot take are left to
   * infer()). Throws a UsageError naming the layer (`label`) for settings prunus does not support.
   */
  fromKeras(layer: KerasLayer, name: string, ins: Value[], label: string): O;
}

export type OpRegistry = { [K in OpType]: OpSpec<Extract<Op, { type: K }>> };
