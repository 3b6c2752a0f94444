/**
 * Evaluator throughput: candidates per second on 6,000 MNIST validation images.
 *
 *   npm run bench -- eval [--json] [--backend wasm|cpu] [--models lenet-300-100,lenet-5]
 *        [--densities 100%,10%,1%,olmp-final,olmp-released] [--workers 1,2] [--path auto|sparse|dense]
 *        [--min-seconds 4] [--images 6000]
 *   npm run bench -- eval --crossover [--json] [--models ...] [--crossover-densities 0.01,0.05,0.1,0.2,0.3,0.5]
 *   npm run bench -- eval --crossover-layers [--json] [--models ...] [--crossover-densities ...]
 *   (or: node dist/bench/eval.js ...)
 *
 * Rows: released reference weights (../shared/fixtures/olmp-released; Xavier-initialised when absent) under seeded
 * random masks with exactly the given non-zero count per layer (weights and biases pooled), or, for
 * 'olmp-released', the released compressed model's own weights and masks. Every candidate re-evaluates the same
 * masks (cache off), so the rate is the hot path's. `workers` 0 means the in-process evaluator.
 *
 * --crossover times the whole network forced onto the sparse path and onto the dense path, in-process, with every
 * prunable layer at one density. --crossover-layers times each prunable layer alone on its real input activations
 * (reference network, 6,000 validation images): the JS sparse kernel against the tfjs fused op, with random masks
 * at each density on that layer. These are the measurements behind engine.ts's SPARSE_CROSSOVER.
 *
 * Each row also reports CPU seconds per candidate (all threads of this process) and the 1-minute load average, since
 * wall-clock rates on a shared machine depend on what else runs there, and PyTorch's masked-dense candidates/s on one
 * thread measured in the same run (bench/crosscheck/torch_eval.py) when a python3 with torch is found.
 */
import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UsageError, parseNumber } from '../foundation/errors.js';
import { Rng } from '../foundation/rng.js';
import { loadDataset, type ImageSet } from '../foundation/data/datasets.js';
import { getArchitecture } from '../models/architectures.js';
import { layerStats } from '../models/walk.js';
import { type Architecture } from '../models/graph.js';
import { initParams, type LayerMasks, type ModelParams } from '../models/params.js';
import { magnitudeStats } from '../models/masks.js';
import { initBackend, parseBackendName, describeBackend } from '../backends/backend.js';
import { createInProcessEvaluator, createPoolEvaluator, evaluateMasks, pathsFor, type Candidate, type Evaluator, type PathMode, type EvaluationContext } from '../evaluators/index.js';
import { loadReleasedModel } from '../models/caffe/released.js';
import { torchPython, runTorchPeer } from './lib/torch-peer.js';

const MODELS = ['lenet-300-100', 'lenet-5'] as const;
type Model = (typeof MODELS)[number];
const DENSITIES = ['100%', '10%', '1%', 'olmp-final', 'olmp-released'] as const;
type Density = (typeof DENSITIES)[number];

/** Non-zeros (weights + biases) per layer of the released OLMP models (spec §6). */
const OLMP_FINAL: Record<Model, number[]> = {
  'lenet-300-100': [1770, 477, 102],
  'lenet-5': [73, 193, 813, 369],
};
/** PyTorch CPU, one thread, masked-dense forward on 6,000 images (the brief's reference figures). */
const PYTORCH_REFERENCE: Record<Model, number> = { 'lenet-300-100': 29, 'lenet-5': 0.7 };

export interface EvalBenchRow {
  model: Model;
  density: Density;
  /** Non-zero mask entries / parameters of the evaluated masks. */
  actualDensity: number;
  workers: number;
  backend: string;
  path: PathMode;
  layerPaths: string[];
  images: number;
  candidates: number;
  seconds: number;
  candidatesPerSecond: number;
  /** candidatesPerSecond over the same model and density's 1-worker row (null for that row or without one). */
  speedupVs1Worker: number | null;
  cpuSecondsPerCandidate: number;
  loadAverage: number;
  correct: number;
  pytorchReference: number;
  /** PyTorch's masked-dense candidates/s on one thread, measured in this run (bench/crosscheck/torch_eval.py); null without torch. */
  pytorchMeasured: number | null;
  weights: 'released-reference' | 'released-compressed' | 'xavier';
}

