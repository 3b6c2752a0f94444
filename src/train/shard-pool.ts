/**
 * Sharded training steps on several threads, bit-identical for any number of threads.
 *
 * A step's batch is cut into a fixed number of shards (shard-plan.ts; the count is a property of the run, not of the
 * machine). The main thread and `threads − 1` worker threads each compute the gradients of a block of shards on the
 * same weights (shard-step.ts), every shard into its own slot of a shared buffer; the main thread then sums the
 * slots in shard order. Since a shard's gradient does not depend on which thread computed it, nor on what else that
 * thread computed, the sum — and so the whole run — is the same for 1, 2 or 16 threads. Weights and the batch go out
 * through SharedArrayBuffers once per step and gradients come back the same way: nothing is cloned per step.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../../models/graph.js';
import { prunableOps, batchNormOps, weightShape, biasLength } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import type { ModelTensors } from '../../models/forward.js';
import { compiledModuleUrl } from '../../evaluators/builders.js';
import type { BackendName } from '../../backends/backend.js';
import { addF32, flatLayout, reduceTree, shardRanges, threadBlock, treeCover, type FlatLayout, type TreeNode } from './shard-plan.js';
import { allocateShardMemory, CTRL, ShardCoordinator, ShardWorkerError, type ShardMemory } from './shard-sync.js';
import { runShardStep, type BatchNormRecord, type ShardImages } from './shard-step.js';

export interface ShardWorkerData {
  arch: Architecture;
  mem: ShardMemory;
  port: MessagePort;
  thread: number;
  threads: number;
  shards: number;
  backend: BackendName;
  gradLayout: FlatLayout;
  distill: { teacher: ModelParams; alpha: number; temperature: number } | null;
}

export type ShardWorkerMessage = { type: 'gates'; gates: (Float32Array | null)[] | null } | { type: 'error'; message: string };

/** --train-threads: 0 means one per core. */
export function resolveTrainThreads(n: number): number {
  return n === 0 ? availableParallelism() : n;
}

/** Flat layout of the gradient slots: weight and bias of each prunable layer. */
export function gradLayoutOf(arch: Architecture): FlatLayout {
  return flatLayout(prunableOps(arch).flatMap((op) => [weightShape(op).reduce((a, b) => a * b, 1), biasLength(op)]));
}

/** Flat layout of the weight buffer: the gradient layout, then γ and β of each batchnorm. */
export function weightLayoutOf(arch: Architecture): FlatLayout {
  return flatLayout([...gradLayoutOf(arch).sizes, ...batchNormOps(arch).flatMap((op) => [op.channels, op.channels])]);
}

/** The model tensors a worker reads from the weight buffer (moving statistics are not used in training mode). */
export function weightsFromBuffer(arch: Architecture, weights: Float32Array): ModelTensors {
  const L = weightLayoutOf(arch);
  const at = (i: number): Float32Array => weights.subarray(L.offsets[i]!, L.offsets[i]! + L.sizes[i]!);
  const ops = prunableOps(arch);
  return {
    layers: ops.map((op, l) => ({ weight: tf.tensor(at(2 * l), weightShape(op), 'float32'), bias: tf.tensor1d(at(2 * l + 1), 'float32') })),
    batchNorms: batchNormOps(arch).map((op, b) => ({
      gamma: tf.tensor1d(at(2 * ops.length + 2 * b), 'float32'),
      beta: tf.tensor1d(at(2 * ops.length + 2 * b + 1), 'float32'),
      movingMean: tf.zeros([op.channels]) as tf.Tensor1D,
      movingVariance: tf.ones([op.channels]) as tf.Tensor1D,
    })),
  };
}

/** This thread's non-empty shards of a batch of n held in shared memory (views). */
/** This thread's non-empty shards of a batch (views). */
export function stepShards(arch: Architecture, images: Float32Array, labels: Uint8Array, shards: number, thread: number, threads: number): ShardImages[] {
  const per = arch.inputShape[0] * arch.inputShape[1] * arch.inputShape[2];
  const ranges = shardRanges(labels.length, shards);
  const [lo, hi] = threadBlock(thread, threads, shards);
  const out: ShardImages[] = [];
  for (let k = lo; k < hi; k++) {
    const [a, b] = ranges[k]!;
    if (b > a) out.push({ shard: k, images: images.subarray(a * per, b * per), labels: labels.subarray(a, b) });
  }
  return out;
}

