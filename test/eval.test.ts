/**
 * Evaluators: sparse/dense agreement, pool determinism, crash recovery, early exit, cache, tensor leaks,
 * clean shutdown. Small subsets of MNIST; the pool runs the compiled worker (dist/), rebuilt here when stale.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, subset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { magnitudeStats } from '../models/masks.js';
import type { LayerMasks } from '../models/params.js';
import { lenet5 } from '../models/architectures.js';
import { layerStats } from '../models/walk.js';
import { type Architecture } from '../models/graph.js';
import { initBackend } from '../backends/backend.js';
import { loadReleasedModel, type ReleasedModel } from '../models/caffe/released.js';
import {
  createInProcessEvaluator,
  createPoolEvaluator,
  evaluateMasks,
  choosePaths,
  pathsFor,
  buildMasks,
  cratesKey,
  hashMasks,
  registerMaskBuilder,
  crossoverDensity,
  SPARSE_CROSSOVER,
  type Candidate,
  type Evaluation,
  type EvaluationContext,
  type PoolEvaluatorHandle,
} from '../evaluators/index.js';
import { prepareContext } from '../evaluators/builders.js';
import { crashCandidate } from '../evaluators/testing.js';
import { UsageError } from '../foundation/errors.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = resolve(repoRoot, '../shared/fixtures/olmp-released');

/** Rebuilds dist/ when a source the worker loads is newer than its compiled file. */
function ensureCompiled(): void {
  const stale = (): string[] => {
    const out: string[] = [];
    for (const dir of ['evaluators', 'models', 'models/ops', 'models/tfjs', 'foundation', 'foundation/data', 'backends', 'backends/kernels']) {
      for (const f of readdirSync(join(repoRoot, dir))) {
        if (!f.endsWith('.ts')) continue;
        const js = join(repoRoot, 'dist', dir, f.replace(/\.ts$/, '.js'));
        if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(repoRoot, dir, f)).mtimeMs) out.push(join(dir, f));
      }
    }
    return out;
  };
  if (stale().length === 0) return;
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'pipe' });
  } catch {
    // Type errors elsewhere in the tree still emit; what matters is the check below.
  }
  expect(stale()).toEqual([]);
}

const crates = (...c: (number | null)[]): Candidate => ({ kind: 'crates', crates: c });
/** The fields that must not depend on worker count, order or path. */
const core = (e: Evaluation) => [e.correct, e.evaluated, e.count, e.nonZero, e.macs, e.feasible, e.earlyExit, e.violation];

let data: { validation: ImageSet; test: ImageSet };
let ref300: ReleasedModel;
let ctx300: EvaluationContext;
let randomCands: Candidate[];

beforeAll(async () => {
  ensureCompiled();
  await initBackend('wasm');
  const ds = loadDataset('mnist', { limit: { validation: 2000 } });
  data = { validation: ds.validation, test: ds.test };
  ref300 = loadReleasedModel(fixtures, 'lenet300100-reference');
  ctx300 = { arch: ref300.arch, params: ref300.params, masks: ref300.masks, stats: ref300.params.layers.map((l) => magnitudeStats(l)), data: data.validation };
  const rng = new Rng('eval-test');
  randomCands = Array.from({ length: 8 }, () => crates(...[0, 1, 2].map(() => (rng.uniform() < 0.2 ? null : 0.3 + 2.2 * rng.uniform()))));
});

