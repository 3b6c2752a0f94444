/**
 * Sparse forward kernels in plain JS over typed arrays, one image at a time, accumulating in float64.
 *
 * Masked weights are compiled into compressed form once per candidate:
 *  - dense [in,out]: CSR by input row (only non-empty rows kept); an input of exactly 0 skips its whole row, which
 *    pays off on MNIST pixels (~81% zero) and on ReLU outputs.
 *  - conv2d [kh,kw,cin,cout]: taps grouped by input offset (ky,kx,ci), each group listing (cout, w); an input value
 *    of exactly 0 skips its group.
 * Entries whose mask is 1 but whose weight is exactly 0 are dropped (they add exact zeros).
 *
 * Float64 accumulation makes the result at least as accurate as tfjs's float32 dense path, so the predictions agree
 * except where float32 rounding itself decides a near-tie (the released models' closest tie, gap < 0.001, agrees).
 */
import type { Conv2DOp, DenseOp, MaxPoolOp, BatchNormOp } from '../models/architectures.js';
import type { LayerParams, LayerMasks, BatchNormParams } from '../models/params.js';

/** Activation shape of one image: [H, W, C] (dense activations are [1, 1, units]). */
export type Shape3 = [number, number, number];

/** One step of the per-image JS pipeline: reads `x`, writes `y` (both float64, NHWC). */
export interface JsStep {
  readonly inSize: number;
  readonly outSize: number;
  readonly outShape: Shape3;
  run(x: Float64Array, y: Float64Array): void;
  /** Multiply-accumulates actually stored (non-zero weights × output positions), for reports. */
  readonly storedMacs: number;
}

/**
 * Per-unit liveness of a layer's input and output (see liveness()): entries reading an input known to be zero, or
 * writing an output nobody reads, are dropped. Both only remove exact-zero or unused work.
 */
export interface Live {
  /** Per input unit (dense) / input channel (conv): 1 = identically zero for every image. */
  zeroIn: Uint8Array;
  /** Per output unit / channel: 1 = read downstream. */
  neededOut: Uint8Array;
}

export function compileSparseDense(op: DenseOp, layer: LayerParams, mask: LayerMasks, live?: Live): JsStep {
  const nIn = op.inUnits;
  const nOut = op.outUnits;
  const w = layer.weight;
  const mw = mask.weight;
  const zeroIn = live?.zeroIn;
  const needed = live?.neededOut;
  const keep = (i: number, o: number) => mw[i * nOut + o] !== 0 && w[i * nOut + o] !== 0 && !(zeroIn && zeroIn[i]) && !(needed && !needed[o]);
  let nnz = 0;
  let nRows = 0;
  for (let i = 0; i < nIn; i++) {
    if (zeroIn && zeroIn[i]) continue;
    let rowNnz = 0;
    for (let o = 0; o < nOut; o++) if (keep(i, o)) rowNnz++;
    if (rowNnz > 0) nRows++;
    nnz += rowNnz;
  }
  const rows = new Int32Array(nRows);
  const ptr = new Int32Array(nRows + 1);
  const cols = new Int32Array(nnz);
  const vals = new Float64Array(nnz);
  let r = 0;
  let p = 0;
  for (let i = 0; i < nIn; i++) {
    if (zeroIn && zeroIn[i]) continue;
    const base = i * nOut;
    const start = p;
    for (let o = 0; o < nOut; o++) {
      if (keep(i, o)) {
        cols[p] = o;
        vals[p] = w[base + o]!;
        p++;
      }
    }
    if (p > start) {
      rows[r] = i;
      ptr[r] = start;
      r++;
    }
  }
  ptr[nRows] = p;
  const bias = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) bias[o] = mask.bias[o] ? layer.bias[o]! : 0;
  const relu = op.activation === 'relu';
  return {
    inSize: nIn,
    outSize: nOut,
    outShape: [1, 1, nOut],
    storedMacs: nnz,
    run(x: Float64Array, y: Float64Array): void {
      for (let o = 0; o < nOut; o++) y[o] = bias[o]!;
      for (let q = 0; q < nRows; q++) {
        const xi = x[rows[q]!]!;
        if (xi === 0) continue;
        const end = ptr[q + 1]!;
        for (let e = ptr[q]!; e < end; e++) y[cols[e]!] += xi * vals[e]!;
      }
      if (relu) for (let o = 0; o < nOut; o++) if (!(y[o]! > 0)) y[o] = 0;
    },
  };
}

/** TF 'same' padding: total padding and its leading half. */
function samePad(size: number, k: number, s: number): { out: number; before: number; total: number } {
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + k - size, 0);
  return { out, before: Math.floor(total / 2), total };
}

