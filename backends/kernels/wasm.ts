/**
 * wasm kernels for training (tfjs-backend-wasm 4.22), registered by registerWasmKernels():
 * - Conv2DBackpropFilter: missing on wasm, so the filter gradient of any conv2d (LeNet-5, every CNN) failed.
 * - DepthwiseConv2dNativeBackpropFilter / BackpropInput: missing on wasm (wasm-depthwise.ts).
 * - MaxPoolGrad: the stock kernel is WRONG whenever there is more than one channel (gradients routed to the wrong
 *   positions; every LeNet-5 conv gradient was off by ~80% against the cpu backend). Replaced.
 * - Conv2DBackpropInput: the stock kernel is a plain loop; stride-1 NHWC cases run as an XNNPACK conv instead.
 * - BatchMatMul / _FusedMatMul with transposed operands: the stock path is a naive loop; operands are transposed
 *   explicitly and the XNNPACK path is used.
 * Known and left alone: the stock _FusedMatMul mis-applies the bias for batched (rank-3, batch > 1) inputs; tfjs
 * sizes numeric conv pads of non-square filters with the filter height only (all backends).
 *
 * The filter gradient is itself a convolution, computed with the wasm backend's own (XNNPACK) Conv2D kernel over
 * transposed tensors:
 *
 *   dW[r, c, i, o] = Σ_{n, y, x} X[n, r + s·y − pT, c + s·x − pL, i] · dY[n, y, x, o]
 *
 * is a stride-1 convolution whose batch is Cin (X → [Cin, H, W, N]) and whose filter is dY → [Ho, Wo, N, Cout]
 * dilated by the forward stride; the forward padding becomes the explicit padding of that convolution (top/left as
 * the forward pass, bottom/right just enough for kh×kw outputs). The [Cin, ≥kh, ≥kw, Cout] result is cropped and
 * transposed to [kh, kw, Cin, Cout]. NCHW inputs are transposed to NHWC first.
 *
 * Intermediates are backend-level TensorInfos (never engine tensors), released with backend.disposeData, so the
 * kernel leaves nothing behind (tests check tf.memory()).
 */
import * as tf from '@tensorflow/tfjs';
import { backend_util } from '@tensorflow/tfjs';
import type { TensorInfo, KernelFunc, NamedAttrMap } from '@tensorflow/tfjs';
import { registerWasmDepthwiseKernels } from './wasm-depthwise.js';

/** The wasm backend surface the kernel uses (BackendWasm). */
interface WasmBackendLike {
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  readSync(dataId: object): Float32Array;
}

/** Which implementation the registered wasm Conv2DBackpropFilter runs (the fallback exists for benchmarking). */
export type Conv2DBackpropFilterImpl = 'wasm-conv' | 'cpu-fallback';
let impl: Conv2DBackpropFilterImpl = 'wasm-conv';

/** Selects the implementation behind the registered kernel (bench only; default 'wasm-conv'). */
export function setConv2DBackpropFilterImpl(which: Conv2DBackpropFilterImpl): void {
  impl = which;
}

function wasmKernel(name: string): KernelFunc {
  const k = tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`wasm kernel '${name}' is not registered`);
  return k.kernelFunc;
}

function run(name: string, backend: WasmBackendLike, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap = {}): TensorInfo {
  return wasmKernel(name)({ inputs, backend: backend as unknown as tf.KernelBackend, attrs }) as TensorInfo;
}

