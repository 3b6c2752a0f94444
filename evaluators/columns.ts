/**
 * Batched ("column") kernels for JS segments with conv layers: a chunk of c images at a time, activations stored
 * with the images innermost. Conv and max-pool activations are channel-major ("chw": row (ch, y, x) holds that
 * value for every image of the chunk, at ((ch*H + y)*W + x)*c .. +c); fully-connected activations are unit-major
 * ("units": row u = the flat NHWC index (y*W + x)*C + ch, at u*c .. +c), as in sparse.ts's dense column kernels.
 *
 * Bit-identity with the per-image kernels (sparse.ts) holds because every output gets the same float64 additions
 * in the same order:
 *  - conv: both per-image kernels (gather and scatter) start each output at its bias (+0 when the bias is ±0 or
 *    masked) and add the taps in increasing g = (ky*K + kx)*C + ci. Here the outer loop runs over the groups in
 *    that order, so each output, which gets at most one tap per group, sees the same sequence. Each kept weight
 *    does one axpy over all output positions × images of a row (a contiguous run of Wo·c for stride 1).
 *    Inputs that are zero add ±0, which leaves a sum unchanged (a sum that starts at +0 or a non-zero bias is never
 *    −0), so these kernels may add them (long regular loops) or skip them (the per-image kernels skip them; here
 *    zero input channels, rows and the zero border columns of the chunk's images are skipped).
 *  - max-pool: the same comparisons, per element, as sparse.ts's maxPoolKernel (its fast 2x2/2 formula or its
 *    general loop, chosen by the same condition).
 *  - fully-connected: initRows / denseColumns / finishRows from sparse.ts.
 * Channels and units that a step does not compute are all zero in the per-image path (its buffers start at zero
 * and conv kernels clear them); here they are flagged as not computed and every reader skips them.
 */
import type { ConvTaps, DenseCsr, JsStep, PoolPlan, Shape3 } from './sparse.js';
import { denseColumns, finishRows, initRows } from './sparse.js';
import { windowMax } from './sparse-layers.js';
import type { ColumnKernels } from './simd.js';

/** Images per chunk (measured: see evaluators/README.md). */
export const CONV_COLUMN_CHUNK = 64;

type ColOp =
  | { kind: 'conv'; t: ConvTaps; taps: TapsByChannel; pool: PoolStep | null }
  | ({ kind: 'pool' } & PoolStep)
  | { kind: 'flatten'; H: number; W: number; C: number }
  | { kind: 'dense'; c: DenseCsr; rows: Int32Array };

/** A JS segment with conv steps, compiled for the column kernels. */
export interface ConvColumnPlan {
  ops: ColOp[];
  inShape: Shape3;
  outSize: number;
  /** Per buffer (the input, then each op's output): rows per image. */
  sizes: number[];
  /** Per buffer: flags per channel (chw) or unit (units); 1 = computed, 0 = all zero for every image. */
  has: Uint8Array[];
  /** Row of each output unit (flat NHWC index) in the last buffer, or -1 when never computed. */
  outRow: Int32Array;
  /** Index of each output unit's flag in the last buffer's `has`. */
  outFlag: Int32Array;
  /**
   * After a run: the row of each output unit, or -1 when it is zero for every image of the chunk (not computed,
   * e.g. a channel that no kept weight or bias reaches, which a dense layer after this segment may still read).
   */
  rowNow: Int32Array;
  /** Per (input channel, row) of the chunk's input: the columns [lo, hi) outside which every image is zero. */
  span: Int32Array;
  /** The input is mostly zeros (the images): transposed by its non-zero values, with exact spans. */
  sparseInput: boolean;
}

/**
 * The column plan of a JS segment, or null when it has a step these kernels do not cover (batchnorm). `flat` are
 * the segment's ops in order with flatten marked (flatten has no JsStep), `shapes` each op's input shape.
 */
