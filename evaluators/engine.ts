/**
 * The evaluation hot path, shared by the in-process evaluator and the pool workers: given a context and a
 * candidate's masks, count correct predictions batch by batch (with early exit) and report the size.
 *
 * Each prunable layer runs on one of two paths:
 *  - dense: tfjs fused conv2d / matMul on masked weights uploaded as tensors (models/forward.ts), whole batches;
 *  - sparse: compiled CSR kernels in plain JS (sparse.ts), one image at a time in float64.
 * Consecutive ops on the same path form a segment; activations cross between segments as float32 batches, so a
 * fully sparse or fully dense network never leaves its path. Non-prunable ops (flatten, maxpool, batchnorm) run
 * on the path of the op before them.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture, Op, PrunableOp } from '../models/architectures.js';
import { layerStats } from '../models/architectures.js';
import type { LayerMasks } from '../models/params.js';
import { sizeReport } from '../models/params.js';
import { forward, countCorrect, type ModelTensors } from '../models/forward.js';
import { weightShape } from '../models/architectures.js';
import { compileSparseConv, compileSparseDense, compileMaxPool, compileBatchNorm, argmax64, type JsStep, type Live, type Shape3 } from './sparse.js';
import type { EvaluationContext, PathMode } from './types.js';

/**
 * Weight density (non-zero mask entries / weights) at or below which a layer runs on the sparse path under 'auto'.
 * Measured with `npm run bench -- eval --crossover` (evaluators/README.md has the table): whole LeNets with every
 * layer at one density, sparse path vs dense path, wasm backend, one thread, 6,000 MNIST validation images.
 *  - fully-connected (LeNet-300-100, wasm): sparse is faster up to ~25% density (at 20%: 176 ms vs 303 ms per
 *    6,000 images; at 30%: 318 vs 300), thanks to the zero-input skip on MNIST pixels and ReLU outputs.
 *  - conv (LeNet-5, wasm): sparse is faster up to ~30-50% (at 20%: 0.78 s vs 3.4 s; at 50%: 1.9 s vs 3.4 s): tfjs-wasm
 *    convolutions with few channels are slow.
 * The constants sit a little below the measured crossovers, since the dense path gains more from a faster backend.
 */
export const SPARSE_CROSSOVER: Readonly<Record<PrunableOp['type'], number>> = { dense: 0.2, conv2d: 0.3 };

export interface EngineOptions {
  /** Path mode, or a path per prunable layer. */
  path: PathMode | readonly LayerPath[];
  batchSize: number;
  minCorrect?: number;
  /** When given, receives the predicted class of each evaluated image (diagnostics and tests). */
  predictions?: Int32Array;
  /** When given, receives top-1 minus top-2 logit of each evaluated image. */
  margins?: Float64Array;
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
}

interface OpInfo {
  op: Op;
  inShape: Shape3;
  outShape: Shape3;
  /** Activation before this op is flat ([B, units]) rather than [B, H, W, C]. */
  inFlat: boolean;
  outFlat: boolean;
  layer: number; // prunable index or -1
  bn: number; // batchnorm index or -1
}

function walk(arch: Architecture): OpInfo[] {
  let shape: Shape3 = [...arch.inputShape];
  let flat = false;
  let layer = 0;
  let bn = 0;
  return arch.ops.map((op) => {
    const inShape = shape;
    const inFlat = flat;
    let l = -1;
    let b = -1;
    switch (op.type) {
      case 'conv2d': {
        const [H, W] = shape;
        const out = (n: number) => (op.padding === 'same' ? Math.ceil(n / op.stride) : Math.floor((n - op.kernel) / op.stride) + 1);
        shape = [out(H), out(W), op.outChannels];
        l = layer++;
        break;
      }
      case 'dense':
        shape = [1, 1, op.outUnits];
        flat = true;
        l = layer++;
        break;
      case 'maxpool':
        shape = [Math.floor((shape[0] - op.size) / op.stride) + 1, Math.floor((shape[1] - op.size) / op.stride) + 1, shape[2]];
        break;
      case 'flatten':
        shape = [1, 1, shape[0] * shape[1] * shape[2]];
        flat = true;
        break;
      case 'batchnorm':
        b = bn++;
        break;
    }
    return { op, inShape, outShape: shape, inFlat, outFlat: flat, layer: l, bn: b };
  });
}

