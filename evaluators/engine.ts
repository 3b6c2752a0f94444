/**
 * The evaluation hot path, shared by the in-process evaluator and the pool workers: given a context and a
 * candidate's masks, count correct predictions batch by batch (with early exit) and report the size.
 *
 * Each prunable layer runs on one of two paths:
 *  - dense: tfjs fused conv2d / matMul on masked weights uploaded as tensors (models/forward.ts), whole batches;
 *  - sparse: compiled CSR kernels in plain JS (sparse.ts), float64; one image at a time, except segments made only of
 *    fully-connected steps, which run a batch at a time on the unit-major column kernels (same results, bit for bit).
 * Consecutive ops on the same path form a segment; activations cross between segments as float32 batches, so a
 * fully sparse or fully dense network never leaves its path. Non-prunable ops (flatten, maxpool, batchnorm) run
 * on the path of the op before them.
 */
import * as tf from '@tensorflow/tfjs';
import { weightShape, type Architecture, type Op, type PrunableOp } from '../models/graph.js';
import { layerStats, walkGraph, type NodeInfo } from '../models/walk.js';
import type { LayerMasks } from '../models/params.js';
import { sizeReport } from '../models/params.js';
import { runGraph, countCorrect, type ModelTensors } from '../models/forward.js';
import { UsageError } from '../foundation/errors.js';
import {
  compileSparseConv,
  compileSparseDense,
  compileMaxPool,
  compileBatchNorm,
  compactNonZero,
  argmax64,
  initRows,
  finishRows,
  denseColumns,
  denseColumnsCsc,
  type DenseCsr,
  type JsStep,
  type Live,
  type Shape3,
} from './sparse.js';
import type { EvaluationContext, PathMode } from './types.js';
import { CONV_COLUMN_CHUNK, convColumnPlan, runConvColumns, type ConvColumnPlan } from './columns.js';
import { columnKernels } from './simd.js';

/**
 * Per-layer path rule under 'auto':
 *  - a layer runs sparse when its weight density (kept mask entries / weights) is at most
 *    SPARSE_CROSSOVER[kind].base × inputDensity^−exponent, where inputDensity is the fraction of non-zero values it
 *    reads: measured on the evaluation images for a layer that reads the network input, 1 for hidden layers (the
 *    sparse kernels skip zero inputs, so a sparse input moves the crossover up);
 *  - a small hidden layer (≤ SMALL_LAYER_MACS multiply-adds per image) stays on the path of the layer before it:
 *    it costs a few ms either way, and switching paths costs a transfer.
 *
 * The constants come from `npm run bench -- eval --crossover-layers` (each layer alone on its real input activations)
 * and `--crossover` (whole networks), sparse against dense CPU time per candidate; the measurements are in
 * evaluators/README.md. Fully-connected: 0.02 / inputDensity. Conv: 0.15 / inputDensity, a little below the
 * crossovers measured with the batched conv column kernels (columns.ts), where the two paths are close.
 * Depthwise convolutions and ops without sparse kernels always run dense.
 */
export const SPARSE_CROSSOVER: Readonly<Record<SparseKind, { base: number; exponent: number }>> = {
  dense: { base: 0.02, exponent: 1 },
  conv2d: { base: 0.15, exponent: 1 },
};

/** The prunable ops with sparse kernels. */
export type SparseKind = 'dense' | 'conv2d';

/** Hidden layers at or below this many dense multiply-adds per image follow the previous layer's path. */
export const SMALL_LAYER_MACS = 50_000;

/** Weight density at or below which a layer of this kind, reading inputs of this density, runs sparse under 'auto'. */
export function crossoverDensity(kind: PrunableOp['type'], inputDensity = 1): number {
  if (kind === 'depthwise') return 0;
  const c = SPARSE_CROSSOVER[kind];
  return Math.min(1, c.base * Math.pow(Math.min(1, Math.max(inputDensity, 1e-3)), -c.exponent));
}