export function convColumnPlan(
  items: readonly ({ step: JsStep; inShape: Shape3 } | { flatten: true; inShape: Shape3 })[],
  /** Expected fraction of non-zero input values (picks the transposition; results do not depend on it). */
  inDensity = 1,
): ConvColumnPlan | null {
  if (items.length === 0) return null;
  const ops: ColOp[] = [];
  for (let k = 0; k < items.length; k++) {
    const it = items[k]!;
    if ('flatten' in it) {
      const [H, W, C] = it.inShape;
      ops.push({ kind: 'flatten', H, W, C });
      continue;
    }
    const st = it.step;
    if (st.conv) ops.push({ kind: 'conv', t: st.conv, taps: tapsByChannel(st.conv), pool: null });
    else if (st.pool) {
      const p = st.pool;
      const next = items[k + 1];
      ops.push({ kind: 'pool', p, fast: p.k === 2 && p.s === 2 && 2 * p.liveC.length >= p.C, units: !!next && 'flatten' in next });
    } else if (st.csr) ops.push({ kind: 'dense', c: st.csr, rows: new Int32Array(0) });
    else return null;
  }
  // A flatten right after a pool is done by the pool (it writes the units layout), and a pool right after a conv
  // by the conv (each channel is pooled as soon as it is computed).
  const noFlatten = ops.filter((op, k) => !(op.kind === 'flatten' && k > 0 && ops[k - 1]!.kind === 'pool'));
  const merged: ColOp[] = [];
  for (const op of noFlatten) {
    const prev = merged[merged.length - 1];
    if (op.kind === 'pool' && prev && prev.kind === 'conv' && !prev.pool) prev.pool = { p: op.p, fast: op.fast, units: op.units };
    else merged.push(op);
  }
  if (!merged.some((op) => op.kind === 'conv')) return null;
  if (merged[0]!.kind !== 'conv' && merged[0]!.kind !== 'pool') return null;
  // Layouts must chain: conv, pool and flatten read chw; dense reads units (a pool followed by flatten, a flatten
  // or a dense layer before it).
  for (let k = 1; k < merged.length; k++) {
    const prev = merged[k - 1]!;
    const op = merged[k]!;
    const unitsBefore = prev.kind === 'dense' || prev.kind === 'flatten' || (prev.kind === 'pool' && prev.units) || (prev.kind === 'conv' && !!prev.pool?.units);
    if (op.kind === 'dense' ? !unitsBefore : unitsBefore && !(op.kind === 'flatten' && prev.kind === 'dense')) return null;
  }
  // Dense rows computed: those the next dense layer reads, all for a last layer.
  for (let k = 0; k < merged.length; k++) {
    const op = merged[k]!;
    if (op.kind !== 'dense') continue;
    const next = merged[k + 1];
    if (next && next.kind !== 'dense') return null;
    const n = op.c.nOut;
    const rows: number[] = [];
    for (let o = 0; o < n; o++) if (!next || next.c.rs[o + 1]! > next.c.rs[o]!) rows.push(o);
    op.rows = Int32Array.from(rows);
  }
  const inShape = items[0]!.inShape;
  const sizes: number[] = [inShape[0] * inShape[1] * inShape[2]];
  const flags: number[] = [inShape[2]];
  for (const op of merged) {
    const pool = op.kind === 'pool' ? op : op.kind === 'conv' ? op.pool : null;
    if (pool) {
      const n = pool.p.Ho * pool.p.Wo * pool.p.C;
      sizes.push(n);
      flags.push(pool.units ? n : pool.p.C);
    } else if (op.kind === 'conv') {
      sizes.push(op.t.Ho * op.t.Wo * op.t.Co);
      flags.push(op.t.Co);
    } else if (op.kind === 'flatten') {
      sizes.push(op.H * op.W * op.C);
      flags.push(op.H * op.W * op.C);
    } else if (op.kind === 'dense') {
      sizes.push(op.c.nOut);
      flags.push(op.c.nOut);
    }
  }
  const outSize = sizes[sizes.length - 1]!;
  const last = merged[merged.length - 1]!;
  const outRow = new Int32Array(outSize);
  const outFlag = new Int32Array(outSize);
  const lastPool = last.kind === 'pool' ? last : last.kind === 'conv' ? last.pool : null;
  if ((last.kind === 'conv' || last.kind === 'pool') && !lastPool?.units) {
    // chw: unit u = pix*C + ch is row ch*pixels + pix; flags per channel.
    const [Ho, Wo, C] = lastPool ? [lastPool.p.Ho, lastPool.p.Wo, lastPool.p.C] : last.kind === 'conv' ? [last.t.Ho, last.t.Wo, last.t.Co] : [0, 0, 1];
    for (let u = 0; u < outSize; u++) {
      const ch = u % C;
      outRow[u] = ch * Ho * Wo + (u - ch) / C;
      outFlag[u] = ch;
    }
  } else {
    for (let u = 0; u < outSize; u++) {
      outRow[u] = u;
      outFlag[u] = u;
    }
  }
  return {
    ops: merged,
    inShape,
    outSize,
    sizes,
    has: flags.map((n) => new Uint8Array(n)),
    outRow,
    outFlag,
    rowNow: new Int32Array(outSize),
    span: new Int32Array(2 * inShape[0] * inShape[2]),
    sparseInput: inDensity < 0.5,
  };
}


