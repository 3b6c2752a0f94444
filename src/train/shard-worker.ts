/**
 * A training thread of the sharded trainer (see shard-pool.ts). Starts its own backend (the main thread's kind,
 * with the same registered kernels), then loops synchronously: wait for a step, read the weights and the batch from
 * shared memory, compute its shards (shard-step.ts), arrive. Gate changes come as messages, read before each step.
 */
import { workerData, receiveMessageOnPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../backends/backend.js';
import { toTensors, disposeModelTensors } from '../../models/forward.js';
import { CTRL, ShardParticipant } from './shard-sync.js';
import { runShardStep, type BatchNormRecord } from './shard-step.js';
import { stepShards, weightsFromBuffer, type ShardWorkerData, type ShardWorkerMessage } from './shard-pool.js';
import { threadBlock } from './shard-plan.js';

const data = workerData as ShardWorkerData;
const { mem, port } = data;
const ctrl = mem.ctrl;

function fail(e: unknown): void {
  port.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) } satisfies ShardWorkerMessage);
  Atomics.store(ctrl, CTRL.ERR, 1);
  Atomics.add(ctrl, CTRL.ARRIVE, 1);
  Atomics.notify(ctrl, CTRL.ARRIVE);
  Atomics.notify(ctrl, CTRL.READY);
}

async function main(): Promise<void> {
  await initBackend(data.backend);
  const teacher = data.distill ? toTensors(data.arch, data.distill.teacher) : null;
  let gates: (tf.Tensor1D | null)[] | null = null;
  const participant = new ShardParticipant(mem);
  Atomics.add(ctrl, CTRL.READY, 1);
  Atomics.notify(ctrl, CTRL.READY);
  let seen = 0;
  for (;;) {
    while (Atomics.load(ctrl, CTRL.STEP) === seen) {
      if (Atomics.load(ctrl, CTRL.STOP) !== 0) return;
      Atomics.wait(ctrl, CTRL.STEP, seen, 1000);
    }
    if (Atomics.load(ctrl, CTRL.STOP) !== 0) return;
    seen = Atomics.load(ctrl, CTRL.STEP);
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      const msg = m.message as ShardWorkerMessage;
      if (msg.type === 'gates') {
        if (gates) for (const g of gates) g?.dispose();
        gates = msg.gates ? msg.gates.map((g) => (g ? tf.tensor1d(g, 'float32') : null)) : null;
      }
    }
    const n = Atomics.load(ctrl, CTRL.BATCH);
    const iteration = Atomics.load(ctrl, CTRL.ITERATION);
    const per = data.arch.inputShape[0] * data.arch.inputShape[1] * data.arch.inputShape[2];
    const shards = stepShards(data.arch, mem.images.subarray(0, n * per), mem.labels.subarray(0, n), data.shards, data.thread, data.threads);
    if (shards.length === 0) continue;
    const tensors = weightsFromBuffer(data.arch, mem.weights);
    try {
      runShardStep({
        arch: data.arch,
        tensors,
        shards,
        block: threadBlock(data.thread, data.threads, data.shards),
        shardCount: data.shards,
        batchSize: n,
        gradLayout: data.gradLayout,
        mem,
        exchange: participant,
        gates,
        dropoutSeed: (k) => iteration * data.shards + k,
        distill: data.distill && teacher ? { teacher, alpha: data.distill.alpha, temperature: data.distill.temperature } : null,
        batchNorms: [] as BatchNormRecord[],
      });
    } finally {
      disposeModelTensors(tensors);
    }
    participant.arrive();
  }
}

main().catch((e) => {
  if (Atomics.load(ctrl, CTRL.STOP) === 0) fail(e);
});