export interface EngineOptions {
  /** Path mode, or a path per prunable layer. */
  path: PathMode | readonly LayerPath[];
  batchSize: number;
  minCorrect?: number;
  /** When given, receives the predicted class of each evaluated image (diagnostics and tests). */
  predictions?: Int32Array;
  /** When given, receives top-1 minus top-2 logit of each evaluated image. */
  margins?: Float64Array;
  /**
   * JS segments made only of fully-connected steps run a batch at a time on the column kernels (default true);
   * false runs them one image at a time like the other JS segments (same results bit for bit; tests, benchmarks).
   */
  columns?: boolean;
  /**
   * Inner loops of the conv column kernels: WebAssembly SIMD (default, when the runtime has it) or plain JS. Both
   * give the same results bit for bit (tests, benchmarks).
   */
  columnKernels?: 'wasm' | 'js';
  /** Images per chunk of the conv column kernels (default CONV_COLUMN_CHUNK; results do not depend on it). */
  columnChunk?: number;
}

export type LayerPath = 'sparse' | 'dense';

export interface RawEvaluation {
  correct: number;
  evaluated: number;
  count: number;
  nonZero: number;
  params: number;
  macs: number;
  earlyExit: boolean;
  /** Path of each prunable layer. */
  paths: LayerPath[];
  /** JS segments that ran on the batched column kernels. */
  columnSegments: number;
}

/**
 * Why the sparse path cannot run this network, or null when it can: it runs plain chains of dense and conv2d layers
 * (linear or ReLU), valid max pooling, flatten, batchnorm (linear or ReLU) and dropout (identity); anything else
 * (merges, other activations and ops) runs on the dense path.
 */
export function sparseUnsupported(arch: Architecture): string | null {
  const w = walkGraph(arch);
  if (!w.chain) return 'the network is not a plain chain of ops';
  const bad = w.nodes.find((n) => !sparseStep(n.op));
  return bad ? `${bad.label} has no sparse kernel` : null;
}

function sparseStep(op: Op): boolean {
  switch (op.type) {
    case 'dense':
    case 'conv2d':
    case 'batchnorm':
      return op.activation === 'linear' || op.activation === 'relu';
    case 'maxpool':
      return (op.padding ?? 'valid') === 'valid';
    case 'flatten':
    case 'dropout':
      return true;
    default:
      return false;
  }
}

/** Per-prunable-layer path for these masks. */
export function choosePaths(
  arch: Architecture,
  masks: readonly LayerMasks[],
  mode: PathMode | readonly LayerPath[],
  nonZeroWeights?: readonly number[],
  /** Fraction of non-zero input pixels (default 1); applies to a first prunable layer that reads the input. */
  inputDensity = 1,
): LayerPath[] {
  const stats = layerStats(arch);
  const unsupported = sparseUnsupported(arch);
  if (unsupported !== null) {
    if (mode === 'sparse' || (typeof mode !== 'string' && mode.includes('sparse'))) throw new UsageError(`evaluator: the sparse path cannot run ${arch.name}: ${unsupported}`);
    return stats.map(() => 'dense');
  }
  const firstOp = arch.ops.findIndex((o) => o.type === 'conv2d' || o.type === 'dense');
  const readsInput = arch.ops.slice(0, firstOp).every((o) => o.type === 'flatten' || o.type === 'dropout');
  const out: LayerPath[] = [];
  stats.forEach((s, k) => {
    out.push(pick(s, k));
  });
  return out;
  function pick(s: (typeof stats)[number], k: number): LayerPath {
    if (typeof mode !== 'string') return mode[k]!;
    if (mode !== 'auto') return mode;
    if (k > 0 && s.macs <= SMALL_LAYER_MACS) return out[k - 1]!;
    let n = nonZeroWeights?.[k];
    if (n === undefined) {
      const m = masks[k]!.weight;
      n = 0;
      for (let i = 0; i < m.length; i++) n += m[i]!;
    }
    return n / s.weights <= crossoverDensity(s.kind, k === 0 && readsInput ? inputDensity : 1) ? 'sparse' : 'dense';
  }
}

/**
 * Structural liveness per op, from the masks alone (exact for every input): `zeroIn` marks input channels (units
 * when flat) that are identically zero — no kept weight from a non-zero input reaches them and their bias is off —
 * and `neededOut` marks output channels that some kept weight downstream reads. Batchnorm ends zero-propagation.
 */
