/**
 * Sparse forward kernels in plain JS over typed arrays, one image at a time, accumulating in float64.
 *
 * Masked weights are compiled into compressed form once per candidate:
 *  - dense [in,out]: CSR by input row. The kernel walks the list of the input's non-zero entries (MNIST pixels are
 *    ~81% zero, ReLU outputs often half), so its cost is about (non-zero inputs × their kept weights).
 *  - conv2d [kh,kw,cin,cout]: taps grouped by input offset (ky,kx,ci), each group listing (cout, w). Two kernels:
 *    gather (per output position, each group reads one input, skipping zeros) and scatter (per non-zero input,
 *    each of its channel's groups adds into the outputs it reaches). Scatter wins on sparse inputs such as images;
 *    compileSparseConv picks by an operation count from the expected input density.
 * Entries whose mask is 1 but whose weight is exactly 0 are dropped (they add exact zeros), and so are entries that
 * liveness (liveness.ts) shows to read an always-zero input or to write an output that nothing reads.
 *
 * Float64 accumulation makes the result at least as accurate as tfjs's float32 dense path, so the predictions agree
 * except where float32 rounding itself decides a near-tie (the released models' closest tie, gap < 0.001, agrees).
 */
import type { DenseOp } from '../models/graph.js';
import type { LayerParams, LayerMasks } from '../models/params.js';

/** Activation shape of one image: [H, W, C] (dense activations are [1, 1, units]). */
export type Shape3 = [number, number, number];

/**
 * One step of the per-image JS pipeline: reads `x`, writes `y` (float64, NHWC). Steps that want the input's
 * non-zero index list get it in `xNz[0..xNzCount)`; steps that produce one for their output write it to `yNz` and
 * return its length, others return -1.
 */
export interface JsStep {
  readonly inSize: number;
  readonly outSize: number;
  readonly outShape: Shape3;
  readonly wantsNz: boolean;
  run(x: Float64Array, xNz: Int32Array, xNzCount: number, y: Float64Array, yNz: Int32Array): number;
  /** Weights kept after liveness (for reports and tests). */
  readonly kept: number;
  readonly kernel: string;
  /** Fully-connected steps: the compiled CSR, for the batched column kernels below. */
  readonly csr?: DenseCsr;
  /** Conv steps: the compiled taps, for the batched conv column kernels (columns.ts). */
  readonly conv?: ConvTaps;
  /** Max-pool steps: the window, for the batched column kernels (columns.ts). */
  readonly pool?: PoolPlan;
}

/**
 * A conv layer's kept taps grouped by input offset, in increasing g = (ky*K + kx)*C + ci (the order in which both
 * per-image kernels add them into every output): group q reads input channel gCi[q] at offset (gKy[q], gKx[q]) and
 * lists (outCh[e], vals[e]) for e in gPtr[q] .. gPtr[q+1]. `liveCo`: the output channels computed.
 */
export interface ConvTaps {
  H: number;
  W: number;
  C: number;
  Ho: number;
  Wo: number;
  Co: number;
  stride: number;
  padT: number;
  padL: number;
  nGroups: number;
  gKy: Int32Array;
  gKx: Int32Array;
  gCi: Int32Array;
  gPtr: Int32Array;
  outCh: Int32Array;
  vals: Float64Array;
  bias: Float64Array;
  relu: boolean;
  liveCo: Int32Array;
}

/** A max-pool step: window k, stride s over [H, W, C]; `liveC`: the channels the per-image kernel's general loop pools. */
export interface PoolPlan {
  H: number;
  W: number;
  C: number;
  Ho: number;
  Wo: number;
  k: number;
  s: number;
  liveC: Int32Array;
}

/**
 * A fully-connected layer compiled to CSR by input row: row i lists (cols[e], vals[e]) for e in rs[i]..rs[i+1],
 * output units in increasing order; `bias` is the masked bias.
 */
export interface DenseCsr {
  nIn: number;
  nOut: number;
  rs: Int32Array;
  cols: Int32Array;
  vals: Float64Array;
  bias: Float64Array;
  relu: boolean;
}

/**
 * Per-unit liveness of a layer's input and output (see liveness.ts): entries reading an input known to be
 * zero, or writing an output nobody reads, are dropped. Both only remove exact-zero or unused work.
 */
export interface Live {
  /** Per input unit (dense) / input channel (conv): 1 = identically zero for every image. */
  zeroIn: Uint8Array;
  /** Per output unit / channel: 1 = read downstream. */
  neededOut: Uint8Array;
}