/** Compiled worker file, also when this module runs from TypeScript sources (vitest). */
function workerFileUrl(): string {
  return compiledModuleUrl(new URL('./shard-worker' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url).href);
}

export interface ShardPoolOptions {
  threads: number;
  shards: number;
  /** Largest batch a step may have. */
  batchSize: number;
  /** Backend of the worker threads: the main thread's, so that every shard is computed the same way. */
  backend: BackendName;
  distill?: { teacher: ModelParams; alpha: number; temperature: number } | null;
}

export interface ShardStepResult {
  /** Summed gradient of each prunable layer's weight and bias (gradient layout order). */
  grads: Float32Array[];
  /** Batch-mean loss. */
  loss: number;
  batchNorms: BatchNormRecord[];
}

const READY_TIMEOUT_MS = 120_000;

export class ShardPool {
  readonly threads: number;
  readonly shards: number;
  private readonly mem: ShardMemory;
  private readonly gradLayout: FlatLayout;
  private readonly weightLayout: FlatLayout;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private readonly coordinator: ShardCoordinator;
  private disposed = false;

  constructor(
    private readonly arch: Architecture,
    opts: ShardPoolOptions,
  ) {
    if (!Number.isInteger(opts.shards) || opts.shards < 1) throw new Error(`train shards must be an integer >= 1, got ${opts.shards}`);
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new Error(`train threads must be an integer >= 1, got ${opts.threads}`);
    this.shards = opts.shards;
    // More threads than shards would idle.
    this.threads = Math.min(opts.threads, opts.shards);
    this.gradLayout = gradLayoutOf(arch);
    this.weightLayout = weightLayoutOf(arch);
    const [H, W, C] = arch.inputShape;
    const widest = Math.max(0, ...batchNormOps(arch).map((op) => op.channels));
    this.mem = allocateShardMemory({
      shards: opts.shards,
      weights: this.weightLayout.total,
      grads: this.gradLayout.total,
      exchange: 2 * widest,
      images: opts.batchSize * H * W * C,
      batch: opts.batchSize,
    });
    this.coordinator = new ShardCoordinator(this.mem, () => this.workerError());
    for (let t = 1; t < this.threads; t++) {
      const { port1, port2 } = new MessageChannel();
      const data: ShardWorkerData = {
        arch,
        mem: this.mem,
        port: port2,
        thread: t,
        threads: this.threads,
        shards: opts.shards,
        backend: opts.backend,
        gradLayout: this.gradLayout,
        distill: opts.distill ?? null,
      };
      const w = new Worker(new URL(workerFileUrl()), { workerData: data, transferList: [port2] });
      w.unref();
      this.workers.push(w);
      this.ports.push(port1);
    }
    this.awaitReady();
  }