function liveness(ctx: EvaluationContext, masks: readonly LayerMasks[], infos: readonly NodeInfo[]): Live[] {
  const out: Live[] = [];
  let zero: Uint8Array = new Uint8Array(infos[0]!.inShape[2]);
  for (const inf of infos) {
    const zeroIn = zero;
    const C = inf.inShape[2];
    const Co = inf.outShape[2];
    let next: Uint8Array;
    switch (inf.op.type) {
      case 'conv2d':
      case 'dense': {
        const l = ctx.params.layers[inf.layer]!;
        const m = masks[inf.layer]!;
        const w = l.weight;
        const mw = m.weight;
        next = new Uint8Array(Co);
        for (let o = 0; o < Co; o++) next[o] = m.bias[o] && l.bias[o] !== 0 ? 0 : 1;
        const rows = w.length / Co;
        for (let r = 0, ci = 0; r < rows; r++) {
          // dense: input unit r; conv: row r = (ky*K + kx)*C + ci
          const c = inf.op.type === 'dense' ? r : ci;
          if (++ci === C) ci = 0;
          if (zeroIn[c]) continue;
          const base = r * Co;
          for (let o = 0; o < Co; o++) if (mw[base + o] !== 0 && w[base + o] !== 0) next[o] = 0;
        }
        break;
      }
      case 'maxpool':
      case 'dropout':
        next = zeroIn;
        break;
      case 'flatten':
        next = new Uint8Array(Co);
        for (let u = 0, c = 0; u < Co; u++) {
          next[u] = zeroIn[c]!;
          if (++c === C) c = 0;
        }
        break;
      default:
        // batchnorm: its shift makes zero inputs non-zero.
        next = new Uint8Array(Co);
        break;
    }
    out.push({ zeroIn, neededOut: new Uint8Array(0) });
    zero = next;
  }
  let needed: Uint8Array = new Uint8Array(infos[infos.length - 1]!.outShape[2]).fill(1);
  for (let j = infos.length - 1; j >= 0; j--) {
    const inf = infos[j]!;
    const live = out[j]!;
    live.neededOut = needed;
    const C = inf.inShape[2];
    const Co = inf.outShape[2];
    let prev: Uint8Array;
    switch (inf.op.type) {
      case 'conv2d':
      case 'dense': {
        const w = ctx.params.layers[inf.layer]!.weight;
        const mw = masks[inf.layer]!.weight;
        prev = new Uint8Array(C);
        const rows = w.length / Co;
        for (let r = 0, ci = 0; r < rows; r++) {
          const c = inf.op.type === 'dense' ? r : ci;
          if (++ci === C) ci = 0;
          if (prev[c] || live.zeroIn[c]) continue;
          const base = r * Co;
          for (let o = 0; o < Co; o++) {
            if (needed[o] && mw[base + o] !== 0 && w[base + o] !== 0) {
              prev[c] = 1;
              break;
            }
          }
        }
        break;
      }
      case 'flatten':
        prev = new Uint8Array(C);
        for (let u = 0, c = 0; u < Co; u++) {
          if (needed[u]) prev[c] = 1;
          if (++c === C) c = 0;
        }
        break;
      default:
        prev = needed;
    }
    needed = prev;
  }
  return out;
}

/**
 * The evaluation images in sparse form (per image: indices and values of the non-zero pixels), built once per
 * images array. A JS segment that reads the network input scatters these into an all-zero buffer instead of
 * copying and scanning every pixel.
 */
interface ImageCsr {
  ptr: Int32Array;
  idx: Int32Array;
  val: Float64Array;
}
const csrMemo = new WeakMap<Float32Array, ImageCsr>();
function imageCsr(images: Float32Array, count: number, per: number): ImageCsr {
  // Keyed by the images array: the evaluators hand the engine private copies that never change.
  let c = csrMemo.get(images);
  if (!c || c.ptr.length !== count + 1) {
    let nnz = 0;
    for (let i = 0; i < count * per; i++) if (images[i] !== 0) nnz++;
    const ptr = new Int32Array(count + 1);
    const idx = new Int32Array(nnz);
    const val = new Float64Array(nnz);
    let p = 0;
    for (let j = 0; j < count; j++) {
      ptr[j] = p;
      const off = j * per;
      for (let i = 0; i < per; i++) {
        const v = images[off + i]!;
        if (v !== 0) {
          idx[p] = i;
          val[p] = v;
          p++;
        }
      }
    }
    ptr[count] = p;
    c = { ptr, idx, val };
    csrMemo.set(images, c);
  }
  return c;
}