export function compileSparseConv(op: Conv2DOp, layer: LayerParams, mask: LayerMasks, inShape: Shape3, live?: Live): JsStep {
  const [H, W, C] = inShape;
  const K = op.kernel;
  const s = op.stride;
  const Co = op.outChannels;
  let Ho: number, Wo: number, padT = 0, padL = 0, Hp = H, Wp = W;
  if (op.padding === 'same') {
    const ph = samePad(H, K, s);
    const pw = samePad(W, K, s);
    Ho = ph.out;
    Wo = pw.out;
    padT = ph.before;
    padL = pw.before;
    Hp = H + ph.total;
    Wp = W + pw.total;
  } else {
    Ho = Math.floor((H - K) / s) + 1;
    Wo = Math.floor((W - K) / s) + 1;
  }
  const padded = Hp !== H || Wp !== W;
  const w = layer.weight;
  const mw = mask.weight;
  const zeroIn = live?.zeroIn;
  const needed = live?.neededOut;
  // Groups by input offset (ky, kx, ci): weight index g*Co + co with g = (ky*K + kx)*C + ci.
  const nG = K * K * C;
  const keep = (g: number, co: number) => mw[g * Co + co] !== 0 && w[g * Co + co] !== 0 && !(zeroIn && zeroIn[g % C]) && !(needed && !needed[co]);
  let nnz = 0;
  let groups = 0;
  for (let g = 0; g < nG; g++) {
    let n = 0;
    for (let co = 0; co < Co; co++) if (keep(g, co)) n++;
    if (n) groups++;
    nnz += n;
  }
  const gOff = new Int32Array(groups);
  const gPtr = new Int32Array(groups + 1);
  const outCh = new Int32Array(nnz);
  const vals = new Float64Array(nnz);
  let q = 0;
  let p = 0;
  for (let g = 0; g < nG; g++) {
    const start = p;
    for (let co = 0; co < Co; co++) {
      if (keep(g, co)) {
        outCh[p] = co;
        vals[p] = w[g * Co + co]!;
        p++;
      }
    }
    if (p > start) {
      const ci = g % C;
      const kx = Math.floor(g / C) % K;
      const ky = Math.floor(g / (C * K));
      gOff[q] = (ky * Wp + kx) * C + ci;
      gPtr[q] = start;
      q++;
    }
  }
  gPtr[groups] = p;
  const bias = new Float64Array(Co);
  for (let c = 0; c < Co; c++) bias[c] = mask.bias[c] ? layer.bias[c]! : 0;
  const relu = op.activation === 'relu';
  const pad = padded ? new Float64Array(Hp * Wp * C) : null;
  const outSize = Ho * Wo * Co;
  return {
    inSize: H * W * C,
    outSize,
    outShape: [Ho, Wo, Co],
    storedMacs: nnz * Ho * Wo,
    run(x: Float64Array, y: Float64Array): void {
      let src = x;
      if (pad) {
        for (let yy = 0; yy < H; yy++) pad.set(x.subarray(yy * W * C, (yy + 1) * W * C), ((yy + padT) * Wp + padL) * C);
        src = pad;
      }
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          const base = (oy * s * Wp + ox * s) * C;
          const ob = (oy * Wo + ox) * Co;
          for (let c = 0; c < Co; c++) y[ob + c] = bias[c]!;
          for (let g = 0; g < groups; g++) {
            const v = src[base + gOff[g]!]!;
            if (v === 0) continue;
            const end = gPtr[g + 1]!;
            for (let e = gPtr[g]!; e < end; e++) y[ob + outCh[e]!] += v * vals[e]!;
          }
        }
      }
      if (relu) for (let i = 0; i < outSize; i++) if (!(y[i]! > 0)) y[i] = 0;
    },
  };
}

export function compileMaxPool(op: MaxPoolOp, inShape: Shape3): JsStep {
  const [H, W, C] = inShape;
  const k = op.size;
  const s = op.stride;
  const Ho = Math.floor((H - k) / s) + 1;
  const Wo = Math.floor((W - k) / s) + 1;
  return {
    inSize: H * W * C,
    outSize: Ho * Wo * C,
    outShape: [Ho, Wo, C],
    storedMacs: 0,
    run(x: Float64Array, y: Float64Array): void {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          const ob = (oy * Wo + ox) * C;
          for (let c = 0; c < C; c++) {
            let m = -Infinity;
            for (let dy = 0; dy < k; dy++) {
              const row = ((oy * s + dy) * W + ox * s) * C + c;
              for (let dx = 0; dx < k; dx++) {
                const v = x[row + dx * C]!;
                if (v > m) m = v;
              }
            }
            y[ob + c] = m;
          }
        }
      }
    },
  };
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
    storedMacs: 0,
    run(x: Float64Array, y: Float64Array): void {
      for (let i = 0, c = 0; i < n; i++) {
        let v = x[i]! * scale[c]! + shift[c]!;
        if (relu && !(v > 0)) v = 0;
        y[i] = v;
        if (++c === C) c = 0;
      }
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
