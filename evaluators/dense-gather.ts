/**
 * Fully-connected column segments on the WebAssembly gather kernel (simd.ts): each output unit of a batch of b images
 * is computed in one pass, bias first and then its inputs in increasing index order, two images per f64x2 lane pair.
 * The additions are those of sparse.ts's column kernels in the same order (each output's sum starts at the bias and
 * adds its inputs by increasing index, in float64), so the values are the same bits; like those kernels, inputs that
 * are zero for some images of the batch are added as ±0 products, and inputs zero for the whole batch are skipped.
 *
 * The first layer reads the evaluation images, laid out unit-major per batch once per image set in the kernels' pinned
 * region (pixel i of batch k: b values in a row), so a candidate reads them without any per-candidate preparation.
 */
import type { DenseCsr } from './sparse.js';
import { finishRows } from './sparse.js';
import type { ColumnKernels } from './simd.js';

/** Images per pass of the output units (a block of every input row stays in the cache meanwhile). */
const LANE_BLOCK = 256;

/** A layer's kept weights by output unit: unit o's inputs inIdx[p] (increasing) with weights w[p], p in ptr[o] .. ptr[o+1]. */
export interface DenseCsc {
  ptr: Int32Array;
  inIdx: Int32Array;
  w: Float64Array;
  /** Largest number of inputs of one unit. */
  most: number;
}

export function byOutput(c: DenseCsr): DenseCsc {
  const { nIn, nOut, rs, cols, vals } = c;
  const ptr = new Int32Array(nOut + 1);
  for (let e = 0; e < rs[nIn]!; e++) ptr[cols[e]! + 1]!++;
  let most = 0;
  for (let o = 0; o < nOut; o++) {
    most = Math.max(most, ptr[o + 1]!);
    ptr[o + 1]! += ptr[o]!;
  }
  const fill = ptr.slice(0, nOut);
  const inIdx = new Int32Array(rs[nIn]!);
  const w = new Float64Array(rs[nIn]!);
  // Rows in increasing order, so each unit's inputs come out increasing.
  for (let i = 0; i < nIn; i++) {
    for (let e = rs[i]!; e < rs[i + 1]!; e++) {
      const p = fill[cols[e]!]!++;
      inIdx[p] = i;
      w[p] = vals[e]!;
    }
  }
  return { ptr, inIdx, w, most };
}

/** The images of a set unit-major per batch of B in the pinned region, and which pixels are non-zero per batch. */
interface PinnedImages {
  key: object;
  pixelNz: Uint8Array;
}
const pinnedMemo = new WeakMap<Float32Array, Map<number, PinnedImages>>();

function pinImages(K: ColumnKernels, images: Float32Array, count: number, per: number, B: number): { view: Float64Array; pixelNz: Uint8Array } {
  let byB = pinnedMemo.get(images);
  if (!byB) {
    byB = new Map();
    pinnedMemo.set(images, byB);
  }
  let p = byB.get(B);
  if (!p) {
    p = { key: {}, pixelNz: new Uint8Array(Math.ceil(count / B) * per) };
    byB.set(B, p);
  }
  const nz = p.pixelNz;
  const view = K.pin(p.key, count * per, (v) => {
    nz.fill(0);
    for (let k = 0, start = 0; start < count; k++, start += B) {
      const b = Math.min(B, count - start);
      const base = start * per;
      for (let j = 0; j < b; j++) {
        const src = (start + j) * per;
        for (let i = 0; i < per; i++) {
          const x = images[src + i]!;
          v[base + i * b + j] = x;
          if (x !== 0) nz[k * per + i] = 1;
        }
      }
    }
  });
  return { view, pixelNz: nz };
}

/**
 * Runs the layers on batch `batch` (b images from `start`), reading the first layer's input from the images (when
 * `images` is given) or from float32 activations (b × nIn, image-major). Returns the last layer's output, unit-major
 * (row o = b values), a view of the arena valid until the next kernel call.
 */
export function runGather(
  K: ColumnKernels,
  layers: DenseCsr[],
  cscs: DenseCsc[],
  rows: Int32Array[],
  rowNz: Uint8Array[],
  b: number,
  source: { images: Float32Array; count: number; per: number; B: number; batch: number } | { input: Float32Array; inRows: Int32Array },
): Float64Array {
  const gather = K.gather!;
  const nIn = layers[0]!.nIn;
  const most = Math.max(1, ...cscs.map((c) => c.most));
  const fromInput = 'input' in source;
  // The pinned images first (filling them may move where the arena starts), then the arena, then the pinned view
  // again (the arena may have grown the memory; no refill).
  if (!fromInput) pinImages(K, source.images, source.count, source.per, source.B);
  // Arena: [x (float32 input only)] [one output per layer] [weights: most] [row addresses: most i32].
  const xLen = fromInput ? nIn * b : 0;
  const outLens = layers.map((c) => c.nOut * b);
  const total = xLen + outLens.reduce((a, n) => a + n, 0) + most + Math.ceil(most / 2) + 2;
  const arena = K.arena(total);
  let off = xLen;
  const outs = outLens.map((n) => {
    const v = arena.subarray(off, off + n);
    off += n;
    return v;
  });
  const ws = arena.subarray(off, off + most);
  off += most + (most & 1);
  const addr = new Int32Array(arena.buffer, arena.byteOffset + off * 8, most);
  let x: Float64Array;
  let xNz: Uint8Array;
  let xRow0 = 0;
  if (fromInput) {
    x = arena.subarray(0, xLen);
    xNz = rowNz[0]!;
    const { input, inRows } = source;
    for (let k = 0; k < inRows.length; k++) {
      const i = inRows[k]!;
      const xb = i * b;
      let any = 0;
      for (let j = 0, q = i; j < b; j++, q += nIn) {
        const v = input[q]!;
        x[xb + j] = v;
        any |= v !== 0 ? 1 : 0;
      }
      xNz[i] = any;
    }
  } else {
    const pinned = pinImages(K, source.images, source.count, source.per, source.B);
    x = pinned.view;
    xRow0 = source.batch * source.B * source.per;
    xNz = pinned.pixelNz.subarray(source.batch * source.per, (source.batch + 1) * source.per);
  }
  for (let k = 0; k < layers.length; k++) {
    const c = layers[k]!;
    const { ptr, inIdx, w } = cscs[k]!;
    const y = outs[k]!;
    const xBase = x.byteOffset + xRow0 * 8;
    const live = rows[k]!;
    // Images in blocks of LANE_BLOCK: the input rows' block stays in cache while every output unit reads it.
    for (let j0 = 0; j0 < b; j0 += LANE_BLOCK) {
      const nb = Math.min(LANE_BLOCK, b - j0);
      for (let r = 0; r < live.length; r++) {
        const o = live[r]!;
        let m = 0;
        for (let p = ptr[o]!; p < ptr[o + 1]!; p++) {
          const i = inIdx[p]!;
          if (xNz[i] === 0) continue;
          ws[m] = w[p]!;
          addr[m] = xBase + (i * b + j0) * 8;
          m++;
        }
        gather(y.byteOffset + (o * b + j0) * 8, addr.byteOffset, ws.byteOffset, m, nb, c.bias[o]!);
      }
    }
    const nz = rowNz[k + 1]!;
    if (c.relu) for (let r = 0; r < live.length; r++) nz[live[r]!] = K.relu!(y.byteOffset + live[r]! * b * 8, b);
    else finishRows(y, b, live, false, nz);
    x = y;
    xRow0 = 0;
    xNz = rowNz[k + 1]!;
  }
  return x;
}
