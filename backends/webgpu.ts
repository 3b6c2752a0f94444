/**
 * WebGPU through Dawn's Node bindings (npm `webgpu`) and @tensorflow/tfjs-backend-webgpu.
 *
 * Both packages are loaded lazily, on the first initWebgpu call in a thread; any failure (missing package, missing
 * libvulkan, no adapter) becomes an Error whose message says why, and the caller falls back. Each thread (main or
 * worker) gets its own Dawn instance and device.
 *
 * What this module adds to the stock tfjs backend:
 * - The adapter is requested and inspected here, before the backend is registered: a software adapter (Mesa's
 *   lavapipe, SwiftShader) reports isFallbackAdapter / architecture 'software' and is refused when a hardware adapter is
 *   required (`auto`), and accepted but recorded as such for an explicit `--backend webgpu`.
 * - Synchronous reads (dataSync, arraySync): the stock backend reads through OffscreenCanvas, which Node lacks. Here a
 *   read copies the tensor's buffer to a staging buffer, starts mapAsync and then drives Dawn's event processing from
 *   this thread until the map completes. dawn.node processes events in a native callback that it hands to
 *   setImmediate; initWebgpu captures that callback while it creates the device and calls it directly.
 * - In-flight asynchronous reads (tensor.data()) are tracked so finishWebgpu() can wait for them: exiting the process or
 *   terminating a worker while a readback is in flight aborts the process inside dawn.node.
 * - Max-pool gradients route each window's gradient to its first maximum, as the cpu backend and Caffe do. The stock
 *   webgpu shader picks the last of tied maxima; ties are common on MNIST (exact zeros) once weights are masked, and
 *   then training diverged from the cpu backend by far more than rounding.
 * - WEBGPU_CPU_FORWARD (run small ops on the CPU when their inputs are still host-side) is turned off, so all math
 *   runs on the device and timings measure the device.
 */
import * as tf from '@tensorflow/tfjs';

export interface WebgpuAdapterInfo {
  /** Human-readable adapter description, e.g. "NVIDIA H100" or "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)". */
  description: string;
  vendor?: string;
  /** e.g. "hopper", or "software" for CPU rasterizers. */
  architecture?: string;
  /** Device name reported by the driver. */
  device?: string;
  /** True for software adapters (lavapipe, SwiftShader): this is not a GPU. */
  isFallbackAdapter: boolean;
}

export interface WebgpuInit {
  name: 'webgpu';
  detail: string;
  adapter: WebgpuAdapterInfo;
}

// Minimal structural types for the WebGPU objects used here (the @webgpu/types globals are not pulled into the
// project's compilation on purpose: they declare DOM-like globals for everyone).
interface GpuAdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface GpuBufferLike {
  size: number;
  mapState: string;
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}
interface GpuDeviceLike {
  queue: { onSubmittedWorkDone(): Promise<void> };
  destroy(): void;
  lost: Promise<{ reason: string; message: string }>;
}
interface GpuAdapterLike {
  info?: GpuAdapterInfoLike;
  isFallbackAdapter?: boolean;
  features: Set<string>;
  limits: Record<string, number>;
  requestDevice(desc?: unknown): Promise<GpuDeviceLike>;
}
interface GpuLike {
  requestAdapter(opts?: unknown): Promise<GpuAdapterLike | null>;
}
interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}
interface BufferManagerLike {
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GpuBufferLike;
  releaseBuffer(buffer: GpuBufferLike, reuse?: boolean): void;
}
interface TensorDataLike {
  values: unknown;
  dtype: tf.DataType;
  resource: unknown;
  complexTensorInfos?: unknown;
}
/** The parts of tfjs-backend-webgpu's WebGPUBackend used here. */
interface WebGPUBackendLike extends tf.KernelBackend {
  device: GpuDeviceLike;
  bufferManager: BufferManagerLike;
  tensorMap: { get(dataId: object): TensorDataLike; has(dataId: object): boolean };
  commandEncoder: { copyBufferToBuffer(src: unknown, so: number, dst: unknown, doff: number, size: number): void } | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  convertAndCacheOnCPU(dataId: object, data: unknown): unknown;
  getBufferData(buffer: unknown): Promise<ArrayBuffer | null>;
  getQueryTime(): Promise<number>;
  readSync(dataId: object): tf.backend_util.BackendValues;
  runWebGPUProgram(program: WebGPUProgramLike, ...rest: unknown[]): tf.TensorInfo;
}
interface WebGPUProgramLike {
  poolType?: string;
  computePositions?: boolean;
  shaderKey: string;
  getUserCode(): string;
  prunusFirstMax?: boolean;
}
interface WebgpuBackendModule {
  WebGPUBackend: new (device: GpuDeviceLike, adapterInfo?: unknown) => WebGPUBackendLike;
}

