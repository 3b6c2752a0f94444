/** The non-prunable layers on the sparse JS path (max pooling, batchnorm) and the prediction's argmax. */
import type { MaxPoolOp, BatchNormOp } from '../models/graph.js';
import type { BatchNormParams } from '../models/params.js';
import { liveList, type JsStep, type Live, type Shape3 } from './sparse.js';
export function compileMaxPool(op: MaxPoolOp, inShape: Shape3, live?: Live): JsStep {
  const [H, W, C] = inShape;
  const liveC = liveList(live?.neededOut, C);
  const k = op.size;
  const s = op.stride;
  const Ho = Math.floor((H - k) / s) + 1;
  const Wo = Math.floor((W - k) / s) + 1;
  return {
    inSize: H * W * C,
    outSize: Ho * Wo * C,
    outShape: [Ho, Wo, C],
    wantsNz: false,
    kept: 0,
    kernel: 'maxpool',
    pool: { H, W, C, Ho, Wo, k, s, liveC },
    run(x, _xNz, _n, y) {
      maxPoolKernel(x, y, W, C, Ho, Wo, k, s, liveC);
      return -1;
    },
  };
}

/**
 * Max of the k×k window whose first element is x[i], rows `row` apart and columns `col` apart: m = first, then
 * m = v > m ? v : m over the rest in row order (the general max-pool order, shared by the per-image and column kernels).
 */
export function windowMax(x: Float64Array, i: number, k: number, row: number, col: number): number {
  let m = x[i]!;
  for (let dy = 0; dy < k; dy++) {
    const r = i + dy * row;
    for (let dx = dy === 0 ? 1 : 0; dx < k; dx++) {
      const v = x[r + dx * col]!;
      m = v > m ? v : m;
    }
  }
  return m;
}

function maxPoolKernel(x: Float64Array, y: Float64Array, W: number, C: number, Ho: number, Wo: number, k: number, s: number, liveC: Int32Array): void {
  const nLive = liveC.length;
  if (k === 2 && s === 2 && 2 * nLive >= C) {
    // The common 2x2/2 window over all channels, channel-innermost (contiguous reads).
    const row = W * C;
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        const ob = (oy * Wo + ox) * C;
        const ib = (2 * oy * W + 2 * ox) * C;
        for (let c = 0; c < C; c++) {
          const i = ib + c;
          const a = x[i]!;
          const b = x[i + C]!;
          const d = x[i + row]!;
          const e = x[i + row + C]!;
          const m1 = a > b ? a : b;
          const m2 = d > e ? d : e;
          y[ob + c] = m1 > m2 ? m1 : m2;
        }
      }
    }
    return;
  }
  for (let oy = 0; oy < Ho; oy++) {
    for (let ox = 0; ox < Wo; ox++) {
      const ob = (oy * Wo + ox) * C;
      const ib = (oy * s * W + ox * s) * C;
      for (let j = 0; j < nLive; j++) {
        const c = liveC[j]!;
        y[ob + c] = windowMax(x, ib + c, k, W * C, C);
      }
    }
  }
}

export function compileBatchNorm(op: BatchNormOp, bn: BatchNormParams, inShape: Shape3): JsStep {
  const [H, W, C] = inShape;
  const n = H * W * C;
  const scale = new Float64Array(C);
  const shift = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    scale[c] = bn.gamma[c]! / Math.sqrt(bn.movingVariance[c]! + op.epsilon);
    shift[c] = bn.beta[c]! - bn.movingMean[c]! * scale[c]!;
  }
  const relu = op.activation === 'relu';
  return {
    inSize: n,
    outSize: n,
    outShape: inShape,
    wantsNz: false,
    kept: 0,
    kernel: 'batchnorm',
    run(x, _xNz, _n, y) {
      for (let i = 0, c = 0; i < n; i++) {
        let v = x[i]! * scale[c]! + shift[c]!;
        if (relu && !(v > 0)) v = 0;
        y[i] = v;
        if (++c === C) c = 0;
      }
      return -1;
    },
  };
}

/** Index of the first maximum (tf.argMax / countCorrect tie rule). */
export function argmax64(v: Float64Array, n: number): number {
  let best = 0;
  let bv = v[0]!;
  for (let c = 1; c < n; c++) {
    if (v[c]! > bv) {
      bv = v[c]!;
      best = c;
    }
  }
  return best;
}

