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
 * liveness (engine.ts) shows to read an always-zero input or to write an output that nothing reads.
 *
 * Float64 accumulation makes the result at least as accurate as tfjs's float32 dense path, so the predictions agree
 * except where float32 rounding itself decides a near-tie (the released models' closest tie, gap < 0.001, agrees).
 */
import type { Conv2DOp, DenseOp, MaxPoolOp, BatchNormOp } from '../models/graph.js';
import type { LayerParams, LayerMasks, BatchNormParams } from '../models/params.js';

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
 * Per-unit liveness of a layer's input and output (see engine.ts liveness()): entries reading an input known to be
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
 * The kept entries of a masked weight matrix [rows × cols] (row-major), compressed by row: row r's entries are
 * start[r] .. start[r+1] of (idx = column, vals = weight). An entry is kept when its mask is 1, its weight is not
 * exactly 0 and its column is needed (when `needed` is given); rows with `skipRow(r)` keep nothing.
 */
function maskedRows(
  w: Float32Array,
  mw: Uint8Array,
  rows: number,
  cols: number,
  needed: Uint8Array | undefined,
  skipRow: (r: number) => boolean,
): { start: Int32Array; idx: Int32Array; vals: Float64Array; nnz: number } {
  const start = new Int32Array(rows + 1);
  let nnz = 0;
  for (let r = 0; r < rows; r++) {
    start[r] = nnz;
    if (skipRow(r)) continue;
    const base = r * cols;
    for (let c = 0; c < cols; c++) if (mw[base + c] !== 0 && w[base + c] !== 0 && (!needed || needed[c])) nnz++;
  }
  start[rows] = nnz;
  const idx = new Int32Array(nnz);
  const vals = new Float64Array(nnz);
  for (let r = 0; r < rows; r++) {
    if (start[r + 1] === start[r]) continue;
    const base = r * cols;
    let p = start[r]!;
    for (let c = 0; c < cols; c++) {
      if (mw[base + c] !== 0 && w[base + c] !== 0 && (!needed || needed[c])) {
        idx[p] = c;
        vals[p] = w[base + c]!;
        p++;
      }
    }
  }
  return { start, idx, vals, nnz };
}

/** Bias with its mask applied, in float64; zeros for a layer without bias. */
function maskedBias(layer: LayerParams, mask: LayerMasks, nOut: number): Float64Array {
  const bias = new Float64Array(nOut);
  for (let o = 0; o < layer.bias.length; o++) bias[o] = mask.bias[o] ? layer.bias[o]! : 0;
  return bias;
}

export function compileSparseDense(op: DenseOp, layer: LayerParams, mask: LayerMasks, live?: Live): JsStep {
  const nIn = op.inUnits;
  const nOut = op.outUnits;
  const zeroIn = live?.zeroIn;
  // Row starts for every input index (empty rows have start == end), so non-zero input lists index it directly.
  const { start: rs, idx: cols, vals, nnz } = maskedRows(layer.weight, mask.weight, nIn, nOut, live?.neededOut, (i) => !!zeroIn && zeroIn[i] !== 0);
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

/** TF 'same' padding: output size and leading padding. */
function samePad(size: number, k: number, s: number): { out: number; before: number } {
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + k - size, 0);
  return { out, before: Math.floor(total / 2) };
}

/**
 * @param inDensity expected fraction of non-zero input values (1 when unknown); only used to pick the kernel.
 */
export function compileSparseConv(op: Conv2DOp, layer: LayerParams, mask: LayerMasks, inShape: Shape3, live?: Live, inDensity = 1): JsStep {
  const [H, W, C] = inShape;
  const K = op.kernel;
  const s = op.stride;
  const Co = op.outChannels;
  let Ho: number, Wo: number;
  let padT = 0;
  let padL = 0;
  if (op.padding === 'same') {
    const ph = samePad(H, K, s);
    const pw = samePad(W, K, s);
    Ho = ph.out;
    Wo = pw.out;
    padT = ph.before;
    padL = pw.before;
  } else {
    Ho = Math.floor((H - K) / s) + 1;
    Wo = Math.floor((W - K) / s) + 1;
  }
  const zeroIn = live?.zeroIn;
  const needed = live?.neededOut;
  // Groups by input offset (ky, kx, ci): weight index g*Co + co with g = (ky*K + kx)*C + ci.
  const nG = K * K * C;
  const { start: gStart, idx: outCh, vals, nnz } = maskedRows(layer.weight, mask.weight, nG, Co, needed, (g) => !!zeroIn && zeroIn[g % C] !== 0);
  const groups: number[] = [];
  for (let g = 0; g < nG; g++) if (gStart[g + 1]! > gStart[g]!) groups.push(g);
  const bias = maskedBias(layer, mask, Co);
  const relu = op.activation === 'relu';
  const outSize = Ho * Wo * Co;
  // Output channels that are read downstream; the others are never written (left finite, never read).
  const liveCo = liveList(needed, Co);

  // Operation counts (group visits) of the two kernels; MACs are the same for both.
  const gatherOps = Ho * Wo * groups.length;
  const scatterOps = H * W * C + inDensity * H * W * groups.length;
  const nGroups = groups.length;
  const gKy = new Int32Array(nGroups);
  const gKx = new Int32Array(nGroups);
  const gCi = new Int32Array(nGroups);
  const gPtr = new Int32Array(nGroups + 1);
  groups.forEach((g, q) => {
    gCi[q] = g % C;
    gKx[q] = Math.floor(g / C) % K;
    gKy[q] = Math.floor(g / (C * K));
    gPtr[q] = gStart[g]!;
  });
  gPtr[nGroups] = nnz;
  const conv: ConvTaps = { H, W, C, Ho, Wo, Co, stride: s, padT, padL, nGroups, gKy, gKx, gCi, gPtr, outCh, vals, bias, relu, liveCo };
  const base = { inSize: H * W * C, outSize, outShape: [Ho, Wo, Co] as Shape3, wantsNz: false, kept: nnz, conv };

  if (scatterOps < gatherOps) {
    // Per input channel: its groups as (ky, kx, start, end).
    const perCh: number[][] = Array.from({ length: C }, () => []);
    for (const g of groups) {
      const ci = g % C;
      const kx = Math.floor(g / C) % K;
      const ky = Math.floor(g / (C * K));
      perCh[ci]!.push(ky, kx, gStart[g]!, gStart[g + 1]!);
    }
    const chPtr = new Int32Array(C + 1);
    const flat: number[] = [];
    for (let c = 0; c < C; c++) {
      chPtr[c] = flat.length / 4;
      flat.push(...perCh[c]!);
    }
    chPtr[C] = flat.length / 4;
    const gInfo = Int32Array.from(flat);
    return {
      ...base,
      wantsNz: true,
      kernel: 'conv-scatter',
      run(x, xNz, xNzCount, y) {
        convScatter(x, xNz, xNzCount, y, W, C, Ho, Wo, Co, s, padT, padL, chPtr, gInfo, outCh, vals, bias, relu, liveCo);
        return -1;
      },
    };
  }
  // Gather: needs a zero-padded copy of the input for 'same' padding.
  const Hp = op.padding === 'same' ? Math.max(H + padT, (Ho - 1) * s + K) : H;
  const Wp = op.padding === 'same' ? Math.max(W + padL, (Wo - 1) * s + K) : W;
  const padded = Hp !== H || Wp !== W || padT !== 0 || padL !== 0;
  const pad = padded ? new Float64Array(Hp * Wp * C) : null;
  const gOff = new Int32Array(nGroups);
  for (let q = 0; q < nGroups; q++) gOff[q] = (gKy[q]! * Wp + gKx[q]!) * C + gCi[q]!;
  return {
    ...base,
    kernel: 'conv-gather',
    run(x, _xNz, _n, y) {
      let src = x;
      if (pad) {
        for (let yy = 0; yy < H; yy++) pad.set(x.subarray(yy * W * C, (yy + 1) * W * C), ((yy + padT) * Wp + padL) * C);
        src = pad;
      }
      convGather(src, y, Ho, Wo, Co, C, Wp, s, nGroups, gOff, gPtr, outCh, vals, bias, relu, liveCo);
      return -1;
    },
  };
}

function convGather(
  src: Float64Array,
  y: Float64Array,
  Ho: number,
  Wo: number,
  Co: number,
  C: number,
  Wp: number,
  s: number,
  nGroups: number,
  gOff: Int32Array,
  gPtr: Int32Array,
  outCh: Int32Array,
  vals: Float64Array,
  bias: Float64Array,
  relu: boolean,
  liveCo: Int32Array,
): void {
  initBias(y, Ho * Wo, Co, bias, liveCo);
  for (let oy = 0; oy < Ho; oy++) {
    for (let ox = 0; ox < Wo; ox++) {
      const base = (oy * s * Wp + ox * s) * C;
      const ob = (oy * Wo + ox) * Co;
      for (let g = 0; g < nGroups; g++) {
        const v = src[base + gOff[g]!]!;
        if (v === 0) continue;
        const end = gPtr[g + 1]!;
        for (let e = gPtr[g]!; e < end; e++) y[ob + outCh[e]!] += v * vals[e]!;
      }
    }
  }
  if (relu) reluChannels(y, Ho * Wo, Co, liveCo);
}

/** y = bias per channel: a memset, then the live channels whose bias is non-zero. */
function initBias(y: Float64Array, positions: number, Co: number, bias: Float64Array, liveCo: Int32Array): void {
  y.fill(0, 0, positions * Co);
  for (let j = 0; j < liveCo.length; j++) {
    const c = liveCo[j]!;
    const b = bias[c]!;
    if (b === 0) continue;
    for (let p = 0; p < positions; p++) y[p * Co + c] = b;
  }
}

function reluChannels(y: Float64Array, positions: number, Co: number, liveCo: Int32Array): void {
  const nLive = liveCo.length;
  for (let p = 0; p < positions; p++) {
    const ob = p * Co;
    for (let j = 0; j < nLive; j++) {
      const i = ob + liveCo[j]!;
      y[i] = y[i]! > 0 ? y[i]! : 0;
    }
  }
}

/** Indices with needed[i] set (all of 0..n-1 without liveness). */
function liveList(needed: Uint8Array | undefined, n: number): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (!needed || needed[i]) out.push(i);
  return Int32Array.from(out);
}