/** Per-thread state once the backend is registered. */
interface State {
  gpu: GpuLike;
  init: WebgpuInit;
  device: GpuDeviceLike | null;
  backend: WebGPUBackendLike | null;
  /** dawn.node's native "process events" callback, captured from its setImmediate call. */
  tick: (() => void) | null;
  inflight: Set<Promise<unknown>>;
  /** Set when the device was lost; the reason. */
  lost: string | null;
}

let dawn: DawnModule | null = null;
let webgpuModule: WebgpuBackendModule | null = null;
let gpuInstance: GpuLike | null = null;
let state: State | null = null;
/** Native functions handed to setImmediate while the instance/device were being created. */
const capturedTicks: (() => void)[] = [];

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 200);
}

/** Whether an adapter is a CPU implementation rather than a GPU. */
export function isSoftwareAdapter(info: WebgpuAdapterInfo): boolean {
  if (info.isFallbackAdapter) return true;
  if ((info.architecture ?? '').toLowerCase() === 'software') return true;
  return /llvmpipe|lavapipe|swiftshader|software rasterizer|microsoft basic render/i.test(`${info.description} ${info.device ?? ''}`);
}

function adapterInfo(adapter: GpuAdapterLike): WebgpuAdapterInfo {
  const i = adapter.info ?? {};
  const description = i.description || i.device || i.vendor || 'unknown adapter';
  const info: WebgpuAdapterInfo = {
    description,
    ...(i.vendor ? { vendor: i.vendor } : {}),
    ...(i.architecture ? { architecture: i.architecture } : {}),
    ...(i.device ? { device: i.device } : {}),
    isFallbackAdapter: Boolean(i.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false),
  };
  // Dawn reports lavapipe with isFallbackAdapter true; older drivers may not: trust the architecture and name too.
  if (isSoftwareAdapter(info)) info.isFallbackAdapter = true;
  return info;
}

/**
 * Runs `fn` with globalThis.setImmediate wrapped so that native functions passed to it (dawn.node's event-processing
 * callback) are remembered. JS callbacks pass through untouched.
 */
async function capturingSetImmediate<T>(fn: () => Promise<T>): Promise<T> {
  const g = globalThis as { setImmediate: typeof setImmediate };
  const orig = g.setImmediate;
  const wrapped = function (this: unknown, cb: (...a: unknown[]) => void, ...args: unknown[]) {
    if (typeof cb === 'function' && cb.name === '' && /\[native code\]/.test(Function.prototype.toString.call(cb))) {
      capturedTicks.push(() => cb());
      if (capturedTicks.length > 4) capturedTicks.shift();
    }
    return orig(cb, ...args);
  } as unknown as typeof setImmediate;
  g.setImmediate = wrapped;
  try {
    return await fn();
  } finally {
    if (g.setImmediate === wrapped) g.setImmediate = orig;
  }
}

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  const spec: string = 'webgpu';
  let mod: DawnModule;
  try {
    mod = (await import(spec)) as DawnModule;
  } catch (e) {
    throw new Error(`npm package 'webgpu' (Dawn) not loadable: ${message(e)}`);
  }
  // GPUBufferUsage, GPUMapMode, ... are globals in browsers; tfjs-backend-webgpu uses them as such.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  }
  dawn = mod;
  return mod;
}

/** Makes navigator.gpu visible to tfjs-backend-webgpu (Node 20 has no navigator; Node >= 21 has one without gpu). */
function exposeGpu(gpu: GpuLike): void {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu === gpu) return;
  try {
    if (g.navigator) g.navigator.gpu = gpu;
  } catch {
    // non-writable navigator: replaced below
  }
  if (g.navigator?.gpu !== gpu) {
    const base: object = g.navigator ?? {};
    const nav = Object.create(base) as { gpu: unknown };
    Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, enumerable: true });
    Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  }
}

async function loadTfjsWebgpu(): Promise<WebgpuBackendModule> {
  if (webgpuModule) return webgpuModule;
  const spec: string = '@tensorflow/tfjs-backend-webgpu';
  try {
    webgpuModule = (await import(spec)) as WebgpuBackendModule;
  } catch (e) {
    throw new Error(`@tensorflow/tfjs-backend-webgpu not loadable: ${message(e)}`);
  }
  if (typeof webgpuModule.WebGPUBackend !== 'function') throw new Error('@tensorflow/tfjs-backend-webgpu exports no WebGPUBackend');
  return webgpuModule;
}