/**
 * Runs the plan on images j0 .. j0+c of `input` (float32, image-major, sizes[0] values per image) → the last
 * buffer (rows of stride c; unit u of image j is at rowNow[u]*c + j, or 0 when rowNow[u] is −1).
 */
export function runConvColumns(
  plan: ConvColumnPlan,
  K: ColumnKernels,
  input: Float32Array,
  j0: number,
  c: number,
  /** The same images in sparse form (per image: indices and values of the non-zero entries), and the index there of input's image 0. */
  sparse?: { csr: { ptr: Int32Array; idx: Int32Array; val: Float64Array }; base: number },
): Float64Array {
  const { ops, sizes, has, span } = plan;
  const [H, W, C] = plan.inShape;
  // Buffers: one per activation, then the plane of a conv whose pool is fused, all views of the kernels' arena.
  let planeLen = 0;
  for (const op of ops) if (op.kind === 'conv' && op.pool) planeLen = Math.max(planeLen, op.t.Ho * op.t.Wo * c);
  let total = planeLen;
  for (const n of sizes) total += n * c;
  const arena = K.arena(total);
  const bufs: Float64Array[] = [];
  let off = 0;
  for (const n of sizes) {
    bufs.push(arena.subarray(off, off + n * c));
    off += n * c;
  }
  const plane = arena.subarray(off, off + planeLen);
  const x0 = bufs[0]!;
  // Transpose to chw: x0[((ch*H + y)*W + x)*c + j] = input[(j0 + j)*n + (y*W + x)*C + ch], and for every input row
  // (ch, y) the columns [lo, hi) outside which every image of the chunk is zero.
  const n = sizes[0]!;
  const rows = C * H;
  if (sparse) {
    // Mostly-zero input (images): clear, then write only the non-zero values.
    x0.fill(0, 0, n * c);
    for (let r = 0; r < rows; r++) {
      span[2 * r] = W;
      span[2 * r + 1] = 0;
    }
    const { ptr, idx, val } = sparse.csr;
    for (let j = 0; j < c; j++) {
      const img = sparse.base + j0 + j;
      for (let p = ptr[img]!, end = ptr[img + 1]!; p < end; p++) {
        const i = idx[p]!;
        const pix = (i / C) | 0;
        const ch = i - pix * C;
        const y = (pix / W) | 0;
        const x = pix - y * W;
        const r = ch * H + y;
        x0[(r * W + x) * c + j] = val[p]!;
        if (x < span[2 * r]!) span[2 * r] = x;
        if (x >= span[2 * r + 1]!) span[2 * r + 1] = x + 1;
      }
    }
  } else if (plan.sparseInput) {
    x0.fill(0, 0, n * c);
    for (let r = 0; r < rows; r++) {
      span[2 * r] = W;
      span[2 * r + 1] = 0;
    }
    for (let j = 0; j < c; j++) {
      let q = (j0 + j) * n;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          for (let ch = 0; ch < C; ch++, q++) {
            const v = input[q]!;
            if (v === 0) continue;
            const r = ch * H + y;
            x0[(r * W + x) * c + j] = v;
            if (x < span[2 * r]!) span[2 * r] = x;
            if (x >= span[2 * r + 1]!) span[2 * r + 1] = x + 1;
          }
        }
      }
    }
  } else {
    const pixels = H * W;
    for (let j = 0; j < c; j++) {
      const ib = (j0 + j) * n;
      if (C === 1) for (let p = 0; p < pixels; p++) x0[p * c + j] = input[ib + p]!;
      else for (let p = 0, q = ib; p < pixels; p++) for (let ch = 0; ch < C; ch++, q++) x0[(ch * pixels + p) * c + j] = input[q]!;
    }
    for (let r = 0; r < rows; r++) {
      span[2 * r] = 0;
      span[2 * r + 1] = W;
    }
  }
  has[0]!.fill(1);
  let x = x0;
  for (let k = 0; k < ops.length; k++) {
    const op = ops[k]!;
    const y = bufs[k + 1]!;
    const hx = has[k]!;
    const hy = has[k + 1]!;
    if (op.kind === 'conv') convColumns(K, op.t, op.taps, x, hx, k === 0 ? span : null, y, hy, c, op.pool, op.pool ? plane : null);
    else if (op.kind === 'pool') poolColumns(K, op, x, hx, y, hy, c);
    else if (op.kind === 'flatten') flattenColumns(op.H, op.W, op.C, x, hx, y, hy, c);
    else {
      initRows(y, c, op.c.bias, op.rows);
      denseColumns(op.c, x, hx, y, c);
      finishRows(y, c, op.rows, op.c.relu, hy);
    }
    x = y;
  }
  const hl = has[ops.length]!;
  const { outRow, outFlag, rowNow } = plan;
  for (let u = 0; u < rowNow.length; u++) rowNow[u] = hl[outFlag[u]!] ? outRow[u]! : -1;
  return x;
}