/** Writes the indices of x's non-zero entries to nz; returns how many. Branch-free. */
export function compactNonZero(x: Float64Array, n: number, nz: Int32Array): number {
  let k = 0;
  for (let i = 0; i < n; i++) {
    nz[k] = i;
    k += x[i] !== 0 ? 1 : 0;
  }
  return k;
}

/**
 * Indices (increasing) of a layer's kept weights: mask 1 and weight not exactly 0. One scan of the masks; liveness and
 * the CSR builders then visit only these.
 */
let keptScratch = new Int32Array(0);
export function keptEntries(w: Float32Array, mw: Uint8Array): Int32Array {
  if (keptScratch.length < w.length) keptScratch = new Int32Array(w.length);
  const s = keptScratch;
  let k = 0;
  for (let i = 0; i < w.length; i++) {
    s[k] = i;
    k += mw[i] !== 0 && w[i] !== 0 ? 1 : 0;
  }
  return s.slice(0, k);
}

/**
 * The kept entries (keptEntries) of a weight matrix [rows × cols] (row-major), compressed by row: row r's entries are
 * start[r] .. start[r+1] of (idx = column, vals = weight). An entry is kept when its column is needed (when `needed`
 * is given); rows with `skipRow(r)` keep nothing.
 */
export function maskedRows(
  w: Float32Array,
  kept: Int32Array,
  rows: number,
  cols: number,
  needed: Uint8Array | undefined,
  skipRow: (r: number) => boolean,
): { start: Int32Array; idx: Int32Array; vals: Float64Array; nnz: number } {
  const start = new Int32Array(rows + 1);
  const skip = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) skip[r] = skipRow(r) ? 1 : 0;
  for (let q = 0; q < kept.length; q++) {
    const e = kept[q]!;
    const r = (e / cols) | 0;
    if (!skip[r] && (!needed || needed[e - r * cols])) start[r + 1]!++;
  }
  for (let r = 0; r < rows; r++) start[r + 1]! += start[r]!;
  const nnz = start[rows]!;
  const idx = new Int32Array(nnz);
  const vals = new Float64Array(nnz);
  let p = 0;
  for (let q = 0; q < kept.length; q++) {
    const e = kept[q]!;
    const r = (e / cols) | 0;
    const c = e - r * cols;
    if (!skip[r] && (!needed || needed[c])) {
      idx[p] = c;
      vals[p] = w[e]!;
      p++;
    }
  }
  return { start, idx, vals, nnz };
}

/** Bias with its mask applied, in float64; zeros for a layer without bias. */
export function maskedBias(layer: LayerParams, mask: LayerMasks, nOut: number): Float64Array {
  const bias = new Float64Array(nOut);
  for (let o = 0; o < layer.bias.length; o++) bias[o] = mask.bias[o] ? layer.bias[o]! : 0;
  return bias;
}

export function compileSparseDense(op: DenseOp, layer: LayerParams, mask: LayerMasks, live?: Live, kept: Int32Array = keptEntries(layer.weight, mask.weight)): JsStep {
  const nIn = op.inUnits;
  const nOut = op.outUnits;
  const zeroIn = live?.zeroIn;
  // Row starts for every input index (empty rows have start == end), so non-zero input lists index it directly.
  const { start: rs, idx: cols, vals, nnz } = maskedRows(layer.weight, kept, nIn, nOut, live?.neededOut, (i) => !!zeroIn && zeroIn[i] !== 0);
  const bias = maskedBias(layer, mask, nOut);
  const relu = op.activation === 'relu';
  return {
    inSize: nIn,
    outSize: nOut,
    outShape: [1, 1, nOut],
    wantsNz: true,
    kept: nnz,
    kernel: 'csr',
    csr: { nIn, nOut, rs, cols, vals, bias, relu },
    run(x, xNz, xNzCount, y, yNz) {
      return denseKernel(x, xNz, xNzCount, y, yNz, rs, cols, vals, bias, nOut, relu);
    },
  };
}

function denseKernel(
  x: Float64Array,
  xNz: Int32Array,
  xNzCount: number,
  y: Float64Array,
  yNz: Int32Array,
  rs: Int32Array,
  cols: Int32Array,
  vals: Float64Array,
  bias: Float64Array,
  nOut: number,
  relu: boolean,
): number {
  y.set(bias);
  for (let k = 0; k < xNzCount; k++) {
    const i = xNz[k]!;
    const end = rs[i + 1]!;
    const xi = x[i]!;
    for (let e = rs[i]!; e < end; e++) y[cols[e]!] += xi * vals[e]!;
  }
  let n = 0;
  if (relu) {
    for (let o = 0; o < nOut; o++) {
      const v = y[o]! > 0 ? y[o]! : 0;
      y[o] = v;
      yNz[n] = o;
      n += v !== 0 ? 1 : 0;
    }
  } else {
    for (let o = 0; o < nOut; o++) {
      yNz[n] = o;
      n += y[o] !== 0 ? 1 : 0;
    }
  }
  return n;
}

