/** Sparse conv2d kernels (see sparse.ts): taps grouped by input offset, gather and scatter forms. */
import type { Conv2DOp } from '../models/graph.js';
import type { LayerParams, LayerMasks } from '../models/params.js';
import { keptEntries, maskedRows, maskedBias, liveList, type ConvTaps, type JsStep, type Live, type Shape3 } from './sparse.js';
/** TF 'same' padding: output size and leading padding. */
function samePad(size: number, k: number, s: number): { out: number; before: number } {
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + k - size, 0);
  return { out, before: Math.floor(total / 2) };
}

/**
 * @param inDensity expected fraction of non-zero input values (1 when unknown); only used to pick the kernel.
 */
export function compileSparseConv(op: Conv2DOp, layer: LayerParams, mask: LayerMasks, inShape: Shape3, live?: Live, inDensity = 1, kept: Int32Array = keptEntries(layer.weight, mask.weight)): JsStep {
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
  const { start: gStart, idx: outCh, vals, nnz } = maskedRows(layer.weight, kept, nG, Co, needed, (g) => !!zeroIn && zeroIn[g % C] !== 0);
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
