/**
 * Training-mode building blocks of the forward pass, differentiable on every backend:
 *  - conv2d whose gradients are forward convs where the backend has no Conv2DBackpropFilter kernel (stride 1);
 *  - per-channel sums and moments as matMuls (wasm reduces non-last axes slowly);
 *  - BatchNorm with batch statistics and a closed-form backward (tfjs's own batchNorm gradient tiles its operands,
 *    which dominates a training step on wasm).
 */
import * as tf from '@tensorflow/tfjs';
import type { Conv2DOp } from '../graph.js';

/**
 * Filter gradient of a stride-1 conv as one forward conv (the batch becomes the channel axis):
 * dW[a,b,ci,co] = Σ_{n,y,x} xp[n,y+a,x+b,ci]·dy[n,y,x,co] = conv2d(xpᵀ [ci,Hp,Wp,n], dyᵀ [Ho,Wo,n,co]).
 */
function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, pad: 'valid' | 'same'): tf.Tensor4D {
  let xp = x;
  if (pad === 'same') {
    const t = Math.floor((k - 1) / 2);
    xp = tf.pad(x, [
      [0, 0],
      [t, k - 1 - t],
      [t, k - 1 - t],
      [0, 0],
    ]);
  }
  const g = tf.conv2d(tf.transpose(xp, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid');
  return tf.transpose(g, [1, 2, 0, 3]);
}

/** Input gradient of a stride-1 conv as a forward conv of the padded dy with the flipped, transposed filter. */
function inputGrad(dy: tf.Tensor4D, w: tf.Tensor4D, k: number, pad: 'valid' | 'same'): tf.Tensor4D {
  const t = pad === 'same' ? Math.floor((k - 1) / 2) : 0;
  const lo = k - 1 - t;
  const hi = pad === 'same' ? t : k - 1;
  const wf = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
  return tf.conv2d(
    tf.pad(dy, [
      [0, 0],
      [lo, hi],
      [lo, hi],
      [0, 0],
    ]),
    wf,
    1,
    'valid',
  );
}

const customConvs = new Map<string, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D>();

/** A stride-1 conv whose gradients are forward convs; `inputGrad` false returns zeros for dx (data inputs). */
function customConv(k: number, pad: 'valid' | 'same', needInputGrad: boolean): (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D {
  const key = `${k}:${pad}:${needInputGrad}`;
  let f = customConvs.get(key);
  if (!f) {
    const g = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, w, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([x, w]);
      return {
        value: tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, pad),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sw] = saved as [tf.Tensor4D, tf.Tensor4D];
          const dy4 = dy as tf.Tensor4D;
          return [needInputGrad ? inputGrad(dy4, sw, k, pad) : tf.zerosLike(sx), filterGrad(sx, dy4, k, pad)];
        },
      };
    });
    f = (x, w) => g(x, w) as tf.Tensor4D;
    customConvs.set(key, f);
  }
  return f;
}

/** The fallback conv (gradients as forward convs) regardless of the backend, stride 1 only (tests compare it). */
export function conv2dForwardConvGrads(x: tf.Tensor4D, w: tf.Tensor4D, op: Pick<Conv2DOp, 'kernel' | 'padding'>, needInputGrad = true): tf.Tensor4D {
  return customConv(op.kernel, op.padding, needInputGrad)(x, w);
}

/** True when the active backend can differentiate conv2d w.r.t. the filter natively. */
export function hasNativeFilterGrad(): boolean {
  return tf.getKernel('Conv2DBackpropFilter', tf.getBackend()) !== undefined;
}

/**
 * conv2d differentiable on every backend: where the backend lacks Conv2DBackpropFilter (wasm), stride-1 convs get
 * both gradients as forward convs. `needInputGrad` false (the input is data) skips dx.
 */
export function conv2dTrainable(x: tf.Tensor4D, w: tf.Tensor4D, op: Pick<Conv2DOp, 'kernel' | 'stride' | 'padding'>, needInputGrad = true): tf.Tensor4D {
  if (hasNativeFilterGrad() || op.stride !== 1) return tf.conv2d(x, w, op.stride, op.padding);
  return customConv(op.kernel, op.padding, needInputGrad)(x, w);
}

/** Per-channel sum over every axis but the last, as a matMul (wasm reduces non-last axes slowly): [C]. */
export function channelSum(t: tf.Tensor): tf.Tensor1D {
  const c = t.shape[t.rank - 1]!;
  const m = t.size / c;
  return tf.matMul(tf.ones([1, m]), t.reshape([m, c])).reshape([c]);
}

/** Batch mean and biased variance per channel (BatchNorm statistics). */
export function channelMoments(t: tf.Tensor): { mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const m = t.size / t.shape[t.rank - 1]!;
  const mean = tf.div(channelSum(t), m) as tf.Tensor1D;
  const variance = tf.div(channelSum(tf.square(tf.sub(t, mean))), m) as tf.Tensor1D;
  return { mean, variance };
}

const bnTrainFns = new Map<number, (x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D) => tf.Tensor>();

/**
 * BatchNorm in training mode (batch statistics, biased variance) with the closed-form backward
 *   dβ = Σdy, dγ = Σ dy·x̂, dx = γ·rstd/M · (M·dy − dβ − x̂·dγ)
 * (tfjs's own batchNorm gradient tiles its operands, which dominates a training step on wasm).
 */
export function batchNormTrain(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor {
  let f = bnTrainFns.get(epsilon);
  if (!f) {
    const g = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xx, gg, bb, save] = args as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
      const m = xx.size / xx.shape[xx.rank - 1]!;
      const mean = tf.div(channelSum(xx), m);
      const xc = tf.sub(xx, mean);
      const variance = tf.div(channelSum(tf.square(xc)), m);
      const rstd = tf.rsqrt(tf.add(variance, epsilon));
      const xhat = tf.mul(xc, rstd);
      save([xhat, rstd, gg]);
      return {
        value: tf.add(tf.mul(xhat, gg), bb),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sxhat, srstd, sg] = saved as [tf.Tensor, tf.Tensor1D, tf.Tensor1D];
          const dbeta = channelSum(dy);
          const dgamma = channelSum(tf.mul(dy, sxhat));
          const k = tf.div(tf.mul(sg, srstd), m);
          const dx = tf.mul(k, tf.sub(tf.sub(tf.mul(dy, m), dbeta), tf.mul(sxhat, dgamma)));
          return [dx, dgamma, dbeta];
        },
      };
    });
    f = (a, b, c) => g(a, b, c);
    bnTrainFns.set(epsilon, f);
  }
  return f(x, gamma, beta);
}
