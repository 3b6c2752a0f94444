/**
 * The two SGD update rules the trainer runs, each exactly as its recipe writes it:
 *  - 'caffe' (OLMP's LeNet solvers, spec olmp.md §1): v ← μ·v + lr·lr_mult·(g + decay·w); w ← w − v;
 *  - 'momentum' (the channel-pruning recipes, PyTorch's SGD): v ← μ·v + (g + decay·w);
 *    w ← w − lr·(nesterov ? (g + decay·w) + μ·v : v), then a held mask (pruned channels stay zero).
 * Call inside tf.tidy.
 */
import * as tf from '@tensorflow/tfjs';

export type UpdateRule = { kind: 'caffe'; momentum: number } | { kind: 'momentum'; momentum: number; nesterov: boolean };

/** One trainable array: its value, its momentum buffer, and how the rule treats it. */
export interface Trainable {
  value: tf.Variable;
  momentum: tf.Variable;
  /** Multiplier of the learning rate ('caffe': lr_mult; 1 for 'momentum'). */
  lrMult: number;
  /** Weight-decay coefficient of this array (weight_decay · decay_mult). */
  decay: number;
  /** 0/1 mask the value is held to after every update ('momentum' only), or null. */
  held: tf.Tensor | null;
}

export function applyUpdate(rule: UpdateRule, p: Trainable, g: tf.Tensor, lr: number): void {
  const grad = p.decay !== 0 ? tf.add(g, tf.mul(p.value, p.decay)) : g;
  if (rule.kind === 'caffe') {
    const v = tf.add(tf.mul(grad, lr * p.lrMult), tf.mul(p.momentum, rule.momentum));
    p.momentum.assign(v);
    p.value.assign(tf.sub(p.value, v));
    return;
  }
  const v = tf.add(tf.mul(p.momentum, rule.momentum), grad);
  const dir = rule.nesterov ? tf.add(grad, tf.mul(v, rule.momentum)) : v;
  let next = tf.sub(p.value, tf.mul(dir, lr * p.lrMult));
  if (p.held) next = tf.mul(next, p.held);
  p.momentum.assign(v);
  p.value.assign(next);
}
