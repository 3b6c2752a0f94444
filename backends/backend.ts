/**
 * Tensor backend resolution. `auto` tries, in order: a hardware WebGPU adapter (software adapters such as Mesa's
 * lavapipe are skipped), tfjs-node-gpu, tfjs-node, wasm, cpu. In worker threads the native packages are skipped.
 * Native packages can fail to load in many ways (missing module, missing binary, bad ABI, a thrown non-Error): any
 * error means "not available". tf.setBackend's boolean is checked, since a failed init only prints a warning.
 * `--backend webgpu` accepts any adapter, a software one too, and records which (BackendInfo.adapter).
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { UsageError } from '../foundation/errors.js';
import { registerWasmKernels } from './kernels/wasm.js';

// tfjs's development warnings (its "running TensorFlow.js in Node.js" banner among them) are not for prunus's users:
// the backend line says what runs, and why the others did not.
tf.env().set('PROD', true);

export const BACKEND_NAMES = ['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendInfo {
  /** What was asked for. */
  requested: BackendName;
  /** The tfjs backend that runs (tf.getBackend()). */
  name: string;
  /** Human-readable detail: package, adapter description, threads. */
  detail: string;
  /** WebGPU only: adapter description and whether it is a software fallback (e.g. lavapipe: not a GPU). */
  adapter?: { description: string; vendor?: string; architecture?: string; device?: string; isFallbackAdapter: boolean };
  /** What was tried before, with the reason it was skipped. */
  skipped: string[];
}

export function parseBackendName(raw: string | undefined): BackendName {
  const v = raw ?? 'auto';
  if (!(BACKEND_NAMES as readonly string[]).includes(v)) throw new UsageError(`unknown backend '${v}' (known: ${BACKEND_NAMES.join(', ')})`);
  return v as BackendName;
}

const require = createRequire(import.meta.url);

/** How native packages are loaded (replaceable through InitOptions.loadNative, e.g. to simulate a broken install). */
export type NativeLoader = (pkg: string) => unknown;

export interface InitOptions {
  /** Loads a native package by name; default: require. Whatever it throws means "not available". */
  loadNative?: NativeLoader;
  /** Treat this thread as a worker (native packages skipped); default: !isMainThread. */
  worker?: boolean;
}

type Attempt = () => Promise<{ name: string; detail: string; adapter?: BackendInfo['adapter'] }>;

function errMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0]!.slice(0, 200);
}

async function activate(name: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } catch (e) {
    throw new Error(`setBackend('${name}') threw: ${errMessage(e)}`);
  }
  if (!ok || tf.getBackend() !== name) throw new Error(`setBackend('${name}') returned false`);
}

async function tryNative(
  pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node',
  load: NativeLoader,
  worker: boolean,
): Promise<{ name: string; detail: string }> {
  // Native addons hold process-wide state (CUDA context, thread pools); in worker threads they are not loaded.
  if (worker) throw new Error('native packages are not loaded in worker threads');
  // The native packages bundle their own tfjs-core; loading registers the 'tensorflow' backend into the
  // shared engine only if they resolve the same @tensorflow/tfjs-core. Any failure means unavailable.
  try {
    load(pkg);
  } catch (e) {
    throw new Error(`${pkg} not loadable: ${errMessage(e)}`);
  }
  if (!tf.findBackendFactory('tensorflow')) throw new Error(`${pkg} loaded but registered no 'tensorflow' backend`);
  await activate('tensorflow');
  return { name: 'tensorflow', detail: pkg };
}

let wasmLoaded = false;
async function tryWasm(): Promise<{ name: string; detail: string }> {
  if (!wasmLoaded) {
    await import('@tensorflow/tfjs-backend-wasm');
    wasmLoaded = true;
  }
  await activate('wasm');
  registerWasmKernels();
  return { name: 'wasm', detail: '@tensorflow/tfjs-backend-wasm (single-threaded, SIMD)' };
}

async function tryCpu(): Promise<{ name: string; detail: string }> {
  await activate('cpu');
  return { name: 'cpu', detail: '@tensorflow/tfjs-backend-cpu (plain JS)' };
}

/**
 * A hardware GPU on Linux shows up as a device node (/dev/dri for Mesa's drivers, /dev/nvidia* for NVIDIA's). Without
 * one, `auto` does not start Dawn at all: it would only find a software Vulkan driver, and creating that adapter
 * prints driver warnings before any output of ours.
 */