describe('sparse and dense paths', () => {
  for (const [folder, wantCorrect] of [
    ['lenet300100-compressed', 9782],
    ['lenet5-compressed', 9909],
  ] as const) {
    it(`${folder}: verified test accuracy, identical predictions on every path incl. the near-ties`, () => {
      const m = loadReleasedModel(fixtures, folder);
      const full: EvaluationContext = { arch: m.arch, params: m.params, masks: m.masks, stats: [], data: data.test };
      const n = data.test.count;
      const margins = new Float64Array(n);
      const r = evaluateMasks(full, m.masks, { path: 'sparse', batchSize: 1000, margins });
      expect(r.correct).toBe(wantCorrect);
      expect(r.nonZero).toBe(m.verified.nonzeroTotal);
      // The images closest to a tie plus a spread of others.
      const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => margins[a]! - margins[b]!);
      const near = order.slice(0, 30);
      if (folder === 'lenet5-compressed') expect(margins[near[0]!]!).toBeLessThan(0.001); // the README's closest tie
      else expect(margins[near[5]!]!).toBeLessThan(0.01);
      const pick = [...new Set([...near, ...Array.from({ length: n / 25 }, (_, i) => i * 25)])];
      const sub: EvaluationContext = { ...full, data: subset(data.test, pick) };
      const nl = m.params.layers.length;
      const mixedA = Array.from({ length: nl }, (_, k) => (k % 2 === 0 ? 'sparse' : 'dense') as const);
      const mixedB = Array.from({ length: nl }, (_, k) => (k % 2 === 0 ? 'dense' : 'sparse') as const);
      const margs: Float64Array[] = [];
      const preds = (['sparse', 'dense', mixedA, mixedB] as const).map((path) => {
        const p = new Int32Array(pick.length);
        const mg = new Float64Array(pick.length);
        const e = evaluateMasks(sub, m.masks, { path, batchSize: 200, predictions: p, margins: mg });
        expect(e.evaluated).toBe(pick.length);
        margs.push(mg);
        return p;
      });
      for (let i = 1; i < preds.length; i++) {
        expect([...preds[i]!]).toEqual([...preds[0]!]);
        for (let j = 0; j < pick.length; j++) expect(Math.abs(margs[i]![j]! - margs[0]![j]!)).toBeLessThan(1e-4);
      }
    });
  }

  it('sparse, dense and mixed paths agree on random sparse masks with live biases (liveness is exact)', () => {
    const rng = new Rng('paths-random');
    const imgs = subset(data.validation, Array.from({ length: 300 }, (_, i) => i));
    for (const model of ['lenet-300-100', 'lenet-5'] as const) {
      const m = loadReleasedModel(fixtures, model === 'lenet-5' ? 'lenet5-reference' : 'lenet300100-reference');
      // Biases large enough to matter, and masks that leave some units with a bias but no incoming weights,
      // some with weights but no reader, and whole layers nearly empty.
      const params = {
        layers: m.params.layers.map((l, k) => ({ weight: l.weight, bias: k === m.params.layers.length - 1 ? l.bias : l.bias.map(() => (rng.uniform() - 0.3) * 0.2) })),
        batchNorms: [],
      };
      const masks = m.masks.map((mk, k) => {
        const density = [0.1, 0.2, 0.3, 0.5][k]!;
        const nOut = mk.bias.length;
        const deadIn = rng.int(nOut);
        const weight = mk.weight.map((_, i) => (i % nOut !== deadIn && rng.uniform() < density ? 1 : 0));
        const bias = mk.bias.map((_, o) => (o === deadIn || rng.uniform() < 0.5 ? 1 : 0));
        return { weight, bias };
      });
      const ctx: EvaluationContext = { arch: m.arch, params, masks, stats: [], data: imgs };
      const nl = masks.length;
      const paths = ['sparse', 'dense', Array.from({ length: nl }, (_, k) => (k % 2 ? 'dense' : 'sparse') as const), Array.from({ length: nl }, (_, k) => (k % 2 ? 'sparse' : 'dense') as const)] as const;
      const run = (path: (typeof paths)[number], columns: boolean) => {
        const p = new Int32Array(imgs.count);
        const mg = new Float64Array(imgs.count);
        const r = evaluateMasks(ctx, masks, { path, batchSize: 128, predictions: p, margins: mg, columns });
        return { p, mg, correct: r.correct, columnSegments: r.columnSegments };
      };
      const out = paths.map((path) => run(path, true));
      // The fully-connected JS segments (LeNet-300-100 sparse, the mixed patterns' ip layers) ran batched, and
      // give what the per-image kernels give, bit for bit.
      for (const k of [0, 2, 3]) {
        if (model === 'lenet-300-100' || k !== 0) expect(out[k]!.columnSegments).toBeGreaterThan(0);
        const one = run(paths[k]!, false);
        expect(one.columnSegments).toBe(0);
        expect([...out[k]!.p]).toEqual([...one.p]);
        expect([...out[k]!.mg]).toEqual([...one.mg]);
      }
      for (let i = 1; i < out.length; i++) {
        expect([...out[i]!.p]).toEqual([...out[0]!.p]);
        for (let j = 0; j < imgs.count; j++) expect(Math.abs(out[i]!.mg[j]! - out[0]!.mg[j]!)).toBeLessThan(1e-4 * (1 + Math.abs(out[0]!.mg[j]!)));
      }
      // Not a degenerate network: predictions vary.
      expect(new Set(out[0]!.p).size).toBeGreaterThan(1);
    }
  });

  it('auto picks the sparse path below the crossover density and dense above it; small layers follow', () => {
    const withDensity = (arch: Architecture, densities: number[]) =>
      layerStats(arch).map((st, k) => {
        const w = new Uint8Array(st.weights);
        for (let i = 0; i < Math.round(densities[k]! * w.length); i++) w[i] = 1;
        return { weight: w, bias: new Uint8Array(st.biases) };
      });
    const l5 = lenet5();
    const m5 = withDensity(l5, [0.5 * crossoverDensity('conv2d'), 2 * crossoverDensity('conv2d'), 0.5 * crossoverDensity('dense'), 1]);
    // ip2 (5,000 MACs) follows ip1 whatever its density.
    expect(choosePaths(l5, m5, 'auto')).toEqual(['sparse', 'dense', 'sparse', 'sparse']);
    const m5b = withDensity(l5, [1, 0.001, 2 * crossoverDensity('dense'), 0.001]);
    expect(choosePaths(l5, m5b, 'auto')).toEqual(['dense', 'sparse', 'dense', 'dense']);
    expect(choosePaths(l5, m5, 'sparse')).toEqual(['sparse', 'sparse', 'sparse', 'sparse']);
    expect(choosePaths(l5, m5, ['dense', 'sparse', 'dense', 'sparse'])).toEqual(['dense', 'sparse', 'dense', 'sparse']);
    // A sparse input (MNIST: ~19% non-zero pixels) raises the crossover of the layer that reads it.
    const arch = ref300.arch;
    const five = withDensity(arch, [2.5 * crossoverDensity('dense'), 1, 1]);
    expect(choosePaths(arch, five, 'auto', undefined, 1)).toEqual(['dense', 'dense', 'dense']);
    expect(choosePaths(arch, five, 'auto', undefined, 0.2)).toEqual(['sparse', 'sparse', 'sparse']);
    expect(pathsFor(ctx300, five, 'auto')).toEqual(['sparse', 'sparse', 'sparse']);
    expect(pathsFor(ctx300, five, 'dense')).toEqual(['dense', 'dense', 'dense']);
    expect(crossoverDensity('dense', 0.2)).toBeCloseTo(5 * crossoverDensity('dense'), 12);
    expect(crossoverDensity('conv2d', 0.25)).toBeCloseTo(Math.pow(4, SPARSE_CROSSOVER.conv2d.exponent) * crossoverDensity('conv2d'), 12);
  });

  it('an all-pruned layer gives constant logits: every image gets the class of the largest ip3 bias', () => {
    const masks = buildMasks(ctx300, crates(null, 1e6, null));
    expect([...masks[1]!.weight].every((v) => v === 0) && [...masks[1]!.bias].every((v) => v === 0)).toBe(true);
    for (const path of ['sparse', 'dense'] as const) {
      const preds = new Int32Array(data.validation.count);
      const r = evaluateMasks(ctx300, masks, { path, batchSize: 1000, predictions: preds });
      // ip3's bias is all that reaches the logits; argmax of the bias.
      const b = ref300.params.layers[2]!.bias;
      const best = [...b].indexOf(Math.max(...b));
      expect(preds.every((p) => p === best)).toBe(true);
      expect(r.correct).toBe([...data.validation.labels].filter((l) => l === best).length);
    }
  });
});

