/**
 * `npm run bench -- train [--threads 1,2] [--shards 8] [--models a,b] [--steps N] [--warmup N] [--backend B] [--json]
 *                        [--no-peer] [--fallback]`
 *
 * Rows (one JSON object per line with --json), all measured in this run:
 *  - kind 'train':   model, shards, threads, msPerStep (SGD step, batch 64, wall clock after warm-up), cpuMsPerStep
 *                    (process CPU time, all threads), imagesPerSec; shards 1 is the unsharded trainer, and for it
 *                    also inferenceImagesPerSec (10,000 test images in batches of 1,000);
 *  - kind 'ceiling': for each thread count N > 1, N independent unsharded trainers stepping at once in N threads:
 *                    speedup = N · (ms/step of one alone) / (mean ms/step of the N) — what the machine allows;
 *  - kind 'peer':    PyTorch (bench/crosscheck/torch_train.py, torch.set_num_threads(N), same shapes and batch), when
 *                    a python3 with torch is found (Debian's python3-torch needs libopenblas0-pthread, or it runs the
 *                    reference BLAS); the row names the BLAS library it loaded;
 *  - kind 'kernel' (wasm only): Conv2DBackpropFilter at LeNet-5's two conv shapes (batch 64), ms per call, for the
 *                    XNNPACK-conv kernel of backends/kernels/wasm.ts and, with --fallback, for the copy-to-cpu
 *                    fallback (the tfjs cpu kernel; slow: tens of seconds per call).
 * Models: lenet-300-100, lenet-5 and resnet-bn (models/zoo-cnn.ts; mirrored in bench/crosscheck/torch_train.py).
 */
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import { parseFlags, COMMON_FLAGS } from '../src/cli-args.js';
import { parseNumber, UsageError } from '../foundation/errors.js';
import { initBackend, parseBackendName, describeBackend, backendRecord } from '../backends/backend.js';
import { setConv2DBackpropFilterImpl, type Conv2DBackpropFilterImpl } from '../backends/kernels/wasm.js';
import { initParams } from '../models/params.js';
import { loadDataset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { Trainer, evaluateAccuracy } from '../src/train/index.js';
import { parseNumberList } from '../src/pipeline/config.js';
import { getArchitecture } from '../models/architectures.js';
import '../models/zoo-cnn.js';
import { torchPython, runTorchPeer } from './lib/torch-peer.js';

const FLAGS = {
  ...COMMON_FLAGS,
  models: { type: 'string', default: 'lenet-300-100,lenet-5,resnet-bn' },
  threads: { type: 'string', default: '1,2' },
  shards: { type: 'string', default: '8' },
  steps: { type: 'string' },
  warmup: { type: 'string', default: '5' },
  'no-peer': { type: 'boolean', default: false },
  fallback: { type: 'boolean', default: false },
} as const;

const DEFAULT_STEPS: Record<string, number> = { 'lenet-300-100': 200, 'lenet-5': 40, 'resnet-bn': 20 };

function emit(json: boolean, row: Record<string, unknown>): void {
  if (json) {
    process.stdout.write(JSON.stringify(row) + '\n');
  } else {
    process.stdout.write(
      Object.entries(row)
        .filter(([k]) => k !== 'backendRecord')
        .map(([k, v]) => `${k}=${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toPrecision(4)) : String(v)}`)
        .join('  ') + '\n',
    );
  }
}

/** ms/step and CPU ms/step of a trainer after warm-up. */
function timeTrainer(trainer: Trainer, warmup: number, steps: number): { msPerStep: number; cpuMsPerStep: number } {
  for (let i = 0; i < warmup; i++) trainer.step();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) trainer.step();
  const msPerStep = (performance.now() - t0) / steps;
  const cpu = process.cpuUsage(c0);
  return { msPerStep, cpuMsPerStep: (cpu.user + cpu.system) / 1000 / steps };
}

/** N independent unsharded trainers in N worker threads, started together: each one's ms/step. */
async function ceiling(model: string, n: number, warmup: number, steps: number): Promise<number[]> {
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const url = new URL(`./train-ceiling-worker${ext}`, import.meta.url);
  const workers = Array.from({ length: n }, () => new Worker(url, { workerData: { model, steps, warmup, flags } }));
  const results = workers.map((w) => new Promise<number>((resolve, reject) => (w.once('message', resolve), w.once('error', reject))));
  while (Atomics.load(flags, 0) < n) await new Promise((r) => setTimeout(r, 20));
  Atomics.store(flags, 1, 1);
  Atomics.notify(flags, 1);
  const out = await Promise.all(results);
  await Promise.all(workers.map((w) => w.terminate()));
  return out;
}

function torchStep(py: string, model: string, threads: number, steps: number): { msPerStep: number; torch: string; blas: string } {
  return runTorchPeer(py, 'torch_train.py', ['--model', model, '--threads', String(threads), '--steps', String(steps)]);
}