/** Per-prunable-layer path for these masks. */
export function choosePaths(arch: Architecture, masks: readonly LayerMasks[], mode: PathMode | readonly LayerPath[]): LayerPath[] {
  const stats = layerStats(arch);
  return stats.map((s, k) => {
    if (typeof mode !== 'string') return mode[k]!;
    if (mode !== 'auto') return mode;
    const m = masks[k]!.weight;
    let n = 0;
    for (let i = 0; i < m.length; i++) n += m[i]!;
    return n / s.weights <= SPARSE_CROSSOVER[s.kind] ? 'sparse' : 'dense';
  });
}

/**
 * Structural liveness per op, from the masks alone (exact for every input): `zeroIn` marks input channels (units
 * when flat) that are identically zero — no kept weight from a non-zero input reaches them and their bias is off —
 * and `neededOut` marks output channels that some kept weight downstream reads. Batchnorm ends zero-propagation.
 */
function liveness(ctx: EvaluationContext, masks: readonly LayerMasks[], infos: OpInfo[]): Live[] {
  const out: Live[] = [];
  let zero: Uint8Array = new Uint8Array(infos[0]!.inShape[2]);
  const kept = (k: number, idx: number) => masks[k]!.weight[idx] !== 0 && ctx.params.layers[k]!.weight[idx] !== 0;
  for (const inf of infos) {
    const zeroIn = zero;
    const C = inf.inShape[2];
    const Co = inf.outShape[2];
    let next: Uint8Array;
    switch (inf.op.type) {
      case 'conv2d':
      case 'dense': {
        const k = inf.layer;
        const l = ctx.params.layers[k]!;
        const m = masks[k]!;
        next = new Uint8Array(Co);
        for (let o = 0; o < Co; o++) next[o] = m.bias[o] && l.bias[o] !== 0 ? 0 : 1;
        const n = l.weight.length;
        for (let idx = 0; idx < n; idx++) {
          if (!kept(k, idx)) continue;
          const row = Math.floor(idx / Co);
          if (zeroIn[inf.op.type === 'dense' ? row : row % C]) continue;
          next[idx % Co] = 0;
        }
        break;
      }
      case 'maxpool':
        next = zeroIn;
        break;
      case 'flatten':
        next = new Uint8Array(Co);
        for (let u = 0; u < Co; u++) next[u] = zeroIn[u % C]!;
        break;
      case 'batchnorm':
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
        const k = inf.layer;
        prev = new Uint8Array(C);
        const n = ctx.params.layers[k]!.weight.length;
        for (let idx = 0; idx < n; idx++) {
          if (!needed[idx % Co] || !kept(k, idx)) continue;
          const row = Math.floor(idx / Co);
          const c = inf.op.type === 'dense' ? row : row % C;
          if (!live.zeroIn[c]) prev[c] = 1;
        }
        break;
      }
      case 'flatten':
        prev = new Uint8Array(C);
        for (let u = 0; u < Co; u++) if (needed[u]) prev[u % C] = 1;
        break;
      default:
        prev = needed;
    }
    needed = prev;
  }
  return out;
}

interface TfSegment {
  kind: 'tf';
  arch: Architecture;
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
}
type Segment = TfSegment | JsSegment;

function maskedTensor(values: Float32Array, mask: Uint8Array, shape: number[]): tf.Tensor {
  const out = new Float32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = mask[i] ? values[i]! : 0;
  return tf.tensor(out, shape, 'float32');
}

