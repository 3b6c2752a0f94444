/**
 * One thread of `bench train`'s ceiling measurement: an independent, unsharded trainer stepping on its own model
 * while the other threads do the same, started together through a shared flag. Posts its ms per step.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../backends/backend.js';
import { initParams } from '../models/params.js';
import { loadDataset } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { Trainer } from '../src/train/index.js';
import { getArchitecture } from '../models/architectures.js';
import '../models/zoo-cnn.js';

const { model, steps, warmup, flags } = workerData as { model: string; steps: number; warmup: number; flags: Int32Array };
await initBackend('wasm');
const arch = getArchitecture(model);
const data = loadDataset('mnist', { limit: { train: 6400, validation: 1, test: 1 } });
const trainer = new Trainer(arch, initParams(arch, new Rng(`bench:${model}`)), data.train);
for (let i = 0; i < warmup; i++) trainer.step();
Atomics.add(flags, 0, 1);
Atomics.notify(flags, 0);
while (Atomics.load(flags, 1) === 0) Atomics.wait(flags, 1, 0, 100);
const t0 = performance.now();
for (let i = 0; i < steps; i++) trainer.step();
parentPort!.postMessage((performance.now() - t0) / steps);
trainer.dispose();
