/**
 * The WebGPU backend (Dawn via npm `webgpu`) against the cpu backend on both LeNets: forward logits, masked training
 * steps (the Trainer), masked evaluation; two worker threads with their own devices; clean shutdown.
 *
 * CI installs Mesa's lavapipe (software Vulkan, .ci/run), so an adapter must be found: when none is, these tests fail
 * with the reason. The worker and child-process parts load the compiled modules from dist/ (npm test builds first).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initBackend, describeBackend, backendRecord, finishBackend, type BackendInfo } from '../backends/backend.js';
import { isSoftwareAdapter, webgpuReadsInFlight } from '../backends/webgpu.js';
import { getArchitecture } from '../models/architectures.js';
import { prunableOps, weightShape, biasLength, type Architecture } from '../models/graph.js';
import { initParams, type ModelParams, type LayerMasks } from '../models/params.js';
import { toTensors, disposeModelTensors, forward } from '../models/forward.js';
import { Trainer } from '../src/train/trainer.js';
import { evaluateAccuracy } from '../src/train/evaluate.js';
import { loadDataset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const distBackend = resolve(repoRoot, 'dist/backends/backend.js');

const MODELS = ['lenet-300-100', 'lenet-5'] as const;
const FORWARD_TOL = 1e-4;
const TRAIN_TOL = 1e-6;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function randomMasks(arch: Architecture, rng: Rng, keep: number): LayerMasks[] {
  return prunableOps(arch).map((op) => {
    const n = weightShape(op).reduce((x, y) => x * y, 1);
    const weight = new Uint8Array(n);
    for (let i = 0; i < n; i++) weight[i] = rng.uniform() < keep ? 1 : 0;
    return { weight, bias: new Uint8Array(biasLength(op)).fill(1) };
  });
}

/** Top-1 class per row, and the gap between the two largest logits. */
function predictions(logits: Float32Array, k: number): { cls: number[]; margin: number[] } {
  const cls: number[] = [];
  const margin: number[] = [];
  for (let i = 0; i < logits.length / k; i++) {
    const row = Array.from(logits.subarray(i * k, (i + 1) * k));
    const sorted = [...row].sort((a, b) => b - a);
    cls.push(row.indexOf(sorted[0]!));
    margin.push(sorted[0]! - sorted[1]!);
  }
  return { cls, margin };
}

interface RunResult {
  logits: Float32Array;
  losses: number[];
  params: ModelParams;
  evalCorrect: number;
  evalLogits: Float32Array;
}

/** Everything compared between backends, computed on whatever backend is active. */
function runModel(arch: Architecture, params: ModelParams, masks: LayerMasks[], x: Float32Array, train: ImageSet, test: ImageSet): RunResult {
  const [H, W, C] = arch.inputShape;
  const n = x.length / (H * W * C);
  const t = toTensors(arch, params, masks);
  let logits: Float32Array;
  let evalLogits: Float32Array;
  try {
    logits = tf.tidy(() => forward(arch, t, tf.tensor4d(x, [n, H, W, C])).dataSync() as Float32Array).slice();
    evalLogits = tf.tidy(() => forward(arch, t, tf.tensor4d(test.images, [test.count, H, W, C])).dataSync() as Float32Array).slice();
  } finally {
    disposeModelTensors(t);
  }
  const evalCorrect = evaluateAccuracy(arch, params, masks, test, 25).correct;
  const trainer = new Trainer(arch, params, train, { solver: { batchSize: 16 } });
  try {
    trainer.setMasks(masks);
    const losses = [trainer.step().loss, trainer.step().loss];
    return { logits, losses, params: trainer.getParams(), evalCorrect, evalLogits };
  } finally {
    trainer.dispose();
  }
}

function compareRuns(arch: Architecture, cpu: RunResult, gpu: RunResult, tol = { forward: FORWARD_TOL, train: TRAIN_TOL }): void {
  expect(maxAbsDiff(cpu.logits, gpu.logits)).toBeLessThanOrEqual(tol.forward);
  expect(maxAbsDiff(cpu.evalLogits, gpu.evalLogits)).toBeLessThanOrEqual(tol.forward);
  gpu.losses.forEach((l, i) => expect(Math.abs(l - cpu.losses[i]!)).toBeLessThanOrEqual(tol.train));
  cpu.params.layers.forEach((l, i) => {
    expect(maxAbsDiff(l.weight, gpu.params.layers[i]!.weight)).toBeLessThanOrEqual(tol.train);
    expect(maxAbsDiff(l.bias, gpu.params.layers[i]!.bias)).toBeLessThanOrEqual(tol.train);
  });
  // Masked evaluation: same predictions wherever the cpu's top two logits are not a float32 near-tie.
  const p = predictions(cpu.evalLogits, arch.numClasses);
  const q = predictions(gpu.evalLogits, arch.numClasses);
  let ambiguous = 0;
  p.cls.forEach((c, i) => {
    if (p.margin[i]! < 1e-4) ambiguous++;
    else expect(q.cls[i], `prediction ${i}`).toBe(c);
  });
  expect(ambiguous).toBeLessThanOrEqual(1);
  expect(Math.abs(gpu.evalCorrect - cpu.evalCorrect)).toBeLessThanOrEqual(ambiguous);
}

