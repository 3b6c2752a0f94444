/**
 * The depthwise convolution gradients tfjs-backend-wasm 4.22 lacks (DepthwiseConv2dNativeBackpropFilter and
 * DepthwiseConv2dNativeBackpropInput), in plain JS on the wasm heap, NHWC, any stride, padding and channel
 * multiplier M (dilation 1). With output channel c·M + m reading input channel c through filter [a, b, c, m]:
 *
 *   dW[a, b, c, m] = Σ_{n, y, x} X[n, s·y + a − pT, s·x + b − pL, c] · dY[n, y, x, c·M + m]
 *   dX[n, h, w, c] = Σ_{a, b, m} W[a, b, c, m] · dY[n, y, x, c·M + m]   over (y, x) with s·y + a − pT = h, s·x + b − pL = w
 *
 * Sums run in float64 in a fixed order, so results do not depend on anything but the inputs.
 */
import * as tf from '@tensorflow/tfjs';
import { backend_util } from '@tensorflow/tfjs';
import type { TensorInfo, KernelFunc } from '@tensorflow/tfjs';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

interface DepthwiseAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number;
  dilations: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function info(xShape: number[], filterShape: number[], attrs: DepthwiseAttrs): backend_util.Conv2DInfo {
  const d = attrs.dilations;
  if ((Array.isArray(d) ? d : [d, d]).some((v) => v !== 1)) throw new Error('wasm depthwise gradients support dilation 1 only');
  return backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number], attrs.strides, 1, attrs.pad as 'valid', attrs.dimRoundingMode, true);
}

export function depthwiseBackpropFilterWasm(args: { inputs: { x: TensorInfo; dy: TensorInfo }; backend: WasmBackendLike; attrs: DepthwiseAttrs & { filterShape: number[] } }): TensorInfo {
  const { backend, attrs } = args;
  const { x: xi, dy: dyi } = args.inputs;
  const c = info(xi.shape, attrs.filterShape, attrs);
  const [fh, fw, C, M] = attrs.filterShape as [number, number, number, number];
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo, strideHeight: sh, strideWidth: sw } = c;
  const pT = c.padInfo.top;
  const pL = c.padInfo.left;
  const out = backend.makeOutput([fh, fw, C, M], 'float32');
  const dw = backend.typedArrayFromHeap(out);
  const x = backend.typedArrayFromHeap(xi);
  const dy = backend.typedArrayFromHeap(dyi);
  const CM = C * M;
  const acc = new Float64Array(fh * fw * CM);
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < Ho; y++) {
      for (let xo = 0; xo < Wo; xo++) {
        const g = ((n * Ho + y) * Wo + xo) * CM;
        for (let a = 0; a < fh; a++) {
          const r = sh * y + a - pT;
          if (r < 0 || r >= H) continue;
          for (let b = 0; b < fw; b++) {
            const col = sw * xo + b - pL;
            if (col < 0 || col >= W) continue;
            const xb = ((n * H + r) * W + col) * C;
            const wb = (a * fw + b) * CM;
            for (let ch = 0; ch < C; ch++) {
              const xv = x[xb + ch]!;
              if (xv === 0) continue;
              for (let m = 0; m < M; m++) acc[wb + ch * M + m] += xv * dy[g + ch * M + m]!;
            }
          }
        }
      }
    }
  }
  dw.set(acc);
  return out;
}

export function depthwiseBackpropInputWasm(args: { inputs: { dy: TensorInfo; filter: TensorInfo }; backend: WasmBackendLike; attrs: DepthwiseAttrs & { inputShape: number[] } }): TensorInfo {
  const { backend, attrs } = args;
  const { dy: dyi, filter: fi } = args.inputs;
  const c = info(attrs.inputShape, fi.shape, attrs);
  const [fh, fw, C, M] = fi.shape as [number, number, number, number];
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo, strideHeight: sh, strideWidth: sw } = c;
  const pT = c.padInfo.top;
  const pL = c.padInfo.left;
  const out = backend.makeOutput(attrs.inputShape, 'float32');
  const dx = backend.typedArrayFromHeap(out);
  const w = backend.typedArrayFromHeap(fi);
  const dy = backend.typedArrayFromHeap(dyi);
  const CM = C * M;
  const acc = new Float64Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < Ho; y++) {
      for (let xo = 0; xo < Wo; xo++) {
        const g = ((n * Ho + y) * Wo + xo) * CM;
        for (let a = 0; a < fh; a++) {
          const r = sh * y + a - pT;
          if (r < 0 || r >= H) continue;
          for (let b = 0; b < fw; b++) {
            const col = sw * xo + b - pL;
            if (col < 0 || col >= W) continue;
            const xb = ((n * H + r) * W + col) * C;
            const wb = (a * fw + b) * CM;
            for (let ch = 0; ch < C; ch++) {
              let s = 0;
              for (let m = 0; m < M; m++) s += w[wb + ch * M + m]! * dy[g + ch * M + m]!;
              acc[xb + ch] += s;
            }
          }
        }
      }
    }
  }
  dx.set(acc);
  return out;
}

/** Registers both kernels for wasm unless the installed backend has them. Idempotent. */
export function registerWasmDepthwiseKernels(): void {
  if (!tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm')) {
    tf.registerKernel({ kernelName: 'DepthwiseConv2dNativeBackpropFilter', backendName: 'wasm', kernelFunc: depthwiseBackpropFilterWasm as unknown as KernelFunc });
  }
  if (!tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')) {
    tf.registerKernel({ kernelName: 'DepthwiseConv2dNativeBackpropInput', backendName: 'wasm', kernelFunc: depthwiseBackpropInputWasm as unknown as KernelFunc });
  }
}
