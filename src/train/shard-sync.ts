/**
 * The shared memory of a sharded training step and the one synchronisation it needs: an all-reduce of per-shard
 * vectors (BatchNorm's batch statistics and their gradient sums). Threads block on Atomics (the main thread of Node
 * may), so a training step stays a synchronous call.
 *
 * Protocol on the control words: the main thread starts a step by bumping STEP; at an exchange every thread writes
 * its shards' parts, workers bump ARRIVE and wait for GEN to change; the main thread waits until every taking-part
 * worker has arrived, resets ARRIVE, sums the parts in shard order and bumps GEN. A worker that fails sets ERR (and
 * posts its message) so that a waiting main thread stops waiting.
 */

export const CTRL = { STEP: 0, ARRIVE: 1, GEN: 2, ERR: 3, STOP: 4, READY: 5, BATCH: 6, ITERATION: 7 } as const;

export interface ShardMemorySizes {
  shards: number;
  /** Floats of the flat weight buffer (effective weights and biases, then BatchNorm γ and β). */
  weights: number;
  /** Floats of one shard's gradient slot (the prunable layers' weights and biases). */
  grads: number;
  /** Largest exchange, in floats (2 × the widest BatchNorm). */
  exchange: number;
  /** Floats of the batch's images and the batch size. */
  images: number;
  batch: number;
}

/** SharedArrayBuffer-backed views; passed to workers as is (the buffers are shared, not copied). */
export interface ShardMemory {
  sizes: ShardMemorySizes;
  ctrl: Int32Array;
  weights: Float32Array;
  grads: Float32Array;
  /** Per shard: its loss contribution (Σ losses of its images / batch size). */
  losses: Float64Array;
  parts: Float32Array;
  /** The last exchange's sums. */
  result: Float64Array;
  images: Float32Array;
  labels: Uint8Array;
}

const f32 = (n: number): Float32Array => new Float32Array(new SharedArrayBuffer(Math.max(1, n) * 4));

export function allocateShardMemory(sizes: ShardMemorySizes): ShardMemory {
  return {
    sizes,
    ctrl: new Int32Array(new SharedArrayBuffer(16 * 4)),
    weights: f32(sizes.weights),
    grads: f32(sizes.shards * sizes.grads),
    losses: new Float64Array(new SharedArrayBuffer(sizes.shards * 8)),
    parts: f32(sizes.shards * sizes.exchange),
    result: new Float64Array(new SharedArrayBuffer(Math.max(1, sizes.exchange) * 8)),
    images: f32(sizes.images),
    labels: new Uint8Array(new SharedArrayBuffer(Math.max(1, sizes.batch))),
  };
}

/** Sums per-shard vectors over every shard of the batch, whichever thread holds them. */
export interface ShardExchange {
  /** parts: this thread's shards → vectors of `length`; returns Σ over all shards (float64 sums, in shard order). */
  allReduce(parts: ReadonlyMap<number, Float32Array>, length: number): Float64Array;
}

function writeParts(mem: ShardMemory, parts: ReadonlyMap<number, Float32Array>, length: number): void {
  const X = mem.sizes.exchange;
  if (length > X) throw new Error(`shard exchange of ${length} floats exceeds its ${X}`);
  for (const [k, v] of parts) mem.parts.set(v.subarray(0, length), k * X);
}

/** Thrown on the main thread when a worker failed. */
export class ShardWorkerError extends Error {}

/** The main thread's side: it also computes shards of its own, and it does the reductions. */
export class ShardCoordinator implements ShardExchange {
  /** Shards with images in this step, and how many workers take part. */
  private active: number[] = [];
  private waitFor = 0;

  constructor(
    private readonly mem: ShardMemory,
    private readonly onError: () => Error,
  ) {}

  beginStep(active: number[], workers: number): void {
    this.active = active;
    this.waitFor = workers;
  }

  /** Blocks until every taking-part worker has arrived, then resets the count. */
  awaitWorkers(): void {
    const c = this.mem.ctrl;
    for (;;) {
      if (Atomics.load(c, CTRL.ERR) !== 0) throw this.onError();
      const a = Atomics.load(c, CTRL.ARRIVE);
      if (a >= this.waitFor) break;
      Atomics.wait(c, CTRL.ARRIVE, a, 1000);
    }
    Atomics.store(c, CTRL.ARRIVE, 0);
  }

  allReduce(parts: ReadonlyMap<number, Float32Array>, length: number): Float64Array {
    const mem = this.mem;
    writeParts(mem, parts, length);
    this.awaitWorkers();
    const X = mem.sizes.exchange;
    const sum = new Float64Array(length);
    for (const k of this.active) {
      const base = k * X;
      for (let i = 0; i < length; i++) sum[i] += mem.parts[base + i]!;
    }
    mem.result.set(sum);
    Atomics.add(mem.ctrl, CTRL.GEN, 1);
    Atomics.notify(mem.ctrl, CTRL.GEN);
    return sum;
  }
}

/** A worker's side. */
export class ShardParticipant implements ShardExchange {
  constructor(private readonly mem: ShardMemory) {}

  /** Tells the main thread this worker is done with the current phase. */
  arrive(): void {
    Atomics.add(this.mem.ctrl, CTRL.ARRIVE, 1);
    Atomics.notify(this.mem.ctrl, CTRL.ARRIVE);
  }

  allReduce(parts: ReadonlyMap<number, Float32Array>, length: number): Float64Array {
    const mem = this.mem;
    const c = mem.ctrl;
    const gen = Atomics.load(c, CTRL.GEN);
    writeParts(mem, parts, length);
    this.arrive();
    while (Atomics.load(c, CTRL.GEN) === gen) {
      if (Atomics.load(c, CTRL.STOP) !== 0) throw new Error('sharded training stopped');
      Atomics.wait(c, CTRL.GEN, gen, 1000);
    }
    return mem.result.slice(0, length);
  }
}
