/**
 * Caffe → tfjs parameter layouts (pure functions on typed arrays).
 *
 *   InnerProduct weight [out, in]          → dense kernel  [in, out]           kernel[i][o] = W[o][i]
 *   Convolution weight  [out, in, kh, kw]  → conv2d kernel [kh, kw, in, out]   kernel[y][x][c][o] = W[o][c][y][x]
 *   bias [out]                             → bias [out] (unchanged)
 *
 * A dense layer fed by a flattened spatial tensor also has its input dimension permuted: Caffe flattens
 * C,H,W (index c*H*W + h*W + w), our NHWC forward flattens H,W,C (index (h*W + w)*C + c). For LeNet-5's ip1
 * (pool2 = 50x4x4): kernel[(h*4+w)*50+c][o] = W[o][c*16+h*4+w]. With one channel (LeNet-300-100) both orders agree.
 * Masks have the weights' layout and go through the same mapping.
 */
import { type Architecture, type PrunableOp, prunableOps, weightShape, biasLength } from '../graph.js';
import type { ModelParams, LayerMasks } from '../params.js';
import { walkGraph } from '../walk.js';

export type CaffeArray = Float32Array | Uint8Array;

function like<T extends CaffeArray>(src: T, n: number): T {
  return (src instanceof Uint8Array ? new Uint8Array(n) : new Float32Array(n)) as T;
}

/**
 * Caffe InnerProduct weight (or mask) [out, in] → tfjs dense kernel [in, out].
 * `inputCHW` = [C, H, W] of the tensor the layer flattens, when the input dimension must go from C,H,W to H,W,C order.
 */
export function caffeToTfjsDense<T extends CaffeArray>(w: T, outUnits: number, inUnits: number, inputCHW?: readonly [number, number, number]): T {
  if (w.length !== outUnits * inUnits) throw new RangeError(`dense weight has ${w.length} values, [${outUnits}, ${inUnits}] needs ${outUnits * inUnits}`);
  const out = like(w, w.length);
  if (!inputCHW) {
    for (let o = 0; o < outUnits; o++) for (let i = 0; i < inUnits; i++) out[i * outUnits + o] = w[o * inUnits + i]!;
    return out;
  }
  const [C, H, W] = inputCHW;
  if (C * H * W !== inUnits) throw new RangeError(`input C,H,W ${C}x${H}x${W} does not flatten to ${inUnits} inputs`);
  for (let o = 0; o < outUnits; o++) {
    const row = o * inUnits;
    for (let c = 0; c < C; c++) {
      for (let h = 0; h < H; h++) {
        for (let x = 0; x < W; x++) {
          const caffeIn = c * H * W + h * W + x;
          const tfIn = (h * W + x) * C + c;
          out[tfIn * outUnits + o] = w[row + caffeIn]!;
        }
      }
    }
  }
  return out;
}

/** Caffe Convolution weight (or mask) [out, in, kh, kw] → tfjs conv2d kernel [kh, kw, in, out] (axes 2,3,1,0). */
export function caffeToTfjsConv<T extends CaffeArray>(w: T, outChannels: number, inChannels: number, kh: number, kw: number): T {
  const n = outChannels * inChannels * kh * kw;
  if (w.length !== n) throw new RangeError(`conv weight has ${w.length} values, [${outChannels}, ${inChannels}, ${kh}, ${kw}] needs ${n}`);
  const out = like(w, n);
  for (let o = 0; o < outChannels; o++) {
    for (let c = 0; c < inChannels; c++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          out[((y * kw + x) * inChannels + c) * outChannels + o] = w[((o * inChannels + c) * kh + y) * kw + x]!;
        }
      }
    }
  }
  return out;
}

/** Caffe shape of a prunable op's weight: [out, in] or [out, in, kh, kw]. Caffe has no depthwise layer. */
export function caffeWeightShape(op: PrunableOp): number[] {
  if (op.type === 'depthwise') throw new RangeError(`${op.name}: Caffe has no depthwise convolution`);
  return op.type === 'dense' ? [op.outUnits, op.inUnits] : [op.outChannels, op.inChannels, op.kernel, op.kernel];
}

/**
 * Per prunable op: the [C, H, W] shape a dense layer flattens (it reads a flatten of a spatial tensor), or null
 * (conv layers, and dense layers fed by a flat value).
 */
export function flattenedInputs(arch: Architecture): ([number, number, number] | null)[] {
  const w = walkGraph(arch);
  return w.layers.map((i) => {
    const n = w.nodes[i]!;
    if (n.op.type !== 'dense') return null;
    const src = n.inputs[0]!;
    const from = src >= 0 && w.nodes[src]!.op.type === 'flatten' ? w.nodes[src]!.ins[0]! : null;
    if (!from || from.flat) return null;
    const [h, x, c] = from.shape;
    return [c, h, x];
  });
}

/** One layer's arrays in Caffe layout. Masks absent = all ones (a plain, unpruned layer). */
export interface CaffeLayerArrays {
  weight: Float32Array;
  bias: Float32Array;
  weightMask?: Uint8Array;
  biasMask?: Uint8Array;
}

export interface CaffeToTfjsOptions {
  /**
   * Leave the input dimension of a dense layer fed by a flattened C,H,W tensor in Caffe's order (only transpose).
   * Wrong for LeNet-5; exists so that a regression test can show what the permutation is for.
   */
  skipFlattenPermutation?: boolean;
}

/** Maps every prunable layer of `arch` from Caffe to tfjs layouts: dense parameters plus masks (all ones where absent). */
export function caffeToTfjsParams(arch: Architecture, layers: CaffeLayerArrays[], opts: CaffeToTfjsOptions = {}): { params: ModelParams; masks: LayerMasks[] } {
  const ops = prunableOps(arch);
  if (arch.ops.some((op) => op.type === 'batchnorm')) throw new RangeError(`${arch.name}: batchnorm layers cannot be imported from Caffe arrays`);
  if (layers.length !== ops.length) throw new RangeError(`${arch.name} has ${ops.length} prunable layers, got ${layers.length}`);
  const flat = flattenedInputs(arch);
  const outLayers: ModelParams['layers'] = [];
  const masks: LayerMasks[] = [];
  ops.forEach((op, k) => {
    const l = layers[k]!;
    const nb = biasLength(op);
    if (l.bias.length !== nb) throw new RangeError(`${op.name}: bias has ${l.bias.length} values, needs ${nb}`);
    if (l.biasMask && l.biasMask.length !== nb) throw new RangeError(`${op.name}: bias mask has ${l.biasMask.length} values, needs ${nb}`);
    const chw = flat[k] && !opts.skipFlattenPermutation ? flat[k]! : undefined;
    if (op.type === 'depthwise') throw new RangeError(`${op.name}: Caffe has no depthwise convolution`);
    const map = <T extends CaffeArray>(a: T): T =>
      op.type === 'dense' ? caffeToTfjsDense(a, op.outUnits, op.inUnits, chw) : caffeToTfjsConv(a, op.outChannels, op.inChannels, op.kernel, op.kernel);
    const nw = weightShape(op).reduce((a, b) => a * b, 1);
    outLayers.push({ weight: map(l.weight), bias: l.bias.slice() });
    masks.push({
      weight: l.weightMask ? map(l.weightMask) : new Uint8Array(nw).fill(1),
      bias: l.biasMask ? l.biasMask.slice() : new Uint8Array(nb).fill(1),
    });
  });
  return { params: { layers: outLayers, batchNorms: [] }, masks };
}
