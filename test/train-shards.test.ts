/**
 * Sharded training: a batch cut into K shards whose gradients are summed along a fixed tree gives the same bits for
 * 1, 2 or 3 threads (BatchNorm on whole-batch statistics, DNS masks, channel gates and dropout included), the same
 * step as the unsharded trainer up to float32 rounding, and a run resumed with another thread count ends identically.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../backends/backend.js';
import type { Architecture } from '../models/graph.js';
import { initParams, cloneParams, type ModelParams, type LayerMasks } from '../models/params.js';
import { getArchitecture } from '../models/architectures.js';
import { Rng } from '../foundation/rng.js';
import type { ImageSet } from '../foundation/data/datasets.js';
import { randomSet } from './random-data.js';
import { Trainer, type TrainerOptions } from '../src/train/index.js';
import { shardRanges, treeCover, reduceTree, threadBlock, addF32 } from '../src/train/shard-plan.js';
import { search, resume } from '../src/pipeline/run.js';
import { StoppedError } from '../foundation/errors.js';
import { runCli, repoRoot } from './run-cli.js';

/** A small residual CNN with BatchNorm and dropout: stem conv+BN, a block conv+BN → conv+BN → Add, pool, dense. */
function residualBn(): Architecture {
  return {
    name: 'shards-resnet',
    inputShape: [8, 8, 1],
    numClasses: 3,
    ops: [
      { type: 'conv2d', name: 'stem', kernel: 3, inChannels: 1, outChannels: 4, stride: 1, padding: 'same', activation: 'linear' },
      { type: 'batchnorm', name: 'stem_bn', channels: 4, epsilon: 1e-3, activation: 'relu' },
      { type: 'conv2d', name: 'c1', kernel: 3, inChannels: 4, outChannels: 4, stride: 1, padding: 'same', activation: 'linear' },
      { type: 'batchnorm', name: 'c1_bn', channels: 4, epsilon: 1e-3, activation: 'relu' },
      { type: 'conv2d', name: 'c2', kernel: 3, inChannels: 4, outChannels: 4, stride: 1, padding: 'same', activation: 'linear' },
      { type: 'batchnorm', name: 'c2_bn', channels: 4, epsilon: 1e-3, activation: 'linear' },
      { type: 'add', name: 'sum', inputs: ['stem_bn', 'c2_bn'] },
      { type: 'maxpool', name: 'pool', size: 2, stride: 2 },
      { type: 'flatten', name: 'flat' },
      { type: 'dropout', name: 'drop', rate: 0.25 },
      { type: 'dense', name: 'fc', inUnits: 64, outUnits: 3, activation: 'linear' },
    ],
    maskGamma: [1e-4, 1e-4, 1e-4, 1e-4],
  };
}

interface Snapshot {
  params: ModelParams;
  momentum: unknown;
  losses: number[];
}

function train(arch: Architecture, p0: ModelParams, set: ImageSet, steps: number, opts: TrainerOptions, setup?: (t: Trainer) => void): Snapshot {
  const t = new Trainer(arch, cloneParams(p0), set, { solver: { batchSize: 24 }, ...opts });
  try {
    setup?.(t);
    const losses: number[] = [];
    for (let i = 0; i < steps; i++) losses.push(t.step().loss);
    return { params: t.getParams(), momentum: t.getMomentum(), losses };
  } finally {
    t.dispose();
  }
}

function maxRelDiff(a: ModelParams, b: ModelParams): number {
  let num = 0;
  let den = 0;
  a.layers.forEach((l, i) => {
    for (const k of ['weight', 'bias'] as const) {
      l[k].forEach((v, j) => {
        num = Math.max(num, Math.abs(v - b.layers[i]![k][j]!));
        den = Math.max(den, Math.abs(v));
      });
    }
  });
  return num / den;
}

/** Half of each layer's weights pruned (a fixed pattern), biases kept. */
function halfMasks(p: ModelParams): LayerMasks[] {
  return p.layers.map((l) => ({ weight: Uint8Array.from(l.weight, (_, i) => (i % 2 === 0 ? 1 : 0)), bias: new Uint8Array(l.bias.length).fill(1) }));
}