let info: BackendInfo;
let train: ImageSet;
let test: ImageSet;
const cases = new Map<string, { arch: Architecture; params: ModelParams; masks: LayerMasks[]; x: Float32Array; cpu: RunResult }>();

beforeAll(async () => {
  const data = loadDataset('mnist', { limit: { train: 64, validation: 0, test: 50 }, validationSize: 6000 });
  train = data.train;
  test = data.test;
  // The cpu reference for every model first, then the webgpu backend (which must exist: CI installs lavapipe).
  await initBackend('cpu');
  for (const name of MODELS) {
    const arch = getArchitecture(name);
    const rng = new Rng(`webgpu-test:${name}`);
    const params = initParams(arch, rng);
    const masks = randomMasks(arch, rng, 0.5);
    const x = new Float32Array(16 * arch.inputShape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < x.length; i++) x[i] = rng.uniform();
    cases.set(name, { arch, params, masks, x, cpu: runModel(arch, params, masks, x, train, test) });
  }
  info = await initBackend('webgpu');
});

afterAll(async () => {
  await finishBackend({ destroy: true });
});

describe('webgpu backend', () => {
  it('is active and records its adapter, marking software adapters as not a GPU', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(info.name).toBe('webgpu');
    const a = info.adapter!;
    expect(a.description.length).toBeGreaterThan(0);
    expect(a.isFallbackAdapter).toBe(isSoftwareAdapter(a));
    const rec = backendRecord(info) as { adapter: { isFallbackAdapter: boolean; description: string } };
    expect(rec.adapter.description).toBe(a.description);
    expect(rec.adapter.isFallbackAdapter).toBe(a.isFallbackAdapter);
    expect(describeBackend(info)).toContain(a.description);
    if (a.isFallbackAdapter) expect(describeBackend(info)).toMatch(/software fallback adapter, not a GPU/);
    expect(tf.env().getBool('WEBGPU_CPU_FORWARD')).toBe(false);
  });

  for (const name of MODELS) {
    it(`${name}: forward logits, two masked SGD steps and masked evaluation match the cpu backend`, () => {
      const c = cases.get(name)!;
      const gpu = runModel(c.arch, c.params, c.masks, c.x, train, test);
      expect(tf.getBackend()).toBe('webgpu');
      compareRuns(c.arch, c.cpu, gpu);
      // The step changed the weights (so the comparison above compared trained weights, not the initial ones).
      expect(maxAbsDiff(c.params.layers[0]!.weight, gpu.params.layers[0]!.weight)).toBeGreaterThan(1e-6);
    });
  }

  it('max-pool gradients go to the first of tied maxima, as on the cpu backend', () => {
    // Windows of equal values (as masked convolutions produce on MNIST's zero background) and one window with a
    // later strict maximum.
    const x = tf.tensor4d([1, 1, 0, 0, 1, 1, 0, 0, 2, 2, 3, 1, 2, 2, 1, 3], [1, 4, 4, 1]);
    const dy = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    const g = tf.grad((t: tf.Tensor4D) => tf.sum(tf.mul(tf.maxPool(t, 2, 2, 'valid'), dy)))(x);
    expect(Array.from(g.dataSync())).toEqual([1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0]);
    tf.dispose([x, dy, g]);
  });

  it('synchronous and asynchronous reads agree, and finishBackend waits for reads in flight', async () => {
    const a = tf.randomNormal([128, 64], 0, 1, 'float32', 7);
    const b = tf.matMul(a, a, false, true);
    const pending = [b.data(), tf.relu(b).data()];
    expect(webgpuReadsInFlight()).toBeGreaterThan(0);
    await finishBackend();
    expect(webgpuReadsInFlight()).toBe(0);
    const [v, r] = await Promise.all(pending);
    const c = tf.matMul(a, a, false, true);
    const s = c.dataSync();
    expect(maxAbsDiff(v!, s)).toBe(0);
    expect(Array.from(r!).every((x, i) => x === Math.max(0, s[i]!))).toBe(true);
    tf.dispose([a, b, c]);
  });
});