/** Copies `buffer` to a staging buffer and maps it, driving Dawn's events from this thread until it is mapped. */
function readBufferSync(s: State, be: WebGPUBackendLike, buffer: GpuBufferLike): ArrayBuffer {
  const tick = s.tick;
  if (!tick) {
    throw new Error('webgpu: synchronous reads (dataSync/arraySync) are unavailable in this thread (no Dawn event hook); use await tensor.data()');
  }
  if (s.lost) throw new Error(`webgpu: device lost (${s.lost})`);
  const G = globalThis as unknown as { GPUBufferUsage: Record<string, number>; GPUMapMode: Record<string, number> };
  const size = buffer.size;
  const staging = be.bufferManager.acquireBuffer(size, G.GPUBufferUsage.COPY_DST! | G.GPUBufferUsage.MAP_READ!);
  be.ensureCommandEncoderReady();
  be.endComputePassEncoder();
  be.commandEncoder!.copyBufferToBuffer(buffer, 0, staging, 0, size);
  be.submitQueue();
  let failure: unknown = null;
  staging.mapAsync(G.GPUMapMode.READ!).catch((e: unknown) => {
    failure = e;
  });
  const start = performance.now();
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  let spins = 0;
  while (staging.mapState !== 'mapped') {
    if (failure !== null || s.lost) throw new Error(`webgpu: readback failed: ${failure !== null ? message(failure) : s.lost}`);
    if (staging.mapState === 'unmapped') throw new Error('webgpu: readback buffer was unmapped before the read completed');
    tick();
    // Busy-spin briefly (small reads finish in microseconds), then back off to 50 µs naps for long kernels.
    if (++spins > 1000) Atomics.wait(sleeper, 0, 0, 0.05);
    if (performance.now() - start > 600_000) throw new Error('webgpu: readback did not complete within 10 minutes');
  }
  const values = staging.getMappedRange().slice(0);
  staging.unmap();
  be.bufferManager.releaseBuffer(staging);
  return values;
}

function patchBackend(s: State, be: WebGPUBackendLike): void {
  // Synchronous reads that work under Node.
  be.readSync = (dataId: object): tf.backend_util.BackendValues => {
    const td = be.tensorMap.get(dataId);
    if (td.values != null || td.dtype === 'string') return td.values as tf.backend_util.BackendValues;
    if (td.dtype === 'complex64') throw new Error('webgpu: synchronous reads of complex64 tensors are not supported; use await tensor.data()');
    const data = readBufferSync(s, be, td.resource as GpuBufferLike);
    const vals = tf.util.convertBackendValuesAndArrayBuffer(data, td.dtype);
    be.convertAndCacheOnCPU(dataId, vals);
    return vals as tf.backend_util.BackendValues;
  };
  // Track asynchronous readbacks so finishWebgpu can wait for them.
  const track = <T>(p: Promise<T>): Promise<T> => {
    s.inflight.add(p);
    p.then(
      () => s.inflight.delete(p),
      () => s.inflight.delete(p),
    );
    return p;
  };
  const getBufferData = be.getBufferData.bind(be);
  be.getBufferData = (buffer: unknown) => track(getBufferData(buffer));
  const getQueryTime = be.getQueryTime.bind(be);
  be.getQueryTime = () => track(getQueryTime());
  // First-maximum tie-breaking for the max-pool positions that MaxPoolGrad (and MaxPoolWithArgmax) compute.
  const run = be.runWebGPUProgram.bind(be);
  be.runWebGPUProgram = (program: WebGPUProgramLike, ...rest: unknown[]) => {
    if (program.computePositions === true && program.poolType === 'max' && !program.prunusFirstMax) firstMaxPositions(program);
    return run(program, ...rest);
  };
}

const LAST_MAX = 'if (value >= currMaxValue) {';
const FIRST_MAX = 'if (value > currMaxValue || maxValueFound == 0.0) {';

/** Rewrites a tfjs-webgpu pool program that computes argmax positions so that the first of tied maxima wins. */
export function firstMaxPositions(program: WebGPUProgramLike): void {
  const userCode = program.getUserCode.bind(program);
  program.getUserCode = () => {
    const code = userCode();
    if (!code.includes(LAST_MAX)) {
      throw new Error('webgpu: cannot set first-max tie-breaking in the max-pool positions shader (tfjs-backend-webgpu changed)');
    }
    return code.replace(LAST_MAX, FIRST_MAX);
  };
  program.shaderKey = `${program.shaderKey}_firstmax`;
  program.prunusFirstMax = true;
}

/**
 * Registers and activates tfjs's 'webgpu' backend on a Dawn adapter. With requireHardware, software adapters are
 * refused (the error says which adapter was found). Idempotent per thread: later calls return the first result
 * (and re-apply the hardware requirement).
 */
