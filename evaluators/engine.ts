/**
 * The evaluation hot path, shared by the in-process evaluator and the pool workers: given a context and a
 * candidate's masks, count correct predictions batch by batch (with early exit) and report the size.
 *
 * Each prunable layer runs on one of two paths:
 *  - dense: tfjs fused conv2d / matMul on masked weights uploaded as tensors (models/forward.ts), whole batches;
 *  - sparse: compiled CSR kernels in plain JS (sparse.ts, sparse-conv.ts, sparse-layers.ts), float64; one image at a time, except segments made only of
 *    fully-connected steps, which run a batch at a time on the unit-major column kernels (same results, bit for bit).
 * Consecutive ops on the same path form a segment; activations cross between segments as float32 batches, so a
 * fully sparse or fully dense network never leaves its path. Non-prunable ops (flatten, maxpool, batchnorm) run
 * on the path of the op before them.
 */
import * as tf from '@tensorflow/tfjs';
import { weightShape, type PrunableOp } from '../models/graph.js';
import { walkGraph } from '../models/walk.js';
import type { LayerMasks } from '../models/params.js';
import { sizeReport } from '../models/params.js';
import { runGraph, countCorrect, type ModelTensors } from '../models/forward.js';
import {
  compileSparseDense,
  keptEntries,
  compactNonZero,
  initRows,
  finishRows,
  denseColumns,
  denseColumnsCsc,
  type DenseCsr,
  type JsStep,
  type Shape3,
} from './sparse.js';
import type { EvaluationContext, PathMode } from './types.js';
import { CONV_COLUMN_CHUNK, convColumnPlan, runConvColumns, type ConvColumnPlan } from './columns.js';
import { columnKernels } from './simd.js';
import { byOutput, runGather, type DenseCsc } from './dense-gather.js';
import { compileSparseConv } from './sparse-conv.js';
import { compileMaxPool, compileBatchNorm, argmax64 } from './sparse-layers.js';
import { choosePaths, type LayerPath } from './paths.js';
import { liveness } from './liveness.js';
import { imageCsr, imageCsc, imageDensity, type ImageCsr, type ImageCsc } from './image-encoding.js';

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
  /** The layers' weights by output unit, for the gather kernel (dense-gather.ts). */
  cscs: DenseCsc[];
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
  return { layers, rows, inRows: nonEmptyRows(layers[0]!), rowNz: [new Uint8Array(layers[0]!.nIn), ...layers.map((c) => new Uint8Array(c.nOut))], cscs: layers.map(byOutput) };
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

  const kept = place.includes('sparse') ? masks.map((m, l) => keptEntries(ctx.params.layers[l]!.weight, m.weight)) : null;
  const live = kept ? liveness(ctx, masks, infos, kept) : null;
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
        if (op.type === 'dense') steps.push(compileSparseDense(op, ctx.params.layers[g.layer]!, masks[g.layer]!, lv, kept![g.layer]));
        else if (op.type === 'conv2d') {
          const inDensity = infos.indexOf(g) === 0 ? imageDensity(ctx.data.images) : 1;
          steps.push(compileSparseConv(op, ctx.params.layers[g.layer]!, masks[g.layer]!, g.inShape, lv, inDensity, kept![g.layer]));
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
  // Fully-connected column segments run on the wasm gather kernel where there is one, else on sparse.ts's kernels.
  const K = columnKernels(opts.columnKernels);
  const imagesFirst = seg0.kind === 'js' && seg0.columns !== null;
  const csc = imagesFirst && !K.gather ? imageCsc(data.images, count, per, B) : null;
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
            const plan = seg.columns;
            const y = K.gather
              ? runGather(K, plan.layers, plan.cscs, plan.rows, plan.rowNz, b, si === 0 && imagesFirst ? { images: data.images, count, per, B, batch: start / B } : { input, inRows: plan.inRows })
              : runColumns(plan, b, si === 0 ? csc : null, start / B, si === 0 && csc ? null : input);
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