/** A conv layer's taps listed per output channel, each list in increasing g (the per-image kernels' order). */
export interface TapsByChannel {
  /** Taps of channel co: ptr[co] .. ptr[co+1]. */
  ptr: Int32Array;
  ky: Int32Array;
  kx: Int32Array;
  ci: Int32Array;
  w: Float64Array;
}

export function tapsByChannel(t: ConvTaps): TapsByChannel {
  const n = t.gPtr[t.nGroups]!;
  const ptr = new Int32Array(t.Co + 1);
  for (let e = 0; e < n; e++) ptr[t.outCh[e]! + 1]!++;
  for (let co = 0; co < t.Co; co++) ptr[co + 1]! += ptr[co]!;
  const fill = ptr.slice(0, t.Co);
  const ky = new Int32Array(n);
  const kx = new Int32Array(n);
  const ci = new Int32Array(n);
  const w = new Float64Array(n);
  for (let q = 0; q < t.nGroups; q++) {
    for (let e = t.gPtr[q]!; e < t.gPtr[q + 1]!; e++) {
      const at = fill[t.outCh[e]!]!++;
      ky[at] = t.gKy[q]!;
      kx[at] = t.gKx[q]!;
      ci[at] = t.gCi[q]!;
      w[at] = t.vals[e]!;
    }
  }
  return { ptr, ky, kx, ci, w };
}

/**
 * Conv over a chunk: x chw [C][H][W] (channels with hx[ch] = 0 are all zero); only the live output channels are
 * computed. One output channel at a time, one output row at a time: the row (Wo·c values) starts at the bias and
 * gets one axpy per tap of the channel, in increasing g, while it stays in L1. Without `pool` the result is y chw
 * [Co][Ho][Wo]; with `pool` each channel's plane goes to `plane` and is pooled into y right away (poolChannel).
 * `span` (first layer only) bounds the non-zero columns of each input row.
 */
export function convColumns(
  K: ColumnKernels,
  t: ConvTaps,
  taps: TapsByChannel,
  x: Float64Array,
  hx: Uint8Array,
  span: Int32Array | null,
  y: Float64Array,
  hy: Uint8Array,
  c: number,
  pool: PoolStep | null,
  plane: Float64Array | null,
): void {
  const { H, W, Ho, Wo, stride: s, padT, padL, bias, liveCo, relu } = t;
  const { ptr, ky: tKy, kx: tKx, ci: tCi, w: tW } = taps;
  const rowLen = Wo * c;
  const planeLen = Ho * rowLen;
  hy.fill(0);
  for (let k = 0; k < liveCo.length; k++) {
    const co = liveCo[k]!;
    const b0 = bias[co]!;
    // As initBias: a zero bias (either sign) starts the sum at +0.
    const b = b0 === 0 ? 0 : b0;
    const out = pool ? plane! : y;
    const pb = pool ? 0 : co * planeLen;
    const e0 = ptr[co]!;
    const e1 = ptr[co + 1]!;
    for (let oy = 0; oy < Ho; oy++) {
      const yb = pb + oy * rowLen;
      out.fill(b, yb, yb + rowLen);
      for (let e = e0; e < e1; e++) {
        const ci = tCi[e]!;
        if (hx[ci] === 0) continue;
        const ky = tKy[e]!;
        const iy = oy * s + ky - padT;
        if (iy < 0 || iy >= H) continue; // padding: zero
        const kx = tKx[e]!;
        const r = ci * H + iy;
        // Outputs whose input column ix = ox*s + kx - padL lies inside the input (or inside the row's span).
        const lo = span ? span[2 * r]! : 0;
        const hi = span ? span[2 * r + 1]! : W;
        const a = Math.max(0, Math.ceil((lo + padL - kx) / s));
        const z = Math.min(Wo, Math.floor((hi - 1 + padL - kx) / s) + 1);
        if (a >= z) continue;
        const w = tW[e]!;
        const xb = r * W * c;
        if (s === 1) K.axpy(out, yb + a * c, x, xb + (a + kx - padL) * c, (z - a) * c, w);
        else for (let ox = a; ox < z; ox++) K.axpy(out, yb + ox * c, x, xb + (ox * s + kx - padL) * c, c, w);
      }
      if (relu) for (let i = yb, end = yb + rowLen; i < end; i++) out[i] = out[i]! > 0 ? out[i]! : 0;
    }
    if (pool) poolChannel(K, pool, plane!, 0, co, y, hy, c);
    else hy[co] = 1;
  }
}