describe('shard plan', () => {
  it('cuts a batch into fixed shards and threads into contiguous blocks', () => {
    expect(shardRanges(10, 4)).toEqual([
      [0, 3],
      [3, 6],
      [6, 8],
      [8, 10],
    ]);
    expect(shardRanges(2, 4).map(([a, b]) => b - a)).toEqual([1, 1, 0, 0]);
    expect([0, 1, 2].map((t) => threadBlock(t, 3, 8))).toEqual([[0, 2], [2, 5], [5, 8]]);
  });

  it('covers a block with tree nodes, and every thread split sums to the same float32 bits', () => {
    expect(treeCover(2, 5, 8)).toEqual([
      { lo: 2, hi: 4 },
      { lo: 4, hi: 5 },
    ]);
    const rng = new Rng('tree');
    const leaves = Array.from({ length: 8 }, () => Float32Array.from({ length: 64 }, () => (rng.uniform() - 0.5) * 10 ** (rng.int(12) - 6)));
    const sumOf = (lo: number, hi: number): Float32Array => reduceTree({ lo, hi }, (n) => (n.hi - n.lo === 1 ? leaves[n.lo]! : undefined), addF32)!;
    const totals = [1, 2, 3, 5, 8].map((threads) => {
      const known = new Map<string, Float32Array>();
      for (let t = 0; t < threads; t++) {
        const [lo, hi] = threadBlock(t, threads, 8);
        for (const n of treeCover(lo, hi, 8)) known.set(`${n.lo}:${n.hi}`, sumOf(n.lo, n.hi));
      }
      return reduceTree({ lo: 0, hi: 8 }, (n) => known.get(`${n.lo}:${n.hi}`), addF32)!;
    });
    for (const t of totals) expect(Array.from(t)).toEqual(Array.from(totals[0]!));
    // A different order of the same sum is (generally) other bits: the tree is what makes them equal.
    const sequential = leaves.slice(1).reduce<Float32Array>((acc, l) => addF32(acc, l), leaves[0]!);
    expect(Array.from(sequential).some((v, i) => v !== totals[0]![i])).toBe(true);
  });
});

describe('sharded trainer', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  const rng = new Rng('shards-data');
  const set = randomSet(rng, 96, [8, 8, 1], 3);

  it('BatchNorm, masks, gates, dropout: 1, 2 and 3 threads give identical weights, momentum and statistics', () => {
    const arch = residualBn();
    const p0 = initParams(arch, new Rng('shards-init'));
    const gates = [null, Float32Array.from([1, 0, 1, 1]), null, null];
    const setup = (t: Trainer) => {
      t.setMasks(halfMasks(p0));
      t.setGates(gates);
    };
    const runs = [1, 2, 3].map((threads) => train(arch, p0, set, 5, { shards: 6, threads }, setup));
    for (const r of runs.slice(1)) {
      expect(r.params).toEqual(runs[0]!.params);
      expect(r.momentum).toEqual(runs[0]!.momentum);
      expect(r.losses).toEqual(runs[0]!.losses);
    }
    // The moving statistics moved: BatchNorm saw batch statistics.
    expect(Array.from(runs[0]!.params.batchNorms[0]!.movingMean).some((v) => v !== 0)).toBe(true);
  }, 120_000);

  it('a sharded step equals the unsharded step to float32 rounding (BatchNorm on whole-batch statistics)', () => {
    const arch = residualBn();
    // Without dropout, whose masks are drawn per shard: the two paths then compute the same function.
    const noDrop: Architecture = { ...arch, name: 'shards-resnet-nodrop', ops: arch.ops.map((o) => (o.type === 'dropout' ? { ...o, rate: 0 } : o)) };
    const p0 = initParams(noDrop, new Rng('shards-init'));
    const setup = (t: Trainer) => t.setMasks(halfMasks(p0));
    const whole = train(noDrop, p0, set, 1, {}, setup);
    const sharded = train(noDrop, p0, set, 1, { shards: 4, threads: 2 }, setup);
    expect(Math.abs(sharded.losses[0]! - whole.losses[0]!)).toBeLessThan(1e-5 * whole.losses[0]!);
    // After one step the weights differ by lr × (gradient difference): compare the updates.
    const delta = (p: ModelParams) => ({ ...p, layers: p.layers.map((l, i) => ({ weight: l.weight.map((v, j) => v - p0.layers[i]!.weight[j]!), bias: l.bias.map((v, j) => v - p0.layers[i]!.bias[j]!) })) });
    expect(maxRelDiff(delta(sharded.params), delta(whole.params))).toBeLessThan(1e-4);
    sharded.params.batchNorms.forEach((b, i) => {
      b.movingMean.forEach((v, j) => expect(v).toBeCloseTo(whole.params.batchNorms[i]!.movingMean[j]!, 5));
      b.movingVariance.forEach((v, j) => expect(v).toBeCloseTo(whole.params.batchNorms[i]!.movingVariance[j]!, 5));
    });
    // And a sharded gradient is not the unsharded one bit for bit (the test can tell them apart).
    expect(sharded.params).not.toEqual(whole.params);
  }, 120_000);

  it('LeNet-5: 1 and 3 threads identical; a state saved under 3 threads resumes under 1 to the same end', () => {
    const arch = getArchitecture('lenet-5');
    const data = randomSet(new Rng('lenet5-data'), 64, [28, 28, 1], 10);
    const p0 = initParams(arch, new Rng('lenet5-init'));
    const opts = { solver: { batchSize: 16 }, shards: 4 };
    const one = new Trainer(arch, cloneParams(p0), data, { ...opts, threads: 1 });
    for (let i = 0; i < 4; i++) one.step();
    const three = new Trainer(arch, cloneParams(p0), data, { ...opts, threads: 3 });
    expect(three.threads).toBe(3);
    for (let i = 0; i < 2; i++) three.step();
    const state = three.state();
    three.dispose();
    expect(state.shards).toBe(4);
    const resumed = Trainer.restore(arch, state, data, { threads: 1 });
    expect(resumed.shards).toBe(4);
    for (let i = 0; i < 2; i++) resumed.step();
    expect(resumed.getParams()).toEqual(one.getParams());
    expect(resumed.getMomentum()).toEqual(one.getMomentum());
    one.dispose();
    resumed.dispose();
  }, 120_000);

  it('rejects a custom loss with shards, and a state without a shard count restores unsharded', () => {
    const arch = residualBn();
    const p0 = initParams(arch, new Rng('shards-init'));
    expect(() => new Trainer(arch, p0, set, { shards: 2, loss: () => null as never })).toThrow(/default loss/);
    const t = new Trainer(arch, cloneParams(p0), set, { solver: { batchSize: 24 } });
    const s = t.state();
    t.dispose();
    expect(s.shards).toBeUndefined();
    const r = Trainer.restore(arch, s, set, { threads: 2 });
    expect(r.shards).toBe(1);
    expect(r.threads).toBe(1);
    r.dispose();
  });
});

