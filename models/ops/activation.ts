/** In-layer activations as tf ops. */
import * as tf from '@tensorflow/tfjs';
import type { Activation } from '../graph.js';

export function activate(t: tf.Tensor, act: Activation): tf.Tensor {
  switch (act) {
    case 'linear':
      return t;
    case 'relu':
      return tf.relu(t);
    case 'relu6':
      return tf.relu6(t);
    case 'sigmoid':
      return tf.sigmoid(t);
    case 'tanh':
      return tf.tanh(t);
  }
}

/** The activation tf.fused ops apply themselves ('linear' for those they cannot: applied afterwards). */
export function fusable(act: Activation): 'linear' | 'relu' | 'relu6' | 'sigmoid' {
  return act === 'tanh' ? 'linear' : act;
}