/**
 * The evaluation images pixel-major per batch of B (CSC): for batch k (images kB .. kB+B) and pixel i, the images
 * of the batch where pixel i is non-zero are img[p] (index within the batch, increasing) with value val[p], p in
 * ptr[k(per+1)+i] .. ptr[k(per+1)+i+1]. Built once per images array and batch size, from the image CSR.
 */
interface ImageCsc {
  batch: number;
  count: number;
  ptr: Int32Array;
  img: Int32Array;
  val: Float64Array;
}
const cscMemo = new WeakMap<Float32Array, ImageCsc>();
function imageCsc(images: Float32Array, count: number, per: number, B: number): ImageCsc {
  let c = cscMemo.get(images);
  if (!c || c.batch !== B || c.count !== count) {
    const r = imageCsr(images, count, per);
    const nb = Math.ceil(count / B);
    const ptr = new Int32Array(nb * (per + 1));
    const img = new Int32Array(r.idx.length);
    const val = new Float64Array(r.idx.length);
    const fill = new Int32Array(per);
    let p = 0;
    for (let k = 0; k < nb; k++) {
      const j0 = k * B;
      const j1 = Math.min(count, j0 + B);
      const base = k * (per + 1);
      fill.fill(0);
      for (let q = r.ptr[j0]!; q < r.ptr[j1]!; q++) fill[r.idx[q]!]!++;
      for (let i = 0; i < per; i++) {
        ptr[base + i] = p;
        const n = fill[i]!;
        fill[i] = p;
        p += n;
      }
      ptr[base + per] = p;
      for (let j = j0; j < j1; j++) {
        for (let q = r.ptr[j]!; q < r.ptr[j + 1]!; q++) {
          const at = fill[r.idx[q]!]!++;
          img[at] = j - j0;
          val[at] = r.val[q]!;
        }
      }
    }
    c = { batch: B, count, ptr, img, val };
    cscMemo.set(images, c);
  }
  return c;
}

/** Mean fraction of non-zero pixels of an image set (memoised per images array): picks the first conv kernel. */
const densityMemo = new WeakMap<Float32Array, number>();
function imageDensity(images: Float32Array): number {
  let d = densityMemo.get(images);
  if (d === undefined) {
    let nz = 0;
    const n = Math.min(images.length, 784 * 2000);
    for (let i = 0; i < n; i++) if (images[i] !== 0) nz++;
    d = n > 0 ? nz / n : 1;
    densityMemo.set(images, d);
  }
  return d;
}

/** The per-layer paths evaluateMasks would use for these masks on this context. */
export function pathsFor(ctx: EvaluationContext, masks: readonly LayerMasks[], mode: PathMode | readonly LayerPath[]): LayerPath[] {
  return choosePaths(ctx.arch, masks, mode, undefined, mode === 'auto' ? imageDensity(ctx.data.images) : 1);
}

/** Ops [from, to) of the network on tfjs (runGraph with the segment's input fed, its last op fetched). */
interface TfSegment {
  kind: 'tf';
  from: number;
  to: number;
  /** The segment's layers and batchnorms (the others are never read). */
  tensors: ModelTensors;
  inShape: Shape3;
  inFlat: boolean;
}
interface JsSegment {
  kind: 'js';
  steps: JsStep[];
  inSize: number;
  outSize: number;
  /** Scratch: float64 copy of the input, then one buffer per step. */
  bufs: Float64Array[];
  /** Non-zero index lists, one per buffer. */
  nz: Int32Array[];
  /** Set when every step is fully-connected: the segment runs a batch at a time on the column kernels. */
  columns: ColumnPlan | null;
  /** Set for segments with conv steps: they run CONV_COLUMN_CHUNK images at a time on columns.ts's kernels. */
  convColumns: ConvColumnPlan | null;
}