function noGpuDevice(): boolean {
  if (process.platform !== 'linux') return false;
  if (existsSync('/dev/dri')) return false;
  try {
    return !readdirSync('/dev').some((d) => d.startsWith('nvidia'));
  } catch {
    return false;
  }
}

async function tryWebgpu(requireHardware: boolean): Promise<{ name: string; detail: string; adapter?: BackendInfo['adapter'] }> {
  if (requireHardware && noGpuDevice()) throw new Error('no WebGPU adapter: no GPU device on this machine (no /dev/dri, no /dev/nvidia*)');
  const { initWebgpu } = await import('./webgpu.js');
  return initWebgpu({ requireHardware });
}

let webgpuLoaded = false;

let current: BackendInfo | null = null;

/** The backend chosen by the last initBackend call in this thread, or null. */
export function currentBackend(): BackendInfo | null {
  return current;
}

/**
 * Activates a backend. Explicit names fail with a UsageError when unavailable; `auto` falls through.
 * Idempotent within a thread for the same request.
 */
export async function initBackend(requested: BackendName = 'auto', opts: InitOptions = {}): Promise<BackendInfo> {
  const custom = opts.loadNative !== undefined || opts.worker !== undefined;
  if (!custom && current && current.requested === requested && tf.getBackend() === current.name) return current;
  const load: NativeLoader = opts.loadNative ?? ((pkg) => require(pkg));
  const worker = opts.worker ?? !isMainThread;
  const chain: [string, Attempt][] =
    requested === 'auto'
      ? [
          ['webgpu (hardware adapter)', () => { webgpuLoaded = true; return tryWebgpu(true); }],
          ['@tensorflow/tfjs-node-gpu', () => tryNative('@tensorflow/tfjs-node-gpu', load, worker)],
          ['@tensorflow/tfjs-node', () => tryNative('@tensorflow/tfjs-node', load, worker)],
          ['wasm', tryWasm],
          ['cpu', tryCpu],
        ]
      : requested === 'tensorflow'
        ? [
            ['@tensorflow/tfjs-node-gpu', () => tryNative('@tensorflow/tfjs-node-gpu', load, worker)],
            ['@tensorflow/tfjs-node', () => tryNative('@tensorflow/tfjs-node', load, worker)],
          ]
        : requested === 'webgpu'
          ? [['webgpu', () => { webgpuLoaded = true; return tryWebgpu(false); }]]
          : requested === 'wasm'
            ? [['wasm', tryWasm]]
            : [['cpu', tryCpu]];
  const skipped: string[] = [];
  for (const [label, attempt] of chain) {
    try {
      const r = await attempt();
      current = { requested, name: r.name, detail: r.detail, skipped, ...(r.adapter ? { adapter: r.adapter } : {}) };
      return current;
    } catch (e) {
      skipped.push(`${label}: ${errMessage(e)}`);
    }
  }
  throw new UsageError(`backend '${requested}' is not available here (${skipped.join('; ')})`);
}

/** One line for logs and progress output; `verbose` adds why each earlier choice was skipped. */
export function describeBackend(b: BackendInfo, verbose = false): string {
  const a = b.adapter
    ? ` adapter="${b.adapter.description}"${b.adapter.vendor ? ` vendor=${b.adapter.vendor}` : ''}${b.adapter.architecture ? ` architecture=${b.adapter.architecture}` : ''}${b.adapter.isFallbackAdapter ? ' (software fallback adapter, not a GPU)' : ''}`
    : '';
  const why = verbose && b.skipped.length ? `; skipped ${b.skipped.join('; ')}` : '';
  return `backend ${b.name} (${b.detail})${a}${why}`;
}

/** The record stored in every result file: what ran, on which adapter, and why earlier choices were skipped. */
export function backendRecord(b: BackendInfo): Record<string, unknown> {
  return {
    name: b.name,
    requested: b.requested,
    detail: b.detail,
    ...(b.adapter ? { adapter: { ...b.adapter } } : {}),
    ...(b.skipped.length ? { skipped: [...b.skipped] } : {}),
  };
}

/**
 * Waits for the backend's outstanding device work (WebGPU readbacks in flight, queued commands). Call before
 * process.exit() and before terminating a worker thread: dawn.node aborts the process if either happens mid-read.
 * With destroy, also releases the WebGPU device. A no-op for the CPU-side backends.
 */
export async function finishBackend(opts: { destroy?: boolean } = {}): Promise<void> {
  if (!webgpuLoaded) return;
  const { finishWebgpu } = await import('./webgpu.js');
  await finishWebgpu(opts);
  if (opts.destroy && current?.name === 'webgpu') current = null;
}