function buildSegments(ctx: EvaluationContext, masks: readonly LayerMasks[], paths: LayerPath[]): Segment[] {
  const infos = walk(ctx.arch);
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
      const layers = group.filter((g) => g.layer >= 0);
      const tensors: ModelTensors = {
        layers: layers.map((g) => {
          const l = ctx.params.layers[g.layer]!;
          const m = masks[g.layer]!;
          return { weight: maskedTensor(l.weight, m.weight, weightShape(g.op as PrunableOp)), bias: maskedTensor(l.bias, m.bias, [l.bias.length]) as tf.Tensor1D };
        }),
        batchNorms: group
          .filter((g) => g.bn >= 0)
          .map((g) => {
            const b = ctx.params.batchNorms[g.bn]!;
            return { gamma: tf.tensor1d(b.gamma), beta: tf.tensor1d(b.beta), movingMean: tf.tensor1d(b.movingMean), movingVariance: tf.tensor1d(b.movingVariance) };
          }),
      };
      segments.push({ kind: 'tf', arch: { ...ctx.arch, ops: group.map((g) => g.op) }, tensors, inShape: group[0]!.inShape, inFlat: group[0]!.inFlat });
    } else {
      const steps: JsStep[] = [];
      for (const g of group) {
        const op = g.op;
        const lv = live![infos.indexOf(g)]!;
        if (op.type === 'dense') steps.push(compileSparseDense(op, ctx.params.layers[g.layer]!, masks[g.layer]!, lv));
        else if (op.type === 'conv2d') steps.push(compileSparseConv(op, ctx.params.layers[g.layer]!, masks[g.layer]!, g.inShape, lv));
        else if (op.type === 'maxpool') steps.push(compileMaxPool(op, g.inShape));
        else if (op.type === 'batchnorm') steps.push(compileBatchNorm(op, ctx.params.batchNorms[g.bn]!, g.inShape));
        // flatten: NHWC activations are already flat in memory.
      }
      const [h, w, c] = group[0]!.inShape;
      const inSize = h * w * c;
      const bufs = [new Float64Array(inSize), ...steps.map((s) => new Float64Array(s.outSize))];
      segments.push({ kind: 'js', steps, inSize, outSize: steps.length ? steps[steps.length - 1]!.outSize : inSize, bufs });
    }
    i = j;
  }
  return segments;
}

function disposeSegments(segments: Segment[]): void {
  for (const s of segments) {
    if (s.kind !== 'tf') continue;
    for (const l of s.tensors.layers) tf.dispose([l.weight, l.bias]);
    for (const b of s.tensors.batchNorms) tf.dispose([b.gamma, b.beta, b.movingMean, b.movingVariance]);
  }
}

/** Runs a JS segment over a batch: images of `input` (float32, inSize each) → last buffer per image. */
function runJsImage(seg: JsSegment, input: Float32Array, img: number): Float64Array {
  const x0 = seg.bufs[0]!;
  const n = seg.inSize;
  x0.set(input.subarray(img * n, img * n + n));
  for (let s = 0; s < seg.steps.length; s++) seg.steps[s]!.run(seg.bufs[s]!, seg.bufs[s + 1]!);
  return seg.bufs[seg.steps.length]!;
}

function record(opts: EngineOptions, img: number, logits: ArrayLike<number>, off: number, nc: number): void {
  let best = 0;
  let bv = logits[off]!;
  let second = -Infinity;
  for (let c = 1; c < nc; c++) {
    const v = logits[off + c]!;
    if (v > bv) {
      second = bv;
      bv = v;
      best = c;
    } else if (v > second) second = v;
  }
  if (opts.predictions) opts.predictions[img] = best;
  if (opts.margins) opts.margins[img] = bv - second;
}

/**
 * Evaluates one set of masks on ctx.data. Synchronous; leaves no tensors behind.
 * Early exit: after each batch, if correct + remaining < minCorrect the floor is unreachable and evaluation stops.
 */
export function evaluateMasks(ctx: EvaluationContext, masks: readonly LayerMasks[], opts: EngineOptions): RawEvaluation {
  const size = sizeReport(ctx.arch, masks as LayerMasks[]);
  const paths = choosePaths(ctx.arch, masks, opts.path);
  const { data } = ctx;
  const count = data.count;
  const per = data.shape[0] * data.shape[1] * data.shape[2];
  const nc = ctx.arch.numClasses;
  const B = Math.max(1, Math.floor(opts.batchSize));
  const segments = buildSegments(ctx, masks, paths);
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
          const y: tf.Tensor = tf.tidy(() => forward(seg.arch, seg.tensors, x));
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
          if (last) {
            for (let i = 0; i < b; i++) {
              const logits = runJsImage(seg, input, i);
              const pred = argmax64(logits, nc);
              if (pred === data.labels[start + i]) correct++;
              if (opts.predictions || opts.margins) record(opts, start + i, logits, 0, nc);
            }
          } else {
            const out = new Float32Array(b * seg.outSize);
            for (let i = 0; i < b; i++) out.set(runJsImage(seg, input, i), i * seg.outSize);
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
  return { correct, evaluated, count, nonZero: size.nonZero, params: size.params, macs: size.macs, earlyExit, paths };
}