/** A JS segment of fully-connected steps, run on unit-major batches (sparse.ts, "column" kernels). */
interface ColumnPlan {
  layers: DenseCsr[];
  /** Per layer, the output rows computed: those the next layer reads (non-empty CSR rows), all for the last. */
  rows: Int32Array[];
  /** Input rows the first layer reads (filled when the input comes as float32 activations). */
  inRows: Int32Array;
  /** Per buffer (input, then each layer's output): 1 = the row has a non-zero value in this batch. */
  rowNz: Uint8Array[];
}

function nonEmptyRows(c: DenseCsr): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < c.nIn; i++) if (c.rs[i + 1]! > c.rs[i]!) out.push(i);
  return Int32Array.from(out);
}

function columnPlan(steps: JsStep[]): ColumnPlan | null {
  if (steps.length === 0 || !steps.every((s) => s.csr)) return null;
  const layers = steps.map((s) => s.csr!);
  const rows = layers.map((c, k) => (k + 1 < layers.length ? nonEmptyRows(layers[k + 1]!) : Int32Array.from({ length: c.nOut }, (_, o) => o)));
  return { layers, rows, inRows: nonEmptyRows(layers[0]!), rowNz: [new Uint8Array(layers[0]!.nIn), ...layers.map((c) => new Uint8Array(c.nOut))] };
}

/** Unit-major scratch buffers, reused across calls (the engine is synchronous; each worker has its own). */
const colScratch: Float64Array[] = [];
function scratch(slot: number, n: number): Float64Array {
  let a = colScratch[slot];
  if (!a || a.length < n) {
    a = new Float64Array(n);
    colScratch[slot] = a;
  }
  return a;
}

/**
 * Runs a column segment on one batch of b images → the last layer's unit-major output (stride b). The input is
 * batch `batch` of the image CSC, or float32 activations (b × nIn, image-major).
 */
function runColumns(plan: ColumnPlan, b: number, csc: ImageCsc | null, batch: number, input: Float32Array | null): Float64Array {
  const { layers, rows, rowNz } = plan;
  let x: Float64Array | null = null;
  if (!csc) {
    const nIn = layers[0]!.nIn;
    x = scratch(0, nIn * b);
    const nz = rowNz[0]!;
    const inRows = plan.inRows;
    for (let k = 0; k < inRows.length; k++) {
      const i = inRows[k]!;
      const xb = i * b;
      let any = 0;
      for (let j = 0, q = i; j < b; j++, q += nIn) {
        const v = input![q]!;
        x[xb + j] = v;
        any |= v !== 0 ? 1 : 0;
      }
      nz[i] = any;
    }
  }
  for (let k = 0; k < layers.length; k++) {
    const c = layers[k]!;
    const y = scratch(k + 1, c.nOut * b);
    initRows(y, b, c.bias, rows[k]!);
    if (k === 0 && csc) denseColumnsCsc(c, csc.ptr, batch * (c.nIn + 1), csc.img, csc.val, y, b);
    else denseColumns(c, x!, rowNz[k]!, y, b);
    finishRows(y, b, rows[k]!, c.relu, rowNz[k + 1]!);
    x = y;
  }
  return x!;
}
type Segment = TfSegment | JsSegment;

function maskedTensor(values: Float32Array, mask: Uint8Array, shape: number[]): tf.Tensor {
  const out = new Float32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = mask[i] ? values[i]! : 0;
  return tf.tensor(out, shape, 'float32');
}