/*
 * Batched ("column") kernels for fully-connected layers: a batch of b images at a time, activations unit-major
 * (row u = unit u's value for each image, u*b .. u*b+b). For every output (o, image) the additions happen in the
 * same order as in denseKernel — bias first, then the inputs in increasing index order, in float64 — so results are
 * bit-identical to the per-image path. These kernels also add the inputs that are zero (x*w = ±0 leaves a sum
 * unchanged, and the sign of a zero is lost to ReLU, argmax and margins alike) where the per-image kernel skips
 * them: the loops are long and regular instead of short and data-dependent.
 */

/** Rows `rows` of y (stride b) = bias. */
export function initRows(y: Float64Array, b: number, bias: Float64Array, rows: Int32Array): void {
  for (let k = 0; k < rows.length; k++) {
    const o = rows[k]!;
    y.fill(bias[o]!, o * b, o * b + b);
  }
}

/**
 * ReLU in place over rows `rows` of y (stride b); rowNz[o] = 1 when some value of row o is non-zero afterwards
 * (with relu = false, only the flags).
 */
export function finishRows(y: Float64Array, b: number, rows: Int32Array, relu: boolean, rowNz: Uint8Array): void {
  for (let k = 0; k < rows.length; k++) {
    const o = rows[k]!;
    const end = o * b + b;
    if (relu) {
      // Branch-free: about half the values are negative in no pattern, and a compare (or Math.max, which V8
      // lowers with branches for NaN and -0) mispredicts ~5× the cost of the loop. (v + |v|) / 2 is exactly
      // max(v, 0) for finite v (2v is exact, and so is halving it); the flag is a sum of non-negatives.
      let sum = 0;
      for (let j = o * b; j < end; j++) {
        const x = y[j]!;
        const v = (x + Math.abs(x)) * 0.5;
        y[j] = v;
        sum += v;
      }
      rowNz[o] = sum > 0 ? 1 : 0;
    } else {
      let any = 0;
      for (let j = o * b; j < end; j++) any |= y[j] !== 0 ? 1 : 0;
      rowNz[o] = any;
    }
  }
}

/**
 * y += x·W for a batch whose inputs are unit-major rows of x (stride b); rows with rowNz[i] = 0 are all zero and
 * skipped. y's rows must hold the bias already.
 */
export function denseColumns(c: DenseCsr, x: Float64Array, rowNz: Uint8Array, y: Float64Array, b: number): void {
  const { rs, cols, vals, nIn } = c;
  for (let i = 0; i < nIn; i++) {
    const e1 = rs[i + 1]!;
    let e = rs[i]!;
    if (e === e1 || rowNz[i] === 0) continue;
    const xb = i * b;
    for (; e < e1; e++) {
      const w = vals[e]!;
      const ob = cols[e]! * b;
      for (let j = 0; j < b; j++) y[ob + j] += x[xb + j]! * w;
    }
  }
}

/**
 * y += x·W for a batch given pixel-major (CSC): the non-zero values of input i are val[p] for images img[p],
 * p in ptr[base+i] .. ptr[base+i+1] (image indices within the batch, increasing).
 */
export function denseColumnsCsc(c: DenseCsr, ptr: Int32Array, base: number, img: Int32Array, val: Float64Array, y: Float64Array, b: number): void {
  const { rs, cols, vals, nIn } = c;
  for (let i = 0; i < nIn; i++) {
    const e1 = rs[i + 1]!;
    let e = rs[i]!;
    if (e === e1) continue;
    const p0 = ptr[base + i]!;
    const p1 = ptr[base + i + 1]!;
    if (p0 === p1) continue;
    for (; e < e1; e++) {
      const w = vals[e]!;
      const ob = cols[e]! * b;
      for (let p = p0; p < p1; p++) y[ob + img[p]!] += val[p]! * w;
    }
  }
}


/** Indices with needed[i] set (all of 0..n-1 without liveness). */
export function liveList(needed: Uint8Array | undefined, n: number): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (!needed || needed[i]) out.push(i);
  return Int32Array.from(out);
}