function timeKernel(impl: Conv2DBackpropFilterImpl, xShape: [number, number, number, number], filterShape: [number, number, number, number], reps: number): number {
  setConv2DBackpropFilterImpl(impl);
  try {
    const rng = new Rng('bench-kernel');
    const [n, h, w, c] = xShape;
    const [kh, kw, , co] = filterShape;
    const x = tf.tensor4d(Float32Array.from({ length: n * h * w * c }, () => rng.normal()), xShape);
    const dy = tf.tensor4d(Float32Array.from({ length: n * (h - kh + 1) * (w - kw + 1) * co }, () => rng.normal()), [n, h - kh + 1, w - kw + 1, co]);
    const call = (): void => {
      const r = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'valid', dataFormat: 'NHWC', filterShape } as unknown as tf.NamedAttrMap) as tf.Tensor;
      r.dataSync();
      r.dispose();
    };
    if (impl === 'wasm-conv') call();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) call();
    const ms = (performance.now() - t0) / reps;
    tf.dispose([x, dy]);
    return ms;
  } finally {
    setConv2DBackpropFilterImpl('wasm-conv');
  }
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseFlags(args, FLAGS, 'bench train');
  const backend = await initBackend(parseBackendName(values.backend));
  process.stderr.write(`bench train: ${describeBackend(backend)}\n`);
  const json = values.json;
  const warmup = parseNumber('--warmup', values.warmup, { min: 0, integer: true });
  const stepsFlag = values.steps === undefined ? undefined : parseNumber('--steps', values.steps, { min: 1, integer: true });
  const shards = parseNumber('--shards', values.shards, { min: 1, max: 256, integer: true });
  const threadCounts = parseNumberList('--threads', values.threads).map((t) => parseNumber('--threads', String(t), { min: 1, max: 256, integer: true }));
  const models = values.models.split(',').map((m) => m.trim()).filter(Boolean);
  if (models.length === 0) throw new UsageError('--models is empty');
  const py = values['no-peer'] ? null : torchPython();
  if (!values['no-peer'] && !py) process.stderr.write('bench train: no python3 with torch found; no peer rows\n');
  const data = loadDataset('mnist', { limit: { train: 12800, validation: 1, test: 10000 } });
  const train: ImageSet = data.train;
  for (const name of models) {
    const arch = getArchitecture(name);
    const steps = stepsFlag ?? DEFAULT_STEPS[name] ?? 50;
    const p0 = initParams(arch, new Rng(`bench:${name}`));
    const rec = json ? { backendRecord: backendRecord(backend) } : {};
    // The unsharded trainer (today's path), then the sharded one at each thread count.
    const plain = new Trainer(arch, p0, train);
    const t1 = timeTrainer(plain, warmup, steps);
    const params = plain.getParams();
    const batch = plain.solver.batchSize;
    plain.dispose();
    evaluateAccuracy(arch, params, null, { ...data.test, count: 1000 }, 1000); // warm-up batch
    const ti = performance.now();
    const ev = evaluateAccuracy(arch, params, null, data.test, 1000);
    const inferMs = performance.now() - ti;
    emit(json, { kind: 'train', model: name, backend: backend.name, batch, shards: 1, threads: 1, steps, ...t1, imagesPerSec: (batch * 1000) / t1.msPerStep, inferenceImagesPerSec: (ev.count * 1000) / inferMs, inferenceBatch: 1000, ...rec });
    let sharded1 = NaN;
    for (const n of threadCounts) {
      const t = new Trainer(arch, p0, train, { shards, threads: n });
      const r = timeTrainer(t, warmup, steps);
      t.dispose();
      if (n === 1) sharded1 = r.msPerStep;
      emit(json, { kind: 'train', model: name, backend: backend.name, batch, shards, threads: n, steps, ...r, imagesPerSec: (batch * 1000) / r.msPerStep, speedupOverUnsharded: t1.msPerStep / r.msPerStep, ...(n > 1 && Number.isFinite(sharded1) ? { speedupOverOneThread: sharded1 / r.msPerStep } : {}), ...rec });
    }
    if (backend.name === 'wasm') {
      const alone = (await ceiling(name, 1, warmup, steps))[0]!;
      for (const n of threadCounts.filter((k) => k > 1)) {
        const each = await ceiling(name, n, warmup, steps);
        const mean = each.reduce((a, b) => a + b, 0) / n;
        emit(json, { kind: 'ceiling', model: name, threads: n, msPerStepAlone: alone, msPerStepEach: mean, speedup: (n * alone) / mean });
      }
    }
    if (py) {
      for (const n of threadCounts) {
        const r = torchStep(py, name, n, Math.max(20, Math.min(steps, 100)));
        emit(json, { kind: 'peer', model: name, peer: `pytorch ${r.torch}`, threads: n, batch: 64, msPerStep: r.msPerStep, blas: r.blas });
      }
    }
  }
  if (backend.name === 'wasm') {
    const shapes: [string, [number, number, number, number], [number, number, number, number]][] = [
      ['conv1', [64, 28, 28, 1], [5, 5, 1, 20]],
      ['conv2', [64, 12, 12, 20], [5, 5, 20, 50]],
    ];
    for (const [layer, xs, fs] of shapes) {
      emit(json, { kind: 'kernel', kernel: 'Conv2DBackpropFilter', layer, backend: backend.name, impl: 'wasm-conv', msPerCall: timeKernel('wasm-conv', xs, fs, 20) });
      if (values.fallback) emit(json, { kind: 'kernel', kernel: 'Conv2DBackpropFilter', layer, backend: backend.name, impl: 'cpu-fallback', msPerCall: timeKernel('cpu-fallback', xs, fs, 1) });
    }
  }
}