function buildSegments(ctx: EvaluationContext, masks: readonly LayerMasks[], paths: LayerPath[], useColumns: boolean): Segment[] {
  const infos = walkGraph(ctx.arch).nodes;
  // Placement per op: prunable ops by their path; others follow the op before (leading ones the first prunable).
  const place: LayerPath[] = [];
  let prev: LayerPath | null = null;
  for (const inf of infos) {
    if (inf.layer >= 0) prev = paths[inf.layer]!;
    place.push(prev ?? 'dense');
  }
  const firstPrunable = infos.findIndex((i) => i.layer >= 0);
  for (let i = 0; i < firstPrunable; i++) place[i] = place[firstPrunable]!;

  const live = place.includes('sparse') ? liveness(ctx, masks, infos) : null;
  const segments: Segment[] = [];
  let i = 0;
  while (i < infos.length) {
    let j = i;
    while (j < infos.length && place[j] === place[i]) j++;
    const group = infos.slice(i, j);
    if (place[i] === 'dense') {
      const tensors: ModelTensors = { layers: [], batchNorms: [] };
      for (const g of group) {
        if (g.layer >= 0) {
          const l = ctx.params.layers[g.layer]!;
          const m = masks[g.layer]!;
          tensors.layers[g.layer] = { weight: maskedTensor(l.weight, m.weight, weightShape(g.op as PrunableOp)), bias: maskedTensor(l.bias, m.bias, [l.bias.length]) as tf.Tensor1D };
        }
        if (g.bn >= 0) {
          const b = ctx.params.batchNorms[g.bn]!;
          tensors.batchNorms[g.bn] = { gamma: tf.tensor1d(b.gamma), beta: tf.tensor1d(b.beta), movingMean: tf.tensor1d(b.movingMean), movingVariance: tf.tensor1d(b.movingVariance) };
        }
      }
      segments.push({ kind: 'tf', from: i, to: j, tensors, inShape: group[0]!.inShape, inFlat: group[0]!.inFlat });
    } else {
      const steps: JsStep[] = [];
      // The segment's ops for the conv column plan (flatten has no per-image step).
      const items: ({ step: JsStep; inShape: Shape3 } | { flatten: true; inShape: Shape3 })[] = [];
      for (const g of group) {
        const op = g.op;
        const lv = live![infos.indexOf(g)]!;
        if (op.type === 'dense') steps.push(compileSparseDense(op, ctx.params.layers[g.layer]!, masks[g.layer]!, lv));
        else if (op.type === 'conv2d') {
          const inDensity = infos.indexOf(g) === 0 ? imageDensity(ctx.data.images) : 1;
          steps.push(compileSparseConv(op, ctx.params.layers[g.layer]!, masks[g.layer]!, g.inShape, lv, inDensity));
        }
        else if (op.type === 'maxpool') steps.push(compileMaxPool(op, g.inShape, lv));
        else if (op.type === 'batchnorm') steps.push(compileBatchNorm(op, ctx.params.batchNorms[g.bn]!, g.inShape));
        // flatten: NHWC activations are already flat in memory; dropout is the identity outside training.
        if (op.type === 'dropout') continue;
        items.push(op.type === 'flatten' ? { flatten: true, inShape: g.inShape } : { step: steps[steps.length - 1]!, inShape: g.inShape });
      }
      const [h, w, c] = group[0]!.inShape;
      const inSize = h * w * c;
      const bufs = [new Float64Array(inSize), ...steps.map((s) => new Float64Array(s.outSize))];
      const nz = bufs.map((b) => new Int32Array(b.length));
      const columns = useColumns ? columnPlan(steps) : null;
      const convColumns = useColumns && !columns ? convColumnPlan(items, i === 0 ? imageDensity(ctx.data.images) : 1) : null;
      segments.push({ kind: 'js', steps, inSize, outSize: steps.length ? steps[steps.length - 1]!.outSize : inSize, bufs, nz, columns, convColumns });
    }
    i = j;
  }
  return segments;
}

function disposeSegments(segments: Segment[]): void {
  for (const s of segments) {
    if (s.kind !== 'tf') continue;
    for (const l of s.tensors.layers) if (l) tf.dispose([l.weight, l.bias]);
    for (const b of s.tensors.batchNorms) if (b) tf.dispose([b.gamma, b.beta, b.movingMean, b.movingVariance]);
  }
}

/**
 * Runs a JS segment on one image → its last buffer. The input comes from `input` (float32, inSize per image), or,
 * when `csr` is given, from the sparse images (image index `img`): scattered into the all-zero first buffer and
 * cleared again afterwards, with the non-zero list ready for the first step.
 */