interface Args {
  json: boolean;
  backend: 'wasm' | 'cpu' | 'webgpu';
  models: Model[];
  densities: Density[];
  workers: number[];
  path: PathMode;
  minSeconds: number;
  images: number;
  crossover: boolean;
  crossoverLayers: boolean;
  crossoverDensities: number[];
}

function list<T extends string>(flag: string, raw: string, allowed: readonly T[]): T[] {
  const out = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of out) if (!(allowed as readonly string[]).includes(s)) throw new UsageError(`${flag}: unknown '${s}' (expected ${allowed.join(', ')})`);
  return out as T[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    json: false,
    backend: 'wasm',
    models: [...MODELS],
    densities: [...DENSITIES],
    workers: [1, 2],
    path: 'auto',
    minSeconds: 4,
    images: 6000,
    crossover: false,
    crossoverLayers: false,
    crossoverDensities: [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5],
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${f} needs a value`);
      return v;
    };
    if (f === '--json') a.json = true;
    else if (f === '--backend') {
      const b = parseBackendName(value());
      if (b !== 'wasm' && b !== 'cpu' && b !== 'webgpu') throw new UsageError(`--backend: evaluator workers run wasm, cpu or webgpu, not '${b}'`);
      a.backend = b;
    } else if (f === '--models') a.models = list(f, value(), MODELS);
    else if (f === '--densities') a.densities = list(f, value(), DENSITIES);
    else if (f === '--workers') a.workers = value().split(',').map((s) => parseNumber(f, s, { integer: true, min: 0, max: 64 }));
    else if (f === '--path') a.path = list(f, value(), ['auto', 'sparse', 'dense'] as const)[0]!;
    else if (f === '--min-seconds') a.minSeconds = parseNumber(f, value(), { min: 0 });
    else if (f === '--images') a.images = parseNumber(f, value(), { integer: true, min: 1, max: 6000 });
    else if (f === '--crossover') a.crossover = true;
    else if (f === '--crossover-layers') a.crossoverLayers = true;
    else if (f === '--crossover-densities') a.crossoverDensities = value().split(',').map((s) => parseNumber(f, s, { min: 0, max: 1, exclusiveMin: true }));
    else throw new UsageError(`bench eval: unknown argument '${f}'`);
  }
  return a;
}

const repoRoot = (() => {
  // dist/bench/eval.js or bench/eval.ts → repository root
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(d, 'package.json'))) d = dirname(d);
  return d;
})();
const fixturesDir = resolve(repoRoot, '../shared/fixtures/olmp-released');

/** Random masks with exactly counts[k] ones among layer k's weights and biases (pooled). */
export function randomMasks(arch: Architecture, counts: number[], rng: Rng): LayerMasks[] {
  return layerStats(arch).map((s, k) => {
    const n = s.weights + s.biases;
    const want = Math.min(n, Math.max(0, Math.round(counts[k]!)));
    // Partial Fisher-Yates: the first `want` entries of a random permutation.
    const idx = new Int32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    for (let i = 0; i < want; i++) {
      const j = i + rng.int(n - i);
      const t = idx[i]!;
      idx[i] = idx[j]!;
      idx[j] = t;
    }
    const weight = new Uint8Array(s.weights);
    const bias = new Uint8Array(s.biases);
    for (let i = 0; i < want; i++) {
      const e = idx[i]!;
      if (e < s.weights) weight[e] = 1;
      else bias[e - s.weights] = 1;
    }
    return { weight, bias };
  });
}

function referenceParams(model: Model): { params: ModelParams; weights: EvalBenchRow['weights'] } {
  const folder = model === 'lenet-5' ? 'lenet5-reference' : 'lenet300100-reference';
  if (existsSync(resolve(fixturesDir, folder, 'manifest.json'))) return { params: loadReleasedModel(fixturesDir, folder).params, weights: 'released-reference' };
  return { params: initParams(getArchitecture(model), new Rng(`bench-eval:${model}`)), weights: 'xavier' };
}

function contextFor(model: Model, density: Density, data: ImageSet): { ctx: EvaluationContext; weights: EvalBenchRow['weights'] } {
  const arch = getArchitecture(model);
  if (density === 'olmp-released') {
    const folder = model === 'lenet-5' ? 'lenet5-compressed' : 'lenet300100-compressed';
    if (!existsSync(resolve(fixturesDir, folder, 'manifest.json'))) throw new UsageError(`density olmp-released needs ${resolve(fixturesDir, folder)}`);
    const m = loadReleasedModel(fixturesDir, folder);
    return { ctx: { arch, params: m.params, masks: m.masks, stats: m.params.layers.map((l) => magnitudeStats(l)), data }, weights: 'released-compressed' };
  }
  const { params, weights } = referenceParams(model);
  const stats = layerStats(arch);
  const counts = density === 'olmp-final' ? OLMP_FINAL[model] : stats.map((s) => (s.weights + s.biases) * { '100%': 1, '10%': 0.1, '1%': 0.01 }[density]);
  const masks = randomMasks(arch, counts, new Rng(`bench-eval:${model}:${density}`));
  return { ctx: { arch, params, masks, stats: params.layers.map((l) => magnitudeStats(l)), data }, weights };
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

async function measure(ev: Evaluator, nLayers: number, workers: number, minSeconds: number): Promise<{ n: number; seconds: number; cpu: number; correct: number }> {
  const cand: Candidate = { kind: 'crates', crates: Array.from({ length: nLayers }, () => null) };
  // One NCS generation (10 candidates) per call, as a search sends them; at least 2 per worker.
  const per = Math.max(10, Math.max(1, workers) * 2);
  const warm = await ev.evaluate(Array.from({ length: Math.max(1, workers) }, () => cand));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let n = 0;
  do {
    await ev.evaluate(Array.from({ length: per }, () => cand));
    n += per;
  } while ((performance.now() - t0) / 1000 < minSeconds);
  return { n, seconds: (performance.now() - t0) / 1000, cpu: cpuSeconds(c0), correct: warm[0]!.correct };
}

async function throughput(a: Args, emit: (r: EvalBenchRow) => void): Promise<void> {
  const ds = loadDataset('mnist', { limit: { validation: a.images, train: 1, test: 1 } });
  const py = torchPython();
  for (const model of a.models) {
    const peer = py ? +runTorchPeer<{ candidatesPerSecond: number }>(py, 'torch_eval.py', ['--model', model, '--images', String(a.images), '--threads', '1']).candidatesPerSecond.toFixed(3) : null;
    for (const density of a.densities) {
      const { ctx, weights } = contextFor(model, density, ds.validation);
      const nonZero = ctx.masks.reduce((s, m) => s + m.weight.reduce((x, y) => x + y, 0) + m.bias.reduce((x, y) => x + y, 0), 0);
      const params = layerStats(ctx.arch).reduce((s, l) => s + l.params, 0);
      let oneWorker: number | null = null;
      for (const workers of a.workers) {
        const ev = workers === 0 ? await createInProcessEvaluator({ backend: a.backend, cache: false, path: a.path }) : await createPoolEvaluator({ workers, backend: a.backend, cache: false, path: a.path });
        try {
          await ev.setContext(ctx);
          const load0 = loadavg()[0]!;
          const m = await measure(ev, ctx.masks.length, workers, a.minSeconds);
          const rate = m.n / m.seconds;
          if (workers === 1) oneWorker = rate;
          emit({
            model,
            density,
            actualDensity: nonZero / params,
            workers,
            backend: ev.backend.name,
            path: a.path,
            layerPaths: pathsFor(ctx, ctx.masks, a.path),
            images: ctx.data.count,
            candidates: m.n,
            seconds: +m.seconds.toFixed(3),
            candidatesPerSecond: +rate.toFixed(3),
            speedupVs1Worker: workers !== 1 && oneWorker !== null ? +(rate / oneWorker).toFixed(3) : null,
            cpuSecondsPerCandidate: +(m.cpu / m.n).toFixed(4),
            loadAverage: +((load0 + loadavg()[0]!) / 2).toFixed(2),
            correct: m.correct,
            pytorchReference: PYTORCH_REFERENCE[model],
            pytorchMeasured: peer,
            weights,
          });
        } finally {
          await ev.close();
        }
      }
    }
  }
}

export interface CrossoverRow {
  mode: 'crossover';
  model: Model;
  density: number;
  backend: string;
  images: number;
  sparseMs: number;
  denseMs: number;
  sparseCpuMs: number;
  denseCpuMs: number;
  loadAverage: number;
}

async function crossover(a: Args, emit: (r: CrossoverRow) => void): Promise<void> {
  const backend = await initBackend(a.backend);
  const ds = loadDataset('mnist', { limit: { validation: a.images, train: 1, test: 1 } });
  for (const model of a.models) {
    const arch = getArchitecture(model);
    const { params } = referenceParams(model);
    for (const d of a.crossoverDensities) {
      const stats = layerStats(arch);
      const masks = randomMasks(arch, stats.map((s) => d * (s.weights + s.biases)), new Rng(`crossover:${model}:${d}`));
      const ctx: EvaluationContext = { arch, params, masks, stats: [], data: ds.validation };
      const time = (path: PathMode) => {
        evaluateMasks(ctx, masks, { path, batchSize: 1000 }); // warm-up
        const reps = 3;
        const walls: number[] = [];
        const cpus: number[] = [];
        let correct = -1;
        for (let r = 0; r < reps; r++) {
          const t = performance.now();
          const c = process.cpuUsage();
          correct = evaluateMasks(ctx, masks, { path, batchSize: 1000 }).correct;
          walls.push(performance.now() - t);
          cpus.push(cpuSeconds(c) * 1000);
        }
        walls.sort((x, y) => x - y);
        cpus.sort((x, y) => x - y);
        return { wall: walls[1]!, cpu: cpus[1]!, correct };
      };
      const load0 = loadavg()[0]!;
      const s = time('sparse');
      const dn = time('dense');
      if (s.correct !== dn.correct) throw new Error(`crossover ${model} ${d}: sparse ${s.correct} vs dense ${dn.correct} correct`);
      emit({
        mode: 'crossover',
        model,
        density: d,
        backend: backend.name,
        images: ctx.data.count,
        sparseMs: +s.wall.toFixed(1),
        denseMs: +dn.wall.toFixed(1),
        sparseCpuMs: +s.cpu.toFixed(1),
        denseCpuMs: +dn.cpu.toFixed(1),
        loadAverage: +((load0 + loadavg()[0]!) / 2).toFixed(2),
      });
    }
  }
}

export interface LayerCrossoverRow {
  mode: 'crossover-layer';
  model: Model;
  layer: string;
  kind: 'conv2d' | 'dense';
  /** Fraction of non-zero values in the layer's input activations. */
  inputDensity: number;
  density: number;
  kernel: string;
  backend: string;
  images: number;
  sparseCpuMs: number;
  denseCpuMs: number;
  sparseMs: number;
  denseMs: number;
  loadAverage: number;
}

async function crossoverLayers(a: Args, emit: (r: LayerCrossoverRow) => void): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  const { runGraph, toTensors, disposeModelTensors } = await import('../models/forward.js');
  const { walkGraph } = await import('../models/walk.js');
  const { prunableOps, weightShape } = await import('../models/graph.js');
  const { compileSparseDense, compactNonZero } = await import('../evaluators/sparse.js');
  const { compileSparseConv } = await import('../evaluators/sparse-conv.js');
  const backend = await initBackend(a.backend);
  const ds = loadDataset('mnist', { limit: { validation: a.images, train: 1, test: 1 } });
  const N = ds.validation.count;
  const B = 1000;
  for (const model of a.models) {
    const arch = getArchitecture(model);
    const { params } = referenceParams(model);
    const ops = prunableOps(arch);
    const stats = layerStats(arch);
    const walk = walkGraph(arch);
    const all = toTensors(arch, params);
    for (let k = 0; k < ops.length; k++) {
      const op = ops[k]!;
      if (op.type === 'depthwise') continue;
      const node = walk.nodes[walk.layers[k]!]!;
      const inShape = node.inShape;
      const inSize = inShape[0] * inShape[1] * inShape[2];
      // The layer's input activations for every image, from the dense reference network.
      const X = new Float32Array(N * inSize);
      const src = node.inputs[0]!;
      for (let s0 = 0; s0 < N; s0 += B) {
        const b = Math.min(B, N - s0);
        const y = tf.tidy(() => {
          const x = tf.tensor4d(ds.validation.images.subarray(s0 * 784, (s0 + b) * 784), [b, 28, 28, 1]);
          return src >= 0 ? runGraph(arch, all, x, { fetch: src }) : x;
        });
        X.set(y.dataSync() as Float32Array, s0 * inSize);
        y.dispose();
      }
      let nz = 0;
      for (let i = 0; i < X.length; i++) if (X[i] !== 0) nz++;
      const inputDensity = nz / X.length;
      for (const d of a.crossoverDensities) {
        const rng = new Rng(`crossover-layer:${model}:${op.name}:${d}`);
        const m = randomMasks(arch, stats.map((s, j) => (j === k ? d : 1) * (s.weights + s.biases)), rng)[k]!;
        const layer = params.layers[k]!;
        // Sparse: the engine's per-image kernel (float64 copy of the input, non-zero list when the kernel wants it).
        const step = op.type === 'dense' ? compileSparseDense(op, layer, m) : compileSparseConv(op, layer, m, inShape, undefined, inputDensity);
        const x64 = new Float64Array(inSize);
        const xNz = new Int32Array(inSize);
        const y64 = new Float64Array(step.outSize);
        const yNz = new Int32Array(step.outSize);
        const sparseRun = () => {
          for (let i = 0; i < N; i++) {
            x64.set(X.subarray(i * inSize, (i + 1) * inSize));
            const c = step.wantsNz ? compactNonZero(x64, inSize, xNz) : -1;
            step.run(x64, xNz, c, y64, yNz);
          }
        };
        // Dense: the tfjs fused op on batches of 1000 (input uploaded, output left on the backend).
        const wm = new Float32Array(layer.weight.length);
        for (let i = 0; i < wm.length; i++) wm[i] = m.weight[i] ? layer.weight[i]! : 0;
        const bm = new Float32Array(layer.bias.length);
        for (let i = 0; i < bm.length; i++) bm[i] = m.bias[i] ? layer.bias[i]! : 0;
        const wt = tf.tensor(wm, weightShape(op));
        const bt = tf.tensor1d(bm);
        const denseRun = () => {
          for (let s0 = 0; s0 < N; s0 += B) {
            const b = Math.min(B, N - s0);
            const y = tf.tidy(() => {
              const xs = X.subarray(s0 * inSize, (s0 + b) * inSize);
              if (op.type === 'dense') return tf.fused.matMul({ a: tf.tensor2d(xs, [b, inSize]), b: wt as import('@tensorflow/tfjs').Tensor2D, bias: bt, activation: op.activation === 'tanh' ? 'linear' : op.activation });
              return tf.fused.conv2d({ x: tf.tensor4d(xs, [b, ...inShape]), filter: wt as import('@tensorflow/tfjs').Tensor4D, strides: op.stride, pad: op.padding, bias: bt, activation: op.activation === 'tanh' ? 'linear' : op.activation });
            });
            // Force completion without reading the whole output back (inside a network it stays on the backend).
            const one = tf.tidy(() => tf.slice(y.reshape([-1]), [0], [1]));
            one.dataSync();
            tf.dispose([one, y]);
          }
        };
        const time = (f: () => void) => {
          f();
          const walls: number[] = [];
          const cpus: number[] = [];
          for (let r = 0; r < 3; r++) {
            const t = performance.now();
            const c = process.cpuUsage();
            f();
            walls.push(performance.now() - t);
            cpus.push(cpuSeconds(c) * 1000);
          }
          walls.sort((p, q) => p - q);
          cpus.sort((p, q) => p - q);
          return { wall: walls[1]!, cpu: cpus[1]! };
        };
        const load0 = loadavg()[0]!;
        const sp = time(sparseRun);
        const dn = time(denseRun);
        tf.dispose([wt, bt]);
        emit({
          mode: 'crossover-layer',
          model,
          layer: op.name,
          kind: op.type,
          inputDensity: +inputDensity.toFixed(3),
          density: d,
          kernel: step.kernel,
          backend: backend.name,
          images: N,
          sparseCpuMs: +sp.cpu.toFixed(1),
          denseCpuMs: +dn.cpu.toFixed(1),
          sparseMs: +sp.wall.toFixed(1),
          denseMs: +dn.wall.toFixed(1),
          loadAverage: +((load0 + loadavg()[0]!) / 2).toFixed(2),
        });
      }
    }
    disposeModelTensors(all);
  }
}

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

export interface CeilingRow {
  mode: 'parallel-ceiling';
  threads: number;
  /** Throughput of `threads` worker threads running the same fixed scalar JS loop, over one thread's. */
  speedup: number;
  loadAverage: number;
}

/**
 * What this machine gives N threads of plain compute: a fixed scalar JS loop timed in 1 worker thread, then in N at
 * once. It bounds what N evaluator workers can reach here (on a VM, N vCPUs need not be N cores' worth).
 */
export async function parallelCeiling(threads: number): Promise<CeilingRow> {
  const code = `const { parentPort } = require('node:worker_threads');
    const t = performance.now(); let s = 0; for (let i = 0; i < 4e8; i++) s += i % 7;
    parentPort.postMessage([performance.now() - t, s]);`;
  const once = (): Promise<number> =>
    new Promise((res, rej) => {
      const w = new Worker(code, { eval: true });
      w.once('message', (m: [number, number]) => void w.terminate().then(() => res(m[0])));
      w.once('error', rej);
    });
  const load0 = loadavg()[0]!;
  await once(); // warm-up
  const single = await once();
  const many = await Promise.all(Array.from({ length: threads }, once));
  const speedup = (threads * single) / Math.max(...many);
  return { mode: 'parallel-ceiling', threads, speedup: +speedup.toFixed(3), loadAverage: +((load0 + loadavg()[0]!) / 2).toFixed(2) };
}

export async function run(args: string[]): Promise<void> {
  const a = parseArgs(args);
  if (a.crossoverLayers) {
    if (!a.json) console.log('model            layer  input-density  density  kernel        sparse cpu ms  dense cpu ms  load');
    await crossoverLayers(a, (r) => {
      if (a.json) console.log(JSON.stringify(r));
      else
        console.log(
          `${r.model.padEnd(16)} ${r.layer.padEnd(6)} ${pad(r.inputDensity.toFixed(2), 13)} ${pad((r.density * 100).toFixed(1) + '%', 8)}  ${r.kernel.padEnd(12)} ${pad(r.sparseCpuMs.toFixed(0), 14)} ${pad(r.denseCpuMs.toFixed(0), 13)}  ${r.loadAverage}`,
        );
    });
    return;
  }
  if (a.crossover) {
    if (!a.json) console.log('model            density  sparse ms  dense ms  (cpu ms: sparse / dense)  load');
    await crossover(a, (r) => {
      if (a.json) console.log(JSON.stringify(r));
      else console.log(`${r.model.padEnd(16)} ${pad((r.density * 100).toFixed(0) + '%', 7)} ${pad(r.sparseMs.toFixed(0), 10)} ${pad(r.denseMs.toFixed(0), 9)}  ${pad(r.sparseCpuMs.toFixed(0), 12)} / ${pad(r.denseCpuMs.toFixed(0), 6)}       ${r.loadAverage}`);
    });
    return;
  }
  if (!a.json) {
    const b = await initBackend(a.backend);
    console.log(`evaluator throughput, ${a.images} images, workers' ${describeBackend(b)}`);
    console.log('model            density        workers  cand/s   PyTorch (measured here, else * = recorded)  cpu s/cand  paths                       load');
  }
  const most = Math.max(...a.workers);
  if (most > 1) {
    const c = await parallelCeiling(most);
    if (a.json) console.log(JSON.stringify(c));
    else console.log(`(this machine: ${most} threads of a plain JS loop give ${c.speedup.toFixed(2)}x of one; load ${c.loadAverage})`);
  }
  await throughput(a, (r) => {
    if (a.json) console.log(JSON.stringify(r));
    else
      console.log(
        `${r.model.padEnd(16)} ${r.density.padEnd(14)} ${pad(r.workers, 7)} ${pad(r.candidatesPerSecond.toFixed(2), 7)}   ${pad(r.pytorchMeasured !== null ? r.pytorchMeasured.toFixed(2) : `${r.pytorchReference}*`, 8)}      ${pad(r.cpuSecondsPerCandidate.toFixed(3), 9)}   ${r.layerPaths.join(',').padEnd(27)} ${r.loadAverage}`,
      );
  });
}

// Direct entry (node dist/bench/eval.js ...) while bench/index.ts may not dispatch 'eval' yet.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  run(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? `error: ${e.message}` : e);
    process.exit(e instanceof UsageError ? 2 : 1);
  });
}