describe('batched column kernels (fully-connected JS segments)', () => {
  /** Seeded random masks: each weight and bias kept with probability `density`. */
  const randomMasks300 = (density: number, seed: string): LayerMasks[] => {
    const rng = new Rng(seed);
    return ref300.masks.map((m) => ({ weight: m.weight.map(() => (rng.uniform() < density ? 1 : 0)), bias: m.bias.map(() => (rng.uniform() < density ? 1 : 0)) }));
  };
  const cases = (): [string, EvaluationContext, LayerMasks[]][] => {
    const comp = loadReleasedModel(fixtures, 'lenet300100-compressed');
    const withMasks = (masks: LayerMasks[]): EvaluationContext => ({ ...ctx300, masks });
    return [
      ['100%', withMasks(ref300.masks.map((m) => ({ weight: m.weight.map(() => 1), bias: m.bias.map(() => 1) }))), []],
      ['10%', withMasks(randomMasks300(0.1, 'cols-10')), []],
      ['1%', withMasks(randomMasks300(0.01, 'cols-1')), []],
      ['released compressed', { ...ctx300, params: comp.params, masks: comp.masks }, []],
    ].map(([name, ctx]) => [name as string, ctx as EvaluationContext, (ctx as EvaluationContext).masks]);
  };

  it('LeNet-300-100 at 100%, 10%, 1% and the released model: identical to the per-image kernels and to the dense path', () => {
    const n = data.validation.count; // 2000: none of the batch sizes below divides it
    for (const [name, ctx, masks] of cases()) {
      const run = (path: 'sparse' | 'dense', batchSize: number, columns: boolean) => {
        const predictions = new Int32Array(n);
        const margins = new Float64Array(n);
        const r = evaluateMasks(ctx, masks, { path, batchSize, predictions, margins, columns });
        expect(r.evaluated).toBe(n);
        return { r, predictions, margins };
      };
      const one = run('sparse', 1000, false);
      expect(one.r.columnSegments).toBe(0);
      const dense = run('dense', 1000, true);
      for (const batch of [1000, 333, 7, 4096]) {
        const col = run('sparse', batch, true);
        expect(col.r.columnSegments, name).toBe(1);
        expect(col.r.correct, `${name} batch ${batch}`).toBe(one.r.correct);
        expect([...col.predictions]).toEqual([...one.predictions]);
        for (let j = 0; j < n; j++) expect(Math.abs(col.margins[j]! - one.margins[j]!)).toBeLessThanOrEqual(1e-12);
      }
      // float32 (dense) against float64 (sparse): no near-tie decides differently on these images.
      expect([...dense.predictions]).toEqual([...one.predictions]);
      expect(dense.r.correct).toBe(one.r.correct);
      expect(new Set(one.predictions).size, name).toBeGreaterThan(1);
    }
  });

  it('the wasm gather kernel gives the JS column kernels\' margins bit for bit (100%, 10%, 1%, released; odd batches)', () => {
    const n = data.validation.count;
    const bits = (a: Float64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
    for (const [name, ctx, masks] of cases()) {
      for (const batch of [1000, 333, 7, 1]) {
        const out = (['wasm', 'js'] as const).map((columnKernels) => {
          const predictions = new Int32Array(n);
          const margins = new Float64Array(n);
          const r = evaluateMasks(ctx, masks, { path: 'sparse', batchSize: batch, predictions, margins, columns: true, columnKernels });
          return { r, predictions: [...predictions], margins: bits(margins) };
        });
        const tag = `${name} batch ${batch}`;
        expect(out[0]!.r.columnSegments, tag).toBe(1);
        expect(out[0]!.r.correct, tag).toBe(out[1]!.r.correct);
        expect(out[0]!.predictions, tag).toEqual(out[1]!.predictions);
        expect(out[0]!.margins === out[1]!.margins, tag).toBe(true);
      }
    }
  });

  it('the released compressed model keeps its count on the validation images, batched or not', () => {
    const comp = loadReleasedModel(fixtures, 'lenet300100-compressed');
    const ctx: EvaluationContext = { ...ctx300, params: comp.params, masks: comp.masks };
    const counts = [true, false].map((columns) => evaluateMasks(ctx, comp.masks, { path: 'auto', batchSize: 1000, columns }));
    expect(counts[0]!.paths).toEqual(['sparse', 'sparse', 'sparse']);
    expect(counts[0]!.columnSegments).toBe(1);
    expect(counts[0]!.correct).toBe(counts[1]!.correct);
    expect(counts[0]!.correct).toBe(evaluateMasks(ctx, comp.masks, { path: 'dense', batchSize: 1000 }).correct);
  });

  it('early exit after the same batch with the same counts as the per-image kernels', () => {
    const masks = randomMasks300(0.01, 'cols-exit');
    const full = evaluateMasks(ctx300, masks, { path: 'sparse', batchSize: 300 });
    expect(full.earlyExit).toBe(false);
    for (const minCorrect of [full.correct, full.correct + 1, full.correct + 500, data.validation.count]) {
      const a = evaluateMasks(ctx300, masks, { path: 'sparse', batchSize: 300, minCorrect, columns: true });
      const b = evaluateMasks(ctx300, masks, { path: 'sparse', batchSize: 300, minCorrect, columns: false });
      expect(a.columnSegments).toBe(1);
      expect([a.correct, a.evaluated, a.earlyExit]).toEqual([b.correct, b.evaluated, b.earlyExit]);
      expect(a.earlyExit).toBe(minCorrect > full.correct && a.evaluated < data.validation.count);
    }
    expect(evaluateMasks(ctx300, masks, { path: 'sparse', batchSize: 300, minCorrect: full.correct + 500 }).earlyExit).toBe(true);
  });

  it('all-pruned layers and dead units: the per-image results, bit for bit', () => {
    const base = randomMasks300(0.05, 'cols-dead');
    const none = (m: LayerMasks): LayerMasks => ({ weight: new Uint8Array(m.weight.length), bias: new Uint8Array(m.bias.length) });
    const variants: LayerMasks[][] = [
      [none(base[0]!), base[1]!, base[2]!], // ip1 pruned: ip2 sees only its biases
      [base[0]!, none(base[1]!), base[2]!], // ip2 pruned: ip3's bias decides
      [base[0]!, base[1]!, { weight: base[2]!.weight, bias: new Uint8Array(10) }], // ip3 without bias
      // ip1 with biases only on even units and ip2 reading only odd ones (dead rows on both sides).
      [
        { weight: base[0]!.weight, bias: base[0]!.bias.map((_, o) => (o % 2 === 0 ? 1 : 0)) },
        { weight: base[1]!.weight.map((v, i) => (Math.floor(i / 100) % 2 === 1 ? v : 0)), bias: base[1]!.bias },
        base[2]!,
      ],
    ];
    const n = data.validation.count;
    for (const masks of variants) {
      const out = [true, false].map((columns) => {
        const predictions = new Int32Array(n);
        const margins = new Float64Array(n);
        const r = evaluateMasks(ctx300, masks, { path: 'sparse', batchSize: 999, predictions, margins, columns });
        return { r, predictions, margins };
      });
      expect(out[0]!.r.columnSegments).toBe(1);
      expect(out[0]!.r.correct).toBe(out[1]!.r.correct);
      expect([...out[0]!.predictions]).toEqual([...out[1]!.predictions]);
      expect([...out[0]!.margins]).toEqual([...out[1]!.margins]);
      const dense = new Int32Array(n);
      evaluateMasks(ctx300, masks, { path: 'dense', batchSize: 1000, predictions: dense });
      expect([...dense]).toEqual([...out[0]!.predictions]);
    }
  });
});

describe('pool evaluator', () => {
  let pool1: PoolEvaluatorHandle;
  let pool2: PoolEvaluatorHandle;
  let reference: Evaluation[];
  beforeAll(async () => {
    [pool1, pool2] = await Promise.all([createPoolEvaluator({ workers: 1, cache: false }), createPoolEvaluator({ workers: 2, cache: false })]);
    const ip = await createInProcessEvaluator({ backend: 'wasm', cache: false });
    await ip.setContext(ctx300);
    reference = await ip.evaluate(randomCands, { minCorrect: 1900 });
    await ip.close();
    await Promise.all([pool1.setContext(ctx300), pool2.setContext(ctx300)]);
  });
  afterAll(async () => {
    await Promise.all([pool1?.close(), pool2?.close()]);
  });

  it('gives the in-process results with 1 and 2 workers, in candidate order, for any order', async () => {
    expect(pool1.backend.name).toBe('wasm');
    expect(pool2.workers).toBe(2);
    // The floor must matter for some candidates and not for others.
    expect(reference.some((e) => e.feasible)).toBe(true);
    expect(reference.some((e) => !e.feasible)).toBe(true);
    for (const pool of [pool1, pool2]) {
      const r = await pool.evaluate(randomCands, { minCorrect: 1900 });
      expect(r.map(core)).toEqual(reference.map(core));
      const perm = new Rng('order').permutation(randomCands.length);
      const shuffled = await pool.evaluate([...perm].map((i) => randomCands[i]!), { minCorrect: 1900 });
      expect(shuffled.map(core)).toEqual([...perm].map((i) => core(reference[i]!)));
    }
  });

  it('retries a task whose worker exited or threw, and names the candidate when it fails twice', async () => {
    const target = randomCands[0]! as { crates: (number | null)[] };
    const retries0 = pool2.retries;
    for (const mode of ['exit', 'throw'] as const) {
      const once = crashCandidate(target.crates, 1, mode);
      const [r] = await pool2.evaluate([once as unknown as Candidate], { minCorrect: 1900 });
      expect(core(r!)).toEqual(core(reference[0]!));
      expect(Atomics.load(once.counter, 0)).toBe(2);
    }
    expect(pool2.retries).toBe(retries0 + 2);
    const always = crashCandidate(target.crates, 2, 'exit');
    await expect(pool2.evaluate([randomCands[1]!, always as unknown as Candidate])).rejects.toThrow(/candidate 1 .*test-crash.*failed twice/);
    // The pool still works, with replaced workers.
    const after = await pool2.evaluate(randomCands, { minCorrect: 1900 });
    expect(after.map(core)).toEqual(reference.map(core));
  });

  it('runs kinds whose builder exists only in the calling thread by shipping their masks', async () => {
    const masks = buildMasks(ctx300, randomCands[2]!);
    registerMaskBuilder<{ kind: 'test-explicit'; masks: LayerMasks[] }>({ kind: 'test-explicit', build: (_ctx, c) => c.masks });
    const [r] = await pool2.evaluate([{ kind: 'test-explicit', masks } as unknown as Candidate], { minCorrect: 1900 });
    expect(core(r!)).toEqual(core(reference[2]!));
  });

  it("the built-in 'masks' kind scores given masks like the crates that built them; malformed masks are refused", async () => {
    const masks = buildMasks(ctx300, randomCands[3]!);
    const [r] = await pool2.evaluate([{ kind: 'masks', masks }], { minCorrect: 1900 });
    expect(core(r!)).toEqual(core(reference[3]!));
    const short = masks.map((m, k) => (k === 1 ? { weight: m.weight.subarray(1), bias: m.bias } : m));
    await expect(pool2.evaluate([{ kind: 'masks', masks: short }])).rejects.toThrow(/candidate 0: masks candidate: ip2 needs Uint8Array masks/);
    await expect(pool2.evaluate([{ kind: 'masks', masks: masks.slice(1) }])).rejects.toThrow(/2 mask layers for 3 prunable layers/);
  });

  it('rejects bad candidates with a UsageError before running anything', async () => {
    await expect(pool2.evaluate([crates(1, 2)])).rejects.toThrow(UsageError);
    await expect(pool2.evaluate([crates(1, 2, NaN)])).rejects.toThrow(/candidate 0: .*not a finite number/);
    await expect(pool2.evaluate([{ kind: 'nope' } as unknown as Candidate])).rejects.toThrow(/unknown candidate kind 'nope'/);
  });

  it('uses a new context after setContext (workers receive the new version)', async () => {
    const ctx2 = { ...ctx300, data: subset(data.validation, Array.from({ length: 500 }, (_, i) => i)) };
    await pool2.setContext(ctx2);
    const ip = await createInProcessEvaluator({ cache: false });
    await ip.setContext(ctx2);
    const want = await ip.evaluate(randomCands.slice(0, 4));
    const got = await pool2.evaluate(randomCands.slice(0, 4));
    expect(got.map(core)).toEqual(want.map(core));
    expect(got[0]!.count).toBe(500);
    await pool2.setContext(ctx300);
  });
});

describe('early exit', () => {
  it('never marks a feasible candidate infeasible and gives the full evaluation’s verdict', async () => {
    const ev = await createInProcessEvaluator({ cache: false, batchSize: 250 });
    await ev.setContext(ctx300);
    const rng = new Rng('early');
    const cands = Array.from({ length: 12 }, () => crates(...[0, 1, 2].map(() => 0.5 + 2.5 * rng.uniform())));
    const full = await ev.evaluate(cands);
    let exits = 0;
    for (const e of full) {
      for (const floor of [e.correct - 1, e.correct, e.correct + 1, 1500, 1800, 1950]) {
        const [r] = await ev.evaluate([cands[full.indexOf(e)]!], { minCorrect: floor });
        expect(r!.feasible).toBe(e.correct >= floor);
        if (r!.earlyExit) {
          exits++;
          expect(r!.feasible).toBe(false);
          expect(r!.evaluated).toBeLessThan(r!.count);
          expect(r!.evaluated % 250).toBe(0);
          expect(r!.correct + (r!.count - r!.evaluated)).toBeLessThan(floor);
          expect(r!.violation).toBeCloseTo((floor - (r!.correct + r!.count - r!.evaluated)) / r!.count, 12);
        } else {
          expect(r!.correct).toBe(e.correct);
          expect(r!.evaluated).toBe(r!.count);
          expect(r!.violation).toBeCloseTo(r!.feasible ? 0 : (floor - e.correct) / e.count, 12);
        }
        expect(r!.violation > 0).toBe(!r!.feasible);
      }
    }
    expect(exits).toBeGreaterThan(5);
    await ev.close();
  });

  it('at the boundary: a floor reachable only if every remaining image is right is not cut short', async () => {
    // Batches of one image: the check runs after every image, so the exact boundary is exercised.
    const small = { ...ctx300, data: subset(data.validation, Array.from({ length: 300 }, (_, i) => i)) };
    const ev = await createInProcessEvaluator({ cache: false, batchSize: 1 });
    await ev.setContext(small);
    const rng = new Rng('boundary');
    for (let i = 0; i < 4; i++) {
      const c = crates(...[0, 1, 2].map(() => 1 + 1.5 * rng.uniform()));
      const [full] = await ev.evaluate([c]);
      expect(full!.correct).toBeLessThan(300);
      const [exact] = await ev.evaluate([c], { minCorrect: full!.correct });
      expect(exact!.feasible).toBe(true);
      expect(exact!.earlyExit).toBe(false);
      const [above] = await ev.evaluate([c], { minCorrect: full!.correct + 1 });
      expect(above!.feasible).toBe(false);
      expect(above!.correct + (above!.count - above!.evaluated)).toBe(full!.correct);
    }
    await ev.close();
  });
});

describe('cache', () => {
  it('returns identical masks from the cache, within and across calls, and only conclusive early exits', async () => {
    const ev = await createInProcessEvaluator({});
    await ev.setContext(ctx300);
    const a = crates(1.2, null, 0.7);
    const aSame = crates(1.2, 0, 0.7); // crate 0 = null: same masks
    const [r1, r2, r3] = await ev.evaluate([a, aSame, crates(1.3, null, 0.7)]);
    expect(r1!.cacheHit).toBe(false);
    expect(r2!.cacheHit).toBe(true);
    expect(core(r2!)).toEqual(core(r1!));
    expect(r3!.cacheHit).toBe(false);
    const [again] = await ev.evaluate([a]);
    expect(again!.cacheHit).toBe(true);
    expect(core(again!)).toEqual(core(r1!));
    // An early exit answers only floors it is conclusive for.
    const b = crates(2.6, 2.4, 2.2);
    const [low] = await ev.evaluate([b], { minCorrect: 1999 });
    expect(low!.earlyExit).toBe(true);
    const [low2] = await ev.evaluate([b], { minCorrect: 1999 });
    expect(low2!.cacheHit).toBe(true);
    const [fullB] = await ev.evaluate([b]);
    expect(fullB!.cacheHit).toBe(false);
    expect(fullB!.evaluated).toBe(2000);
    const [floorB] = await ev.evaluate([b], { minCorrect: 1999 });
    expect(floorB!.cacheHit).toBe(true);
    expect(floorB!.feasible).toBe(false);
    // A new context starts an empty cache.
    await ev.setContext(ctx300);
    const [fresh] = await ev.evaluate([a]);
    expect(fresh!.cacheHit).toBe(false);
    await ev.close();
  });

  it('crates keys are exact: equal keys iff equal masks', () => {
    const prep = prepareContext(ctx300, 1);
    const rng = new Rng('keys');
    // Crates on a coarse grid, so that distinct crates often give equal masks.
    const grid = [null, 0, 0.5, 0.5000001, 1, 1.0000001, 3, 20, 30];
    const cands = Array.from({ length: 40 }, () => [0, 1, 2].map(() => grid[rng.int(grid.length)]!));
    const keys = cands.map((c) => cratesKey(prep, c));
    const hashes = cands.map((c) => hashMasks(buildMasks(ctx300, crates(...c))));
    let equalPairs = 0;
    for (let i = 0; i < cands.length; i++) {
      for (let j = i + 1; j < cands.length; j++) {
        expect(keys[i] === keys[j]).toBe(hashes[i] === hashes[j]);
        if (keys[i] === keys[j] && JSON.stringify(cands[i]) !== JSON.stringify(cands[j])) equalPairs++;
      }
    }
    expect(equalPairs).toBeGreaterThan(0);
    // Exactly at the thresholds: with mu 0, sigma 1 and crate 10, 0.9T = 9 and 1.1T = 11 exactly.
    const weight = ctx300.params.layers[0]!.weight.slice();
    const prevW = ctx300.masks[0]!.weight.slice();
    weight[0] = 9; // on, pruned at crate 10 (|v| <= 9) but not at 10 - 1e-9
    weight[1] = -11; // off, stays off at crate 10 (|v| > 11 is false) but returns at 10 - 1e-9
    prevW[1] = 0;
    const edge: EvaluationContext = {
      ...ctx300,
      params: { layers: [{ weight, bias: ctx300.params.layers[0]!.bias }, ...ctx300.params.layers.slice(1)], batchNorms: [] },
      masks: [{ weight: prevW, bias: ctx300.masks[0]!.bias }, ...ctx300.masks.slice(1)],
      stats: [{ mu: 0, sigma: 1 }, ...ctx300.stats.slice(1)],
    };
    const ep = prepareContext(edge, 1);
    const variants = [10, 10 - 1e-9, 10 + 1e-9, 9.0909090909, 10 / 1.1];
    for (const a of variants) {
      for (const b of variants) {
        const ma = hashMasks(buildMasks(edge, crates(a, null, null)));
        const mb = hashMasks(buildMasks(edge, crates(b, null, null)));
        expect(cratesKey(ep, [a, null, null]) === cratesKey(ep, [b, null, null])).toBe(ma === mb);
      }
    }
    expect(hashMasks(buildMasks(edge, crates(10, null, null)))).not.toBe(hashMasks(buildMasks(edge, crates(10 - 1e-9, null, null))));
  });

  it('hashMasks is FNV-1a 64 over lengths and bytes', () => {
    const masks: LayerMasks[] = [{ weight: Uint8Array.from([1, 0, 1, 1]), bias: Uint8Array.from([0, 1]) }];
    let h = 0xcbf29ce484222325n;
    const eat = (b: number) => {
      h ^= BigInt(b);
      h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
    };
    for (const arr of [masks[0]!.weight, masks[0]!.bias]) {
      for (let s = 0; s < 32; s += 8) eat((arr.length >>> s) & 0xff);
      for (const b of arr) eat(b);
    }
    expect(hashMasks(masks)).toBe(h.toString(16).padStart(16, '0'));
  });
});

describe('resources', () => {
  it('leaks no tensors over 140 evaluations (dense, auto and mixed paths)', async () => {
    const small = { ...ctx300, data: subset(data.validation, Array.from({ length: 200 }, (_, i) => i)) };
    for (const path of ['dense', 'auto'] as const) {
      const ev = await createInProcessEvaluator({ cache: false, path, batchSize: 64 });
      await ev.setContext(small);
      const rng = new Rng(`leak-${path}`);
      await ev.evaluate([crates(1, 1, 1)]);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 50; i++) await ev.evaluate([crates(rng.uniform() * 3, 2 + rng.uniform() * 3, null)], { minCorrect: i % 2 ? 150 : undefined });
      expect(tf.memory().numTensors).toBe(before);
      await ev.close();
    }
    // Mixed segments (tensor ↔ array transfers), with and without early exits.
    const before = tf.memory().numTensors;
    const rng = new Rng('leak-mixed');
    for (let i = 0; i < 40; i++) {
      const masks = buildMasks(small, crates(rng.uniform() * 3, rng.uniform() * 3, null));
      const path = i % 2 ? (['sparse', 'dense', 'sparse'] as const) : (['dense', 'sparse', 'dense'] as const);
      evaluateMasks(small, masks, { path, batchSize: 64, ...(i % 3 === 0 ? { minCorrect: 199 } : {}) });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a process that closes its pool exits by itself', () => {
    const url = (p: string) => pathToFileURL(join(repoRoot, 'dist', p)).href;
    const script = `
      const { createPoolEvaluator } = await import(${JSON.stringify(url('evaluators/index.js'))});
      const { lenet300100 } = await import(${JSON.stringify(url('models/architectures.js'))});
      const { initParams, onesMasks } = await import(${JSON.stringify(url('models/params.js'))});
      const { magnitudeStats } = await import(${JSON.stringify(url('models/masks.js'))});
      const { Rng } = await import(${JSON.stringify(url('foundation/rng.js'))});
      const arch = lenet300100();
      const rng = new Rng(1);
      const params = initParams(arch, rng);
      const images = new Float32Array(300 * 784).map(() => rng.uniform());
      const labels = new Uint8Array(300).map(() => rng.int(10));
      const pool = await createPoolEvaluator({ workers: 2 });
      await pool.setContext({ arch, params, masks: onesMasks(arch), stats: params.layers.map(magnitudeStats), data: { images, labels, count: 300, shape: [28, 28, 1] } });
      const r = await pool.evaluate([{ kind: 'crates', crates: [1, 1, null] }, { kind: 'crates', crates: [2, null, 1] }]);
      await pool.close();
      console.log('done', r.length, r[0].count);
    `;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 90_000 });
    expect(out.stderr).not.toMatch(/Error/);
    expect(out.signal).toBeNull();
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('done 2 300');
  });
});