/** Runs in a worker thread: its own Dawn instance and device; reports results, then shuts down cleanly. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createRequire } = require('node:module');
(async () => {
  const d = workerData;
  const url = (p) => d.distUrl + '/' + p;
  const tf = createRequire(d.distBackend)('@tensorflow/tfjs');
  const { initBackend, finishBackend } = await import(url('backends/backend.js'));
  const { webgpuReadsInFlight } = await import(url('backends/webgpu.js'));
  const { getArchitecture } = await import(url('models/architectures.js'));
  const { toTensors, disposeModelTensors, forward } = await import(url('models/forward.js'));
  const { Trainer } = await import(url('src/train/trainer.js'));
  const info = await initBackend('webgpu');
  const arch = getArchitecture(d.model);
  const [H, W, C] = arch.inputShape;
  const t = toTensors(arch, d.params, d.masks);
  const logits = tf.tidy(() => forward(arch, t, tf.tensor4d(d.x, [d.x.length / (H * W * C), H, W, C])).dataSync()).slice();
  disposeModelTensors(t);
  const trainer = new Trainer(arch, d.params, d.train, { solver: { batchSize: 16 } });
  trainer.setMasks(d.masks);
  const losses = [trainer.step().loss, trainer.step().loss];
  const params = trainer.getParams();
  trainer.dispose();
  // Leave an asynchronous read in flight: finishBackend must wait for it before the thread may end.
  const big = tf.randomNormal([256, 256], 0, 1, 'float32', 3);
  const pending = tf.matMul(big, big).data();
  const inflight = webgpuReadsInFlight();
  await finishBackend({ destroy: true });
  parentPort.postMessage({ name: info.name, adapter: info.adapter, logits, losses, params, inflight, after: webgpuReadsInFlight(), read: (await pending).length });
})().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
`;

interface WorkerResult {
  name: string;
  adapter: { description: string };
  logits: Float32Array;
  losses: number[];
  params: ModelParams;
  inflight: number;
  after: number;
  read: number;
  error?: string;
}

function startWorker(model: string, c: { params: ModelParams; masks: LayerMasks[]; x: Float32Array }, terminate: boolean): Promise<{ result: WorkerResult; exitCode: number }> {
  const distUrl = pathToFileURL(resolve(repoRoot, 'dist')).href;
  const w = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { distBackend, model, params: c.params, masks: c.masks, x: c.x, train, distUrl },
  });
  return new Promise((resolvePromise, reject) => {
    let result: WorkerResult | null = null;
    w.on('message', (m: WorkerResult) => {
      result = m;
      if (terminate) void w.terminate();
    });
    w.on('error', reject);
    w.on('exit', (exitCode) => {
      if (!result) reject(new Error(`worker exited with code ${exitCode} before reporting`));
      else resolvePromise({ result, exitCode });
    });
  });
}

describe('webgpu in worker threads', () => {
  it('two workers, each with its own device, give the same results as each other and as the cpu, and shut down cleanly', async () => {
    expect(existsSync(distBackend), `${distBackend} missing: build first (npx tsc -p tsconfig.json)`).toBe(true);
    const c = cases.get('lenet-5')!;
    const [a, b] = await Promise.all([startWorker('lenet-5', c, false), startWorker('lenet-5', c, true)]);
    for (const r of [a, b]) {
      expect(r.result.error).toBeUndefined();
      expect(r.result.name).toBe('webgpu');
      expect(r.result.adapter.description).toBe(info.adapter!.description);
      expect(r.result.inflight).toBeGreaterThan(0);
      expect(r.result.after).toBe(0);
      expect(r.result.read).toBe(256 * 256);
    }
    expect(a.exitCode).toBe(0); // ended on its own after finishBackend
    expect(b.exitCode).toBe(1); // terminated by us right after it reported (terminate() exits with 1)
    // Same device kind, same shaders: the two workers agree to the bit; both agree with the cpu within float32 rounding.
    expect(maxAbsDiff(a.result.logits, b.result.logits)).toBe(0);
    expect(a.result.losses).toEqual(b.result.losses);
    a.result.params.layers.forEach((l, i) => expect(maxAbsDiff(l.weight, b.result.params.layers[i]!.weight)).toBe(0));
    expect(maxAbsDiff(a.result.logits, c.cpu.logits)).toBeLessThanOrEqual(FORWARD_TOL);
    a.result.losses.forEach((l, i) => expect(Math.abs(l - c.cpu.losses[i]!)).toBeLessThanOrEqual(TRAIN_TOL));
    a.result.params.layers.forEach((l, i) => expect(maxAbsDiff(l.weight, c.cpu.params.layers[i]!.weight)).toBeLessThanOrEqual(TRAIN_TOL));
  });

  it('a process that finishes its reads with finishBackend() exits with code 0', () => {
    expect(existsSync(distBackend), `${distBackend} missing: build first`).toBe(true);
    const script = `
      const tf = require(${JSON.stringify(resolve(repoRoot, 'node_modules/@tensorflow/tfjs'))});
      (async () => {
        const { initBackend, finishBackend } = await import(${JSON.stringify(pathToFileURL(distBackend).href)});
        const info = await initBackend('webgpu');
        const a = tf.randomNormal([256, 256], 0, 1, 'float32', 1);
        const reads = [tf.matMul(a, a).data(), tf.matMul(a, a, true).data(), tf.relu(a).data()];
        await finishBackend();
        console.log('OK ' + info.name + ' ' + reads.length);
        process.exit(0);
      })().catch((e) => { console.error(e); process.exit(3); });
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).not.toMatch(/fatal|Aborted|Assertion/i);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('OK webgpu 3');
  });
});