function runJsImage(seg: JsSegment, input: Float32Array | null, img: number, csr: ImageCsr | null): Float64Array {
  const { bufs, nz, steps } = seg;
  const n = seg.inSize;
  let count = -1;
  const x0 = bufs[0]!;
  let p0 = 0;
  let p1 = 0;
  if (csr) {
    p0 = csr.ptr[img]!;
    p1 = csr.ptr[img + 1]!;
    const nz0 = nz[0]!;
    for (let p = p0; p < p1; p++) {
      const i = csr.idx[p]!;
      x0[i] = csr.val[p]!;
      nz0[p - p0] = i;
    }
    count = p1 - p0;
  } else x0.set(input!.subarray(img * n, img * n + n));
  const first = steps[0];
  if (first && !first.wantsNz) count = -1;
  for (let s = 0; s < steps.length; s++) {
    const st = steps[s]!;
    if (st.wantsNz && count < 0) count = compactNonZero(bufs[s]!, st.inSize, nz[s]!);
    count = st.run(bufs[s]!, nz[s]!, count, bufs[s + 1]!, nz[s + 1]!);
  }
  if (csr) for (let p = p0; p < p1; p++) x0[csr.idx[p]!] = 0;
  return bufs[steps.length]!;
}

/** Prediction and margin of image `img` from its logits at off, off + stride, ... (nc classes). */
function record(opts: EngineOptions, img: number, logits: ArrayLike<number>, off: number, nc: number, stride = 1): void {
  let best = 0;
  let bv = logits[off]!;
  let second = -Infinity;
  for (let c = 1; c < nc; c++) {
    const v = logits[off + c * stride]!;
    if (v > bv) {
      second = bv;
      bv = v;
      best = c;
    } else if (v > second) second = v;
  }
  if (opts.predictions) opts.predictions[img] = best;
  if (opts.margins) opts.margins[img] = bv - second;
}

/** Logits of one image, gathered from a conv column segment's output rows. */
let logitScratch = new Float64Array(16);

/**
 * Evaluates one set of masks on ctx.data. Synchronous; leaves no tensors behind.
 * Early exit: after each batch, if correct + remaining < minCorrect the floor is unreachable and evaluation stops.
 */