  private awaitReady(): void {
    const c = this.mem.ctrl;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (Atomics.load(c, CTRL.ERR) !== 0) {
        const e = this.workerError();
        this.dispose();
        throw e;
      }
      const r = Atomics.load(c, CTRL.READY);
      if (r >= this.workers.length) return;
      if (Date.now() > deadline) {
        this.dispose();
        throw new Error(`sharded training: ${this.workers.length - r} of ${this.workers.length} worker threads did not start within ${READY_TIMEOUT_MS / 1000} s`);
      }
      Atomics.wait(c, CTRL.READY, r, 200);
    }
  }

  private workerError(): Error {
    for (const p of this.ports) {
      for (let m = receiveMessageOnPort(p); m; m = receiveMessageOnPort(p)) {
        const msg = m.message as ShardWorkerMessage;
        if (msg.type === 'error') return new ShardWorkerError(`a training thread failed: ${msg.message}`);
      }
    }
    return new ShardWorkerError('a training thread failed');
  }

  /** New channel gates for the following steps (null entries: none). */
  setGates(gates: (Float32Array | null)[] | null): void {
    for (const p of this.ports) p.postMessage({ type: 'gates', gates } satisfies ShardWorkerMessage);
  }

  /**
   * One step's gradients: `tensors` are the effective parameters on this thread (also written to the workers),
   * `images`/`labels` the batch. Blocks until every thread is done.
   */
  step(args: {
    tensors: ModelTensors;
    images: Float32Array;
    labels: Uint8Array;
    iteration: number;
    gates: readonly (tf.Tensor1D | null)[] | null;
    teacher: ModelTensors | null;
    distill: { alpha: number; temperature: number } | null;
  }): ShardStepResult {
    if (this.disposed) throw new Error('the sharded trainer has been disposed');
    const mem = this.mem;
    const n = args.labels.length;
    if (n > mem.sizes.batch) throw new Error(`batch of ${n} exceeds the pool's ${mem.sizes.batch}`);
    const ranges = shardRanges(n, this.shards);
    const active: number[] = [];
    ranges.forEach(([a, b], k) => b > a && active.push(k));
    // Workers whose block holds an image (the non-empty shards are the first ones).
    const taking = this.workers.filter((_, i) => threadBlock(i + 1, this.threads, this.shards)[0] < active.length).length;
    if (this.workers.length > 0) {
      const L = this.weightLayout;
      const flat = [...args.tensors.layers.flatMap((l) => [l.weight, l.bias as tf.Tensor]), ...args.tensors.batchNorms.flatMap((b) => [b.gamma as tf.Tensor, b.beta as tf.Tensor])];
      flat.forEach((t, i) => {
        if (L.sizes[i]! > 0) mem.weights.set(t.dataSync() as Float32Array, L.offsets[i]!);
      });
      mem.images.set(args.images);
      mem.labels.set(args.labels);
      Atomics.store(mem.ctrl, CTRL.BATCH, n);
      Atomics.store(mem.ctrl, CTRL.ITERATION, args.iteration);
    }
    this.coordinator.beginStep(active, taking);
    if (this.workers.length > 0) {
      Atomics.add(mem.ctrl, CTRL.STEP, 1);
      Atomics.notify(mem.ctrl, CTRL.STEP);
    }
    const mine = stepShards(this.arch, args.images, args.labels, this.shards, 0, this.threads);
    const batchNorms: BatchNormRecord[] = [];
    runShardStep({
      arch: this.arch,
      tensors: args.tensors,
      shards: mine,
      block: threadBlock(0, this.threads, this.shards),
      shardCount: this.shards,
      batchSize: n,
      gradLayout: this.gradLayout,
      mem,
      exchange: this.coordinator,
      gates: args.gates,
      dropoutSeed: (k) => args.iteration * this.shards + k,
      distill: args.distill && args.teacher ? { teacher: args.teacher, ...args.distill } : null,
      batchNorms,
    });
    this.coordinator.awaitWorkers();
    const G = this.gradLayout;
    // The nodes the threads summed, by first shard; null where a node holds no images.
    const covered = new Map<string, Float32Array | null>();
    for (let t = 0; t < this.threads; t++) {
      const [lo, hi] = threadBlock(t, this.threads, this.shards);
      for (const node of treeCover(lo, hi, this.shards)) covered.set(`${node.lo}:${node.hi}`, node.lo < active.length ? mem.grads.subarray(node.lo * G.total, (node.lo + 1) * G.total) : null);
    }
    const total = reduceTree<Float32Array>({ lo: 0, hi: this.shards }, (node: TreeNode) => covered.get(`${node.lo}:${node.hi}`), addF32);
    const grads = G.sizes.map((s, i) => (total ? total.slice(G.offsets[i]!, G.offsets[i]! + s) : new Float32Array(s)));
    let loss = 0;
    for (const k of active) loss += mem.losses[k]!;
    return { grads, loss, batchNorms };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.mem.ctrl, CTRL.STOP, 1);
    Atomics.notify(this.mem.ctrl, CTRL.STEP);
    Atomics.notify(this.mem.ctrl, CTRL.GEN);
    for (const w of this.workers) void w.terminate();
    for (const p of this.ports) p.close();
  }
}
