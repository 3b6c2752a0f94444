/**
 * Backend resolution: the auto chain records why each earlier choice was skipped; an explicitly requested backend
 * that is unavailable is a UsageError naming the reasons; native-package load failures of any kind are caught
 * (simulated through InitOptions.loadNative, and for real through a broken package on disk).
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  initBackend,
  parseBackendName,
  describeBackend,
  backendRecord,
  currentBackend,
  finishBackend,
  BACKEND_NAMES,
  type NativeLoader,
} from '../backends/backend.js';
import { isSoftwareAdapter } from '../backends/webgpu.js';
import { UsageError } from '../foundation/errors.js';

afterAll(async () => {
  await finishBackend({ destroy: true });
});

/** A loader that records what it was asked for and fails like `make`. */
function failing(make: (pkg: string) => unknown): { load: NativeLoader; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    load: (pkg) => {
      asked.push(pkg);
      throw make(pkg);
    },
  };
}

describe('parseBackendName', () => {
  it('accepts the known names, defaults to auto, and rejects others with a UsageError', () => {
    for (const n of BACKEND_NAMES) expect(parseBackendName(n)).toBe(n);
    expect(parseBackendName(undefined)).toBe('auto');
    expect(() => parseBackendName('cuda')).toThrow(UsageError);
    expect(() => parseBackendName('cuda')).toThrow(/unknown backend 'cuda'/);
  });
});