export function evaluateMasks(ctx: EvaluationContext, masks: readonly LayerMasks[], opts: EngineOptions): RawEvaluation {
  const size = sizeReport(ctx.arch, masks as LayerMasks[]);
  const paths = choosePaths(ctx.arch, masks, opts.path, size.layers.map((l) => l.nonZeroWeights), opts.path === 'auto' ? imageDensity(ctx.data.images) : 1);
  const { data } = ctx;
  const count = data.count;
  const per = data.shape[0] * data.shape[1] * data.shape[2];
  const nc = ctx.arch.numClasses;
  const B = Math.max(1, Math.floor(opts.batchSize));
  if (logitScratch.length < nc) logitScratch = new Float64Array(nc);
  const segments = buildSegments(ctx, masks, paths, opts.columns ?? true);
  const seg0 = segments[0]!;
  const csr = seg0.kind === 'js' && !seg0.columns && (!seg0.convColumns || seg0.convColumns.sparseInput) ? imageCsr(data.images, count, per) : null;
  const csc = seg0.kind === 'js' && seg0.columns ? imageCsc(data.images, count, per, B) : null;
  let correct = 0;
  let evaluated = 0;
  let earlyExit = false;
  try {
    for (let start = 0; start < count; start += B) {
      const b = Math.min(B, count - start);
      let arr: Float32Array | null = data.images.subarray(start * per, (start + b) * per);
      let tensor: tf.Tensor | null = null;
      for (let si = 0; si < segments.length; si++) {
        const seg = segments[si]!;
        const last = si === segments.length - 1;
        if (seg.kind === 'tf') {
          const x = tensor ?? tf.tensor(arr!, seg.inFlat ? [b, seg.inShape[0] * seg.inShape[1] * seg.inShape[2]] : [b, ...seg.inShape], 'float32');
          const y: tf.Tensor = tf.tidy(() => runGraph(ctx.arch, seg.tensors, seg.from === 0 ? x : null, { feeds: seg.from > 0 ? new Map([[seg.from - 1, x]]) : undefined, fetch: seg.to - 1 }));
          x.dispose();
          tensor = y;
          arr = null;
        } else {
          let input: Float32Array;
          if (tensor) {
            input = tensor.dataSync() as Float32Array;
            tensor.dispose();
            tensor = null;
          } else input = arr!;
          const sparseIn = si === 0 ? csr : null;
          if (seg.convColumns) {
            const plan = seg.convColumns;
            const K = columnKernels(opts.columnKernels);
            const n = seg.outSize;
            const out = last ? null : new Float32Array(b * n);
            const outRow = plan.rowNow;
            const chunk = Math.max(1, Math.floor(opts.columnChunk ?? CONV_COLUMN_CHUNK));
            for (let j0 = 0; j0 < b; j0 += chunk) {
              const c = Math.min(chunk, b - j0);
              const y = runConvColumns(plan, K, input, j0, c, sparseIn ? { csr: sparseIn, base: start } : undefined);
              if (last) {
                for (let j = 0; j < c; j++) {
                  for (let u = 0; u < nc; u++) {
                    const r = outRow[u]!;
                    logitScratch[u] = r < 0 ? 0 : y[r * c + j]!;
                  }
                  const img = start + j0 + j;
                  if (argmax64(logitScratch, nc) === data.labels[img]) correct++;
                  if (opts.predictions || opts.margins) record(opts, img, logitScratch, 0, nc);
                }
              } else {
                for (let u = 0; u < n; u++) {
                  const r = outRow[u]!;
                  if (r < 0) continue; // zero: the array starts zeroed
                  for (let j = 0, q = (j0 * n) + u, yr = r * c; j < c; j++, q += n) out![q] = y[yr + j]!;
                }
              }
            }
            if (out) arr = out;
          } else if (seg.columns) {
            const y = runColumns(seg.columns, b, si === 0 ? csc : null, start / B, si === 0 && csc ? null : input);
            if (last) {
              for (let i = 0; i < b; i++) {
                // argmax64 over the image's column: first maximum wins.
                let best = 0;
                let bv = y[i]!;
                for (let c = 1; c < nc; c++) {
                  const v = y[c * b + i]!;
                  if (v > bv) {
                    bv = v;
                    best = c;
                  }
                }
                if (best === data.labels[start + i]) correct++;
                if (opts.predictions || opts.margins) record(opts, start + i, y, i, nc, b);
              }
            } else {
              const n = seg.outSize;
              const out = new Float32Array(b * n);
              for (let u = 0; u < n; u++) for (let i = 0, ub = u * b; i < b; i++) out[i * n + u] = y[ub + i]!;
              arr = out;
            }
          } else if (last) {
            for (let i = 0; i < b; i++) {
              const logits = runJsImage(seg, input, sparseIn ? start + i : i, sparseIn);
              const pred = argmax64(logits, nc);
              if (pred === data.labels[start + i]) correct++;
              if (opts.predictions || opts.margins) record(opts, start + i, logits, 0, nc);
            }
          } else {
            const out = new Float32Array(b * seg.outSize);
            for (let i = 0; i < b; i++) out.set(runJsImage(seg, input, sparseIn ? start + i : i, sparseIn), i * seg.outSize);
            arr = out;
          }
        }
      }
      if (tensor) {
        const logits = tensor.dataSync() as Float32Array;
        tensor.dispose();
        correct += countCorrect(logits, data.labels, nc, start);
        if (opts.predictions || opts.margins) for (let i = 0; i < b; i++) record(opts, start + i, logits, i * nc, nc);
      }
      evaluated += b;
      if (opts.minCorrect !== undefined && evaluated < count && correct + (count - evaluated) < opts.minCorrect) {
        earlyExit = true;
        break;
      }
    }
  } finally {
    disposeSegments(segments);
  }
  const columnSegments = segments.filter((s) => s.kind === 'js' && (s.columns || s.convColumns)).length;
  return { correct, evaluated, count, nonZero: size.nonZero, params: size.params, macs: size.macs, earlyExit, paths, columnSegments };
}