interface Conv2DBackpropFilterArgs {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: WasmBackendLike;
  attrs: {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
}

/** Filter gradient through the wasm backend's XNNPACK Conv2D (see the file comment). Returns [kh, kw, Cin, Cout]. */
export function conv2DBackpropFilterWasm(args: Conv2DBackpropFilterArgs): TensorInfo {
  const { backend, attrs } = args;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
  const temps: TensorInfo[] = [];
  const keep = (t: TensorInfo): TensorInfo => {
    temps.push(t);
    return t;
  };
  try {
    let { x, dy } = args.inputs;
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('wasm Conv2DBackpropFilter supports float32 only');
    if (dataFormat === 'NCHW') {
      x = keep(run('Transpose', backend, { x }, { perm: [0, 2, 3, 1] }));
      dy = keep(run('Transpose', backend, { x: dy }, { perm: [0, 2, 3, 1] }));
    }
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filterShape,
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo } = info;
    const [, dyH, dyW] = dy.shape;
    if (dyH !== Ho || dyW !== Wo) throw new Error(`Conv2DBackpropFilter: dy is ${dy.shape} but the forward output is ${Ho}x${Wo}`);
    const padTop = info.padInfo.top;
    const padLeft = info.padInfo.left;
    const padBottom = Math.max(0, kh + (Ho - 1) * sh - H - padTop);
    const padRight = Math.max(0, kw + (Wo - 1) * sw - W - padLeft);
    const xT = keep(run('Transpose', backend, { x }, { perm: [3, 1, 2, 0] })); // [Cin, H, W, N]
    const dyT = keep(run('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] })); // [Ho, Wo, N, Cout]
    let g = keep(
      run(
        'Conv2D',
        backend,
        { x: xT, filter: dyT },
        {
          strides: [1, 1],
          pad: [
            [0, 0],
            [padTop, padBottom],
            [padLeft, padRight],
            [0, 0],
          ],
          dataFormat: 'NHWC',
          dilations: [sh, sw],
          dimRoundingMode: 'floor',
        } as unknown as NamedAttrMap,
      ),
    ); // [Cin, >=kh, >=kw, Cout]
    if (g.shape[1] !== kh || g.shape[2] !== kw) {
      g = keep(run('Slice', backend, { x: g }, { begin: [0, 0, 0, 0], size: [g.shape[0]!, kh, kw, g.shape[3]!] }));
    }
    return run('Transpose', backend, { x: g }, { perm: [1, 2, 0, 3] }); // [kh, kw, Cin, Cout]
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/**
 * The alternative: copy x and dy out of the wasm heap, run the cpu backend's Conv2DBackpropFilter (plain JS loops)
 * and copy the result back. Kept only to measure what the wasm kernel saves (bench/train.ts --conv-grad cpu).
 */
export function conv2DBackpropFilterCpuFallback(args: Conv2DBackpropFilterArgs): TensorInfo {
  const { backend, attrs } = args;
  const { x, dy } = args.inputs;
  const cpu = tf.findBackend('cpu') as unknown as {
    write(values: Float32Array, shape: number[], dtype: 'float32'): object;
    readSync(dataId: object): Float32Array;
    disposeData(dataId: object, force?: boolean): boolean;
  } | null;
  const kernel = tf.getKernel('Conv2DBackpropFilter', 'cpu');
  if (!cpu || !kernel) throw new Error('cpu backend is not available for the Conv2DBackpropFilter fallback');
  const xId = cpu.write(backend.readSync(x.dataId).slice(), x.shape, 'float32');
  const dyId = cpu.write(backend.readSync(dy.dataId).slice(), dy.shape, 'float32');
  let outId: object | null = null;
  try {
    const r = kernel.kernelFunc({
      inputs: { x: { dataId: xId, shape: x.shape, dtype: 'float32' }, dy: { dataId: dyId, shape: dy.shape, dtype: 'float32' } },
      backend: cpu as unknown as tf.KernelBackend,
      attrs: attrs as unknown as NamedAttrMap,
    }) as TensorInfo;
    outId = r.dataId;
    const out = backend.makeOutput(r.shape, 'float32');
    backend.typedArrayFromHeap(out).set(cpu.readSync(r.dataId));
    return out;
  } finally {
    cpu.disposeData(xId, true);
    cpu.disposeData(dyId, true);
    if (outId) cpu.disposeData(outId, true);
  }
}

function conv2DBackpropFilter(args: unknown): TensorInfo {
  const a = args as Conv2DBackpropFilterArgs;
  return impl === 'cpu-fallback' ? conv2DBackpropFilterCpuFallback(a) : conv2DBackpropFilterWasm(a);
}

interface Conv2DBackpropInputArgs {
  inputs: { dy: TensorInfo; filter: TensorInfo };
  backend: WasmBackendLike;
  attrs: {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    inputShape: [number, number, number, number];
  };
}

/**
 * Input gradient of a stride-1 NHWC conv2d through the XNNPACK Conv2D: dx = conv2d(dy, W flipped in space with
 * in/out channels swapped), padded by k−1−pad on each side. Returns null where that does not apply (strides > 1,
 * NCHW, padding larger than k−1); the caller then runs the stock kernel.
 * (The stock wasm Conv2DBackpropInput is a plain loop: 93 ms against ~20 ms for LeNet-5's conv2 at batch 64.)
 */
export function conv2DBackpropInputWasm(args: Conv2DBackpropInputArgs): TensorInfo | null {
  const { backend, attrs } = args;
  const { dy, filter } = args.inputs;
  if (attrs.dataFormat === 'NCHW' || dy.dtype !== 'float32' || filter.dtype !== 'float32') return null;
  const info = backend_util.computeConv2DInfo(attrs.inputShape, filter.shape as [number, number, number, number], attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { strideHeight, strideWidth, filterHeight: kh, filterWidth: kw, inChannels: ci, outChannels: co } = info;
  if (strideHeight !== 1 || strideWidth !== 1) return null;
  const p = info.padInfo;
  const pads = [kh - 1 - p.top, kh - 1 - p.bottom, kw - 1 - p.left, kw - 1 - p.right];
  if (pads.some((v) => v < 0)) return null;
  if (dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth) return null;
  // (tfjs sizes numeric pads of non-square filters with the filter height only; such shapes go to the stock kernel.)
  if (info.outHeight + pads[0] + pads[1] - kh + 1 !== attrs.inputShape[1] || info.outWidth + pads[2] + pads[3] - kw + 1 !== attrs.inputShape[2]) return null;
  // Flipped, channel-swapped filter [kh, kw, Cout, Cin], built on the host (filters are small).
  const w = backend.readSync(filter.dataId);
  const flipped = backend.makeOutput([kh, kw, co, ci], 'float32');
  try {
    const f = backend.typedArrayFromHeap(flipped);
    for (let r = 0; r < kh; r++) {
      for (let c = 0; c < kw; c++) {
        const src = ((kh - 1 - r) * kw + (kw - 1 - c)) * ci * co;
        const dst = (r * kw + c) * co * ci;
        for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) f[dst + o * ci + i] = w[src + i * co + o]!;
      }
    }
    return run(
      'Conv2D',
      backend,
      { x: dy, filter: flipped },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [pads[0], pads[1]],
          [pads[2], pads[3]],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [1, 1],
        dimRoundingMode: 'floor',
      } as unknown as NamedAttrMap,
    );
  } finally {
    backend.disposeData(flipped.dataId);
  }
}

const WRAPPED_CONV = Symbol.for('prunus.wasm.conv2dBackpropInputWrapper');

function wrapConv2DBackpropInput(): void {
  const orig = tf.getKernel('Conv2DBackpropInput', 'wasm');
  if (!orig || (orig.kernelFunc as unknown as Record<symbol, boolean>)[WRAPPED_CONV]) return;
  const origFunc = orig.kernelFunc;
  const wrapped = ((args: Conv2DBackpropInputArgs) => conv2DBackpropInputWasm(args) ?? origFunc(args as unknown as Parameters<KernelFunc>[0])) as unknown as KernelFunc;
  (wrapped as unknown as Record<symbol, boolean>)[WRAPPED_CONV] = true;
  tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: wrapped, ...(orig.setupFunc ? { setupFunc: orig.setupFunc } : {}), ...(orig.disposeFunc ? { disposeFunc: orig.disposeFunc } : {}) });
}

interface MaxPoolGradArgs {
  inputs: { dy: TensorInfo; input: TensorInfo; output?: TensorInfo };
  backend: WasmBackendLike;
  attrs: {
    filterSize: [number, number] | number;
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
}

/**
 * MaxPoolGrad on the wasm heap in plain JS. The stock tfjs-backend-wasm 4.22 kernel routes the gradient to wrong
 * positions whenever there is more than one channel (found training LeNet-5: every conv gradient was off by ~80%
 * against the cpu backend), so it is replaced. Semantics of the cpu backend: the gradient of each window goes to its
 * first maximum in row-major window order; NaNs are never a maximum.
 */
export function maxPoolGradWasm(args: MaxPoolGradArgs): TensorInfo {
  const { backend, attrs } = args;
  const { dy, input } = args.inputs;
  if (input.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('wasm MaxPoolGrad supports float32 only');
  const info = backend_util.computePool2DInfo(input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo, strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  if (dy.shape[1] !== Ho || dy.shape[2] !== Wo) throw new Error(`MaxPoolGrad: dy is ${dy.shape} but the pooled output is ${Ho}x${Wo}`);
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const out = backend.makeOutput(input.shape, 'float32');
  // Views are taken after the allocation (a growing heap detaches earlier views).
  const dx = backend.typedArrayFromHeap(out);
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  dx.fill(0);
  const best = new Float32Array(C);
  const where = new Int32Array(C);
  for (let n = 0; n < N; n++) {
    for (let yr = 0; yr < Ho; yr++) {
      const r0 = yr * sh - padTop;
      const rFrom = Math.max(0, r0);
      const rTo = Math.min(H, r0 + fh);
      for (let yc = 0; yc < Wo; yc++) {
        const c0 = yc * sw - padLeft;
        const cFrom = Math.max(0, c0);
        const cTo = Math.min(W, c0 + fw);
        best.fill(-Infinity);
        where.fill(-1);
        for (let r = rFrom; r < rTo; r++) {
          for (let c = cFrom; c < cTo; c++) {
            const base = ((n * H + r) * W + c) * C;
            for (let ch = 0; ch < C; ch++) {
              const v = x[base + ch]!;
              if (v > best[ch]!) {
                best[ch] = v;
                where[ch] = base + ch;
              }
            }
          }
        }
        const gBase = ((n * Ho + yr) * Wo + yc) * C;
        for (let ch = 0; ch < C; ch++) {
          const at = where[ch]!;
          if (at >= 0) dx[at] = dx[at]! + g[gBase + ch]!;
        }
      }
    }
  }
  return out;
}

const REPLACED_POOL = Symbol.for('prunus.wasm.maxPoolGrad');

function replaceMaxPoolGrad(): void {
  const orig = tf.getKernel('MaxPoolGrad', 'wasm');
  if (orig && (orig.kernelFunc as unknown as Record<symbol, boolean>)[REPLACED_POOL]) return;
  const func = ((args: MaxPoolGradArgs) => maxPoolGradWasm(args)) as unknown as KernelFunc;
  (func as unknown as Record<symbol, boolean>)[REPLACED_POOL] = true;
  if (orig) tf.unregisterKernel('MaxPoolGrad', 'wasm');
  tf.registerKernel({ kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: func, ...(orig?.setupFunc ? { setupFunc: orig.setupFunc } : {}) });
}

const WRAPPED = Symbol.for('prunus.wasm.matmulWrapper');

/**
 * tfjs-backend-wasm runs a matmul through XNNPACK only when neither operand is transposed; with transposeA or
 * transposeB it falls back to a naive loop (measured on LeNet-300-100 training: x^T·dy [64,784]^T×[64,300] took
 * 15.5 ms against 2.3 ms for the forward [64,784]×[784,300]). Gradients of every matmul use those transposed forms, so
 * the wrapper transposes the operand explicitly (the wasm Transpose kernel is cheap) and calls the original kernel
 * with both flags false. Results equal the plain product up to float32 summation order.
 *
 * A transposed B is a weight matrix in every gradient (dx = dy·Wᵀ), and a sharded training step multiplies the same
 * weights once per shard: the last few transposed B operands are kept, keyed by their data (a tensor's data never
 * changes; a variable's assign gives it new data), so each is transposed once per step. A cached copy has the same
 * bits as a fresh one.
 */
const transposedB: { dataId: object; rank: number; t: TensorInfo; backend: WasmBackendLike }[] = [];
const TRANSPOSED_B_CACHE = 4;
const TRANSPOSED_B_MIN_SIZE = 4096;

function wrapMatMul(kernelName: 'BatchMatMul' | '_FusedMatMul'): void {
  const orig = tf.getKernel(kernelName, 'wasm');
  if (!orig || (orig.kernelFunc as unknown as Record<symbol, boolean>)[WRAPPED]) return;
  const origFunc = orig.kernelFunc;
  const wrapped = ((args: { inputs: Record<string, TensorInfo>; backend: WasmBackendLike; attrs: NamedAttrMap }) => {
    const { transposeA, transposeB } = args.attrs as { transposeA?: boolean; transposeB?: boolean };
    if (!transposeA && !transposeB) return origFunc(args as unknown as Parameters<KernelFunc>[0]);
    const { backend } = args;
    const temps: TensorInfo[] = [];
    const swapLast = (t: TensorInfo): TensorInfo => {
      const r = t.shape.length;
      const perm = t.shape.map((_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
      const out = run('Transpose', backend, { x: t }, { perm });
      temps.push(out);
      return out;
    };
    const cachedB = (t: TensorInfo): TensorInfo => {
      if (t.shape.reduce((a, b) => a * b, 1) < TRANSPOSED_B_MIN_SIZE) return swapLast(t);
      const hit = transposedB.find((e) => e.dataId === t.dataId && e.rank === t.shape.length && e.backend === backend);
      if (hit) return hit.t;
      const r = t.shape.length;
      const perm = t.shape.map((_, i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
      const out = run('Transpose', backend, { x: t }, { perm });
      transposedB.push({ dataId: t.dataId, rank: r, t: out, backend });
      if (transposedB.length > TRANSPOSED_B_CACHE) {
        const old = transposedB.shift()!;
        old.backend.disposeData(old.t.dataId);
      }
      return out;
    };
    try {
      const inputs = { ...args.inputs };
      if (transposeA) inputs['a'] = swapLast(inputs['a']!);
      if (transposeB) inputs['b'] = cachedB(inputs['b']!);
      return origFunc({ inputs, backend: backend as unknown as tf.KernelBackend, attrs: { ...args.attrs, transposeA: false, transposeB: false } } as Parameters<KernelFunc>[0]);
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  }) as unknown as KernelFunc;
  (wrapped as unknown as Record<symbol, boolean>)[WRAPPED] = true;
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: wrapped, ...(orig.setupFunc ? { setupFunc: orig.setupFunc } : {}), ...(orig.disposeFunc ? { disposeFunc: orig.disposeFunc } : {}) });
}

/**
 * Identity (tf.clone, and every input the tape saves for a gradient) copies the data on wasm; tensors are immutable,
 * so the clone shares it instead, as reshape does and as the cpu backend's Identity does. A training step then no
 * longer copies every weight and activation it saves, and a weight saved once per shard stays one datum (which the
 * transposed-B cache above relies on).
 */
function shareIdentity(): void {
  const orig = tf.getKernel('Identity', 'wasm');
  if (!orig || (orig.kernelFunc as unknown as Record<symbol, boolean>)[WRAPPED]) return;
  const origFunc = orig.kernelFunc;
  const shared = ((args: { inputs: { x: TensorInfo }; backend: WasmBackendLike & { incRef(dataId: object): void } }) => {
    const { x } = args.inputs;
    if (x.dtype === 'string') return origFunc(args as unknown as Parameters<KernelFunc>[0]);
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as unknown as KernelFunc;
  (shared as unknown as Record<symbol, boolean>)[WRAPPED] = true;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: shared, ...(orig.setupFunc ? { setupFunc: orig.setupFunc } : {}) });
}

/** Kernels registered (or wrapped) here for the wasm backend. */
export const WASM_EXTRA_KERNELS = ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'MaxPoolGrad (replaces a wrong stock kernel)', 'Conv2DBackpropInput (stride 1)', 'BatchMatMul (transposed operands)', '_FusedMatMul (transposed operands)', 'Identity (shares data)'] as const;

/**
 * Registers the missing wasm kernels and the matmul wrappers. Idempotent; a Conv2DBackpropFilter the installed
 * tfjs-backend-wasm already provides is left alone. Called by initBackend after the wasm backend activates.
 */
export function registerWasmKernels(): void {
  if (!tf.getKernel('Conv2DBackpropFilter', 'wasm')) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter as unknown as KernelFunc });
  }
  wrapMatMul('BatchMatMul');
  wrapMatMul('_FusedMatMul');
  wrapConv2DBackpropInput();
  replaceMaxPoolGrad();
  shareIdentity();
  registerWasmDepthwiseKernels();
}