describe('explicit backends', () => {
  it('cpu and wasm activate and are remembered', async () => {
    const cpu = await initBackend('cpu');
    expect(cpu).toMatchObject({ requested: 'cpu', name: 'cpu', skipped: [] });
    expect(tf.getBackend()).toBe('cpu');
    expect(await initBackend('cpu')).toBe(cpu);
    const wasm = await initBackend('wasm');
    expect(wasm.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(currentBackend()).toBe(wasm);
    expect(describeBackend(wasm)).toMatch(/^backend wasm \(/);
    expect(backendRecord(wasm)).toEqual({ name: 'wasm', requested: 'wasm', detail: wasm.detail });
  });

  it('tensorflow when neither native package loads is a UsageError naming both reasons; the active backend stays', async () => {
    await initBackend('cpu');
    const f = failing((pkg) => new Error(`Cannot find module '${pkg}'\nRequire stack:\n- somewhere`));
    const err = await initBackend('tensorflow', { loadNative: f.load, worker: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^backend 'tensorflow' is not available here/);
    expect(msg).toContain("@tensorflow/tfjs-node-gpu not loadable: Cannot find module '@tensorflow/tfjs-node-gpu'");
    expect(msg).toContain("@tensorflow/tfjs-node not loadable: Cannot find module '@tensorflow/tfjs-node'");
    expect(msg).not.toContain('Require stack'); // one line per reason
    expect(f.asked).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
    expect(tf.getBackend()).toBe('cpu');
  });

  it('catches load failures of any kind: thrown strings, null, objects, and a package that registers nothing', async () => {
    const throwers: [unknown, RegExp][] = [
      ['libtensorflow.so.2: cannot open shared object file', /not loadable: libtensorflow\.so\.2/],
      [null, /not loadable: null/],
      [{ code: 'ERR_DLOPEN_FAILED' }, /not loadable: \[object Object\]/],
      [new TypeError('NODE_MODULE_VERSION 108 vs 115'), /not loadable: NODE_MODULE_VERSION 108/],
    ];
    for (const [thrown, re] of throwers) {
      const f = failing(() => thrown);
      const err = await initBackend('tensorflow', { loadNative: f.load, worker: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(re);
    }
    // Loads fine but registers no 'tensorflow' backend (e.g. it bundled a different tfjs-core).
    const loaded: string[] = [];
    const err = await initBackend('tensorflow', { loadNative: (p) => loaded.push(p), worker: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/loaded but registered no 'tensorflow' backend/);
    expect(loaded).toHaveLength(2);
  });

  it('a real broken native package on disk (its binding missing) is caught', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prunus-native-'));
    for (const pkg of ['tfjs-node', 'tfjs-node-gpu']) {
      const p = join(dir, 'node_modules', '@tensorflow', pkg);
      mkdirSync(p, { recursive: true });
      writeFileSync(join(p, 'package.json'), JSON.stringify({ name: `@tensorflow/${pkg}`, version: '4.22.0', main: 'index.js' }));
      // What tfjs-node does when its prebuilt binary was never downloaded.
      writeFileSync(join(p, 'index.js'), "module.exports = require('./lib/napi-v8/tfjs_binding.node');\n");
    }
    const req = createRequire(join(dir, 'x.js'));
    const err = await initBackend('tensorflow', { loadNative: (pkg) => req(pkg), worker: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/@tensorflow\/tfjs-node-gpu not loadable: Cannot find module '\.\/lib\/napi-v8\/tfjs_binding\.node'/);
  });

  it('in a worker thread native packages are not even loaded', async () => {
    const f = failing(() => new Error('must not be called'));
    const err = await initBackend('tensorflow', { loadNative: f.load, worker: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain('native packages are not loaded in worker threads');
    expect(f.asked).toEqual([]);
  });
});

describe('auto', () => {
  it('walks webgpu (hardware only), tfjs-node-gpu, tfjs-node, wasm and records why each was skipped', async () => {
    const f = failing((pkg) => new Error(`simulated: ${pkg} binary missing`));
    const info = await initBackend('auto', { loadNative: f.load, worker: false });
    expect(tf.getBackend()).toBe(info.name);
    const rec = backendRecord(info) as { skipped?: string[] };
    if (info.name === 'webgpu') {
      // A hardware adapter exists here: auto takes it and never reaches the native packages.
      expect(info.adapter!.isFallbackAdapter).toBe(false);
      expect(isSoftwareAdapter(info.adapter!)).toBe(false);
      expect(f.asked).toEqual([]);
    } else {
      // No hardware adapter (CI: lavapipe is software, refused by auto): the reason is recorded, then the natives fail.
      expect(info.name).toBe('wasm');
      expect(info.skipped).toHaveLength(3);
      expect(info.skipped[0]).toMatch(/^webgpu \(hardware adapter\): (only a software adapter: .+|no WebGPU adapter.*|.+not loadable.*)$/);
      expect(info.skipped[1]).toBe('@tensorflow/tfjs-node-gpu: @tensorflow/tfjs-node-gpu not loadable: simulated: @tensorflow/tfjs-node-gpu binary missing');
      expect(info.skipped[2]).toBe('@tensorflow/tfjs-node: @tensorflow/tfjs-node not loadable: simulated: @tensorflow/tfjs-node binary missing');
      expect(rec.skipped).toEqual(info.skipped);
      expect(f.asked).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
    }
  });

  it('in a worker thread skips the native packages with that reason', async () => {
    const f = failing(() => new Error('must not be called'));
    const info = await initBackend('auto', { loadNative: f.load, worker: true });
    expect(f.asked).toEqual([]);
    if (info.name !== 'webgpu') {
      expect(info.skipped.slice(1)).toEqual([
        '@tensorflow/tfjs-node-gpu: native packages are not loaded in worker threads',
        '@tensorflow/tfjs-node: native packages are not loaded in worker threads',
      ]);
    }
  });
});

describe('describeBackend / backendRecord', () => {
  it('print and record the adapter, flagging software adapters as not a GPU', () => {
    const b = {
      requested: 'webgpu' as const,
      name: 'webgpu',
      detail: 'x',
      adapter: { description: 'llvmpipe: Mesa 25.0.7', vendor: 'mesa', architecture: 'software', isFallbackAdapter: true },
      skipped: [],
    };
    expect(describeBackend(b)).toBe('backend webgpu (x) adapter="llvmpipe: Mesa 25.0.7" vendor=mesa architecture=software (software fallback adapter, not a GPU)');
    expect(backendRecord(b)).toEqual({ name: 'webgpu', requested: 'webgpu', detail: 'x', adapter: b.adapter });
    const hw = { ...b, adapter: { description: 'NVIDIA H100 80GB HBM3', vendor: 'nvidia', architecture: 'hopper', isFallbackAdapter: false } };
    expect(describeBackend(hw)).not.toMatch(/software/);
    expect(isSoftwareAdapter(hw.adapter)).toBe(false);
    expect(isSoftwareAdapter({ description: 'SwiftShader Device (Subzero)', isFallbackAdapter: false })).toBe(true);
    expect(isSoftwareAdapter({ description: 'llvmpipe (LLVM 15.0.6, 256 bits)', isFallbackAdapter: false })).toBe(true);
  });
});