function convScatter(
  x: Float64Array,
  xNz: Int32Array,
  xNzCount: number,
  y: Float64Array,
  W: number,
  C: number,
  Ho: number,
  Wo: number,
  Co: number,
  s: number,
  padT: number,
  padL: number,
  chPtr: Int32Array,
  gInfo: Int32Array,
  outCh: Int32Array,
  vals: Float64Array,
  bias: Float64Array,
  relu: boolean,
  liveCo: Int32Array,
): void {
  const n = Ho * Wo;
  initBias(y, n, Co, bias, liveCo);
  for (let k = 0; k < xNzCount; k++) {
    const idx = xNz[k]!;
    const v = x[idx]!;
    const pix = (idx / C) | 0;
    const ci = idx - pix * C;
    const yy = (pix / W) | 0;
    const xx = pix - yy * W;
    const gEnd = chPtr[ci + 1]!;
    for (let q = chPtr[ci]!; q < gEnd; q++) {
      const ty = yy + padT - gInfo[4 * q]!;
      const tx = xx + padL - gInfo[4 * q + 1]!;
      if (ty < 0 || tx < 0) continue;
      const oy = (ty / s) | 0;
      const ox = (tx / s) | 0;
      if (oy >= Ho || ox >= Wo || oy * s !== ty || ox * s !== tx) continue;
      const ob = (oy * Wo + ox) * Co;
      const end = gInfo[4 * q + 3]!;
      for (let e = gInfo[4 * q + 2]!; e < end; e++) y[ob + outCh[e]!] += v * vals[e]!;
    }
  }
  if (relu) reluChannels(y, n, Co, liveCo);
}

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

/** Max pooling over the live channels only (the others are never read downstream). */
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