/** A max-pool step: the plan, maxPoolKernel's choice of formula, and the output layout (units: flatten follows). */
export interface PoolStep {
  p: PoolPlan;
  fast: boolean;
  units: boolean;
}

/**
 * Max pool over a chunk: x chw [C][H][W]; y chw [C][Ho][Wo], or units ((oy*Wo + ox)*C + ch, the flatten that
 * follows) when `units`. Per element the comparisons of maxPoolKernel (fast 2x2/2 formula or general loop).
 */
export function poolColumns(K: ColumnKernels, ps: PoolStep, x: Float64Array, hx: Uint8Array, y: Float64Array, hy: Uint8Array, c: number): void {
  const { H, W, liveC } = ps.p;
  hy.fill(0);
  for (let jc = 0; jc < liveC.length; jc++) {
    const ch = liveC[jc]!;
    if (hx[ch] === 0) continue; // max of zeros: zero, so not computed
    poolChannel(K, ps, x, ch * H * W * c, ch, y, hy, c);
  }
}

/** Pools channel ch, whose plane [H][W] (stride c) starts at x[xb], into y; sets its flags. */
function poolChannel(K: ColumnKernels, ps: PoolStep, x: Float64Array, xb: number, ch: number, y: Float64Array, hy: Uint8Array, c: number): void {
  const { W, C, Ho, Wo, k, s } = ps.p;
  const { fast, units } = ps;
  if (!units) hy[ch] = 1;
  for (let oy = 0; oy < Ho; oy++) {
    for (let ox = 0; ox < Wo; ox++) {
      const u = (oy * Wo + ox) * C + ch;
      const yo = (units ? u : (ch * Ho + oy) * Wo + ox) * c;
      const ib = xb + (oy * s * W + ox * s) * c;
      if (k === 2) {
        // maxPoolKernel's fast formula, or its general loop's order for a 2x2 window.
        const row = W * c;
        if (fast) K.pool4(y, yo, x, ib, ib + c, ib + row, ib + row + c, c);
        else K.pool4s(y, yo, x, ib, ib + c, ib + row, ib + row + c, c);
      } else {
        for (let j = 0; j < c; j++) y[yo + j] = windowMax(x, ib + j, k, W * c, c);
      }
      if (units) {
        let any = 0;
        for (let j = 0; j < c; j++) any |= y[yo + j] !== 0 ? 1 : 0;
        hy[u] = any;
      }
    }
  }
}

/** chw → units (flat NHWC order) for the channels computed. */
function flattenColumns(H: number, W: number, C: number, x: Float64Array, hx: Uint8Array, y: Float64Array, hy: Uint8Array, c: number): void {
  hy.fill(0);
  const pixels = H * W;
  for (let ch = 0; ch < C; ch++) {
    if (hx[ch] === 0) continue;
    for (let p = 0; p < pixels; p++) {
      const u = p * C + ch;
      const xo = (ch * pixels + p) * c;
      let any = 0;
      for (let j = 0; j < c; j++) {
        const v = x[xo + j]!;
        y[u * c + j] = v;
        any |= v !== 0 ? 1 : 0;
      }
      hy[u] = any;
    }
  }
}
