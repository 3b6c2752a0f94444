/**
 * `npm run bench -- train [--backend B] [--json] [--models a,b] [--steps N] [--warmup N] [--fallback]`
 *
 * Rows (one JSON object per line with --json):
 *  - kind 'train':  model, backend, msPerStep (Caffe SGD step, batch 64, after warm-up; wall clock), cpuMsPerStep
 *                   (process CPU time per step: the wasm backend is single-threaded, so on a busy machine this is
 *                   closer to the unloaded step time), imagesPerSec (training),
 *                   inferenceImagesPerSec (evaluateAccuracy over 10,000 test images in batches of 1,000);
 *  - kind 'kernel' (wasm only): Conv2DBackpropFilter at LeNet-5's two conv shapes (batch 64), ms per call, for the
 *                   XNNPACK-conv kernel of backends/kernels/wasm.ts and, with --fallback, for the copy-to-cpu
 *                   fallback (the tfjs cpu kernel; slow: tens of seconds per call).
 */
import * as tf from '@tensorflow/tfjs';
import { parseFlags, COMMON_FLAGS } from '../src/cli-args.js';
import { parseNumber, UsageError } from '../foundation/errors.js';
import { initBackend, parseBackendName, describeBackend, backendRecord } from '../backends/backend.js';
import { setConv2DBackpropFilterImpl, type Conv2DBackpropFilterImpl } from '../backends/kernels/wasm.js';
import { getArchitecture } from '../models/architectures.js';
import { initParams } from '../models/params.js';
import { loadDataset } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { Trainer, evaluateAccuracy } from '../src/train/index.js';

const FLAGS = {
  ...COMMON_FLAGS,
  models: { type: 'string', default: 'lenet-300-100,lenet-5' },
  steps: { type: 'string' },
  warmup: { type: 'string', default: '5' },
  fallback: { type: 'boolean', default: false },
} as const;

const DEFAULT_STEPS: Record<string, number> = { 'lenet-300-100': 200, 'lenet-5': 40 };

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
  const models = values.models.split(',').map((m) => m.trim()).filter(Boolean);
  if (models.length === 0) throw new UsageError('--models is empty');
  const data = loadDataset('mnist', { limit: { train: 12800, validation: 1, test: 10000 } });
  for (const name of models) {
    const arch = getArchitecture(name);
    const steps = stepsFlag ?? DEFAULT_STEPS[name] ?? 50;
    const trainer = new Trainer(arch, initParams(arch, new Rng(`bench:${name}`)), data.train);
    for (let i = 0; i < warmup; i++) trainer.step();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < steps; i++) trainer.step();
    const msPerStep = (performance.now() - t0) / steps;
    const cpu = process.cpuUsage(c0);
    const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
    const params = trainer.getParams();
    trainer.dispose();
    evaluateAccuracy(arch, params, null, { ...data.test, count: 1000 }, 1000); // warm-up batch
    const t1 = performance.now();
    const ev = evaluateAccuracy(arch, params, null, data.test, 1000);
    const inferMs = performance.now() - t1;
    emit(json, {
      kind: 'train',
      model: name,
      backend: backend.name,
      batch: trainer.solver.batchSize,
      steps,
      msPerStep,
      cpuMsPerStep,
      imagesPerSec: (trainer.solver.batchSize * 1000) / msPerStep,
      inferenceImagesPerSec: (ev.count * 1000) / inferMs,
      inferenceBatch: 1000,
      ...(json ? { backendRecord: backendRecord(backend) } : {}),
    });
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