export async function initWebgpu(opts: { requireHardware: boolean }): Promise<WebgpuInit> {
  if (state && !state.lost && state.backend) {
    if (opts.requireHardware && state.init.adapter.isFallbackAdapter) {
      throw new Error(`only a software adapter: ${state.init.adapter.description}`);
    }
    await activateWebgpu();
    return state.init;
  }
  const mod = await loadDawn();
  const tfWebgpu = await loadTfjsWebgpu();

  const found = await capturingSetImmediate(async () => {
    if (!gpuInstance) {
      try {
        gpuInstance = mod.create([]);
      } catch (e) {
        throw new Error(`Dawn instance creation failed: ${message(e)}`);
      }
    }
    const gpu = gpuInstance;
    let adapter: GpuAdapterLike | null;
    try {
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    } catch (e) {
      throw new Error(`requestAdapter failed: ${message(e)}`);
    }
    if (!adapter) {
      throw new Error('no WebGPU adapter (Dawn found no Vulkan driver: install a GPU driver, or Mesa >= 25 lavapipe for software)');
    }
    const info = adapterInfo(adapter);
    if (opts.requireHardware && info.isFallbackAdapter) throw new Error(`only a software adapter: ${info.description}`);
    // The same device requirements as tfjs-backend-webgpu's own factory.
    const features: string[] = [];
    if (adapter.features.has('timestamp-query')) features.push('timestamp-query');
    if (adapter.features.has('bgra8unorm-storage')) features.push('bgra8unorm-storage');
    const l = adapter.limits;
    let device: GpuDeviceLike;
    try {
      device = await adapter.requestDevice({
        requiredFeatures: features,
        requiredLimits: {
          maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          maxBufferSize: l.maxBufferSize,
          maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        },
      });
    } catch (e) {
      throw new Error(`requestDevice failed on ${info.description}: ${message(e)}`);
    }
    return { gpu, adapter, info, device };
  });

  const { gpu, adapter, info, device } = found;
  exposeGpu(gpu);
  const detail = `@tensorflow/tfjs-backend-webgpu on Dawn (npm webgpu)${info.isFallbackAdapter ? ', software adapter: not a GPU' : ''}`;
  const s: State = {
    gpu,
    init: { name: 'webgpu', detail, adapter: info },
    device,
    backend: null,
    tick: capturedTicks.length > 0 ? capturedTicks[capturedTicks.length - 1]! : null,
    inflight: new Set(),
    lost: null,
  };
  device.lost.then(
    (l) => {
      s.lost = `${l.reason}: ${l.message}`;
    },
    () => undefined,
  );

  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend(
    'webgpu',
    () => {
      const be = new tfWebgpu.WebGPUBackend(device, adapter.info);
      patchBackend(s, be);
      s.backend = be;
      return be;
    },
    // Below wasm/cpu in tfjs's implicit choice: prunus always picks a backend explicitly.
    0,
  );
  state = s;
  try {
    await activateWebgpu();
  } catch (e) {
    tf.removeBackend('webgpu');
    state = null;
    device.destroy();
    throw e;
  }
  return s.init;
}

async function activateWebgpu(): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend('webgpu');
    await tf.ready();
  } catch (e) {
    throw new Error(`setBackend('webgpu') threw: ${message(e)}`);
  }
  // A failed factory makes setBackend return false while getBackend() may still answer 'webgpu'.
  if (!ok || tf.getBackend() !== 'webgpu') throw new Error("setBackend('webgpu') returned false");
  tf.env().set('WEBGPU_CPU_FORWARD', false);
}

/** Number of asynchronous readbacks (tensor.data()) not yet completed in this thread. */
export function webgpuReadsInFlight(): number {
  return state ? state.inflight.size : 0;
}

/** The adapter of this thread's WebGPU backend, if one was initialised. */
export function webgpuAdapter(): WebgpuAdapterInfo | null {
  return state ? state.init.adapter : null;
}

/**
 * Waits until this thread's WebGPU work is done: outstanding readbacks settled, queued commands flushed and executed.
 * With destroy, then disposes the tfjs backend and destroys the device (the next initWebgpu makes a new one). Call
 * before process.exit() or before a worker is terminated: dawn.node aborts the process when that happens mid-read.
 */
export async function finishWebgpu(opts: { destroy?: boolean } = {}): Promise<void> {
  const s = state;
  if (!s) return;
  for (let round = 0; round < 100 && s.inflight.size > 0; round++) await Promise.allSettled([...s.inflight]);
  const be = s.backend;
  if (be && !s.lost) {
    if (be.commandEncoder) {
      be.endComputePassEncoder();
      be.submitQueue();
    }
    if (s.device) await s.device.queue.onSubmittedWorkDone();
  }
  if (opts.destroy) {
    if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
    s.device?.destroy();
    s.device = null;
    s.backend = null;
    state = null;
  }
}