describe('pipeline: --train-shards with a changed --train-threads on resume', () => {
  const root = mkdtempSync(join(tmpdir(), 'prunus-shards-'));
  const opts = { model: 'lenet-300-100', quick: true, seed: 5, trainShards: 4, iterations: 251, pruneUntil: 150, referenceIterations: 150 };

  it('a run stopped under 2 threads and resumed under 1 ends as the uninterrupted run', async () => {
    process.env['PRUNUS_RESULTS'] = join(root, 'results');
    const whole = join(root, 'whole');
    const report = await search({ ...opts, trainThreads: 2, out: whole });
    const cfg = JSON.parse(readFileSync(join(whole, 'config.json'), 'utf8'));
    expect(cfg.options).toMatchObject({ trainShards: 4, trainThreads: 2 });
    const parted = join(root, 'parted');
    const stop = new AbortController();
    await expect(search({ ...opts, trainThreads: 2, out: parted }, { stop: stop.signal, onCheckpoint: (it, phase) => phase === 'pruning' && it >= 100 && stop.abort('SIGTERM') })).rejects.toBeInstanceOf(StoppedError);
    const resumed = await resume(parted, { trainThreads: 1 });
    expect(resumed.compression).toBe(report.compression);
    expect(resumed.testAccuracy).toBe(report.testAccuracy);
    expect(resumed.validationAccuracy).toBe(report.validationAccuracy);
    for (const f of ['weights.bin', 'masks.bin']) expect(readFileSync(join(parted, 'model', f)).equals(readFileSync(join(whole, 'model', f)))).toBe(true);
  }, 300_000);
});

describe('prunus train --train-shards', () => {
  it('writes the same model for 1 and 2 threads, records both, and rejects a bad shard count with exit 2', async () => {
    const root = mkdtempSync(join(tmpdir(), 'prunus-shards-cli-'));
    const run = (threads: number) =>
      runCli(['train', '--model', 'lenet-5', '--iterations', '12', '--train-shards', '4', '--train-threads', String(threads), '--backend', 'wasm', '--out', join(root, `t${threads}`), '--json'], { cwd: repoRoot });
    const [a, b] = [await run(1), await run(2)];
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ trainShards: 4, trainThreads: 1 });
    expect(JSON.parse(b.stdout)).toMatchObject({ trainShards: 4, trainThreads: 2 });
    expect(readFileSync(join(root, 't1', 'model', 'weights.bin')).equals(readFileSync(join(root, 't2', 'model', 'weights.bin')))).toBe(true);
    const bad = await runCli(['train', '--model', 'lenet-5', '--train-shards', '0', '--out', join(root, 'bad')], { cwd: repoRoot });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--train-shards/);
    expect(existsSync(join(root, 'bad'))).toBe(false);
  }, 120_000);
});
