/**
 * Evaluator forward paths: the sparse, dense and mixed paths agree (the released models' verified counts, near-ties, liveness, path choice, an all-pruned layer).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { subset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { lenet5 } from '../models/architectures.js';
import { layerStats } from '../models/walk.js';
import { type Architecture } from '../models/graph.js';
import { loadReleasedModel, type ReleasedModel } from '../models/caffe/released.js';
import {
  evaluateMasks,
  choosePaths,
  pathsFor,
  buildMasks,
  crossoverDensity,
  SPARSE_CROSSOVER,
  type EvaluationContext,
} from '../evaluators/index.js';
import { crates, fixtures, loadEvalFixtures } from './eval-setup.js';

let data: { validation: ImageSet; test: ImageSet };
let ref300: ReleasedModel;
let ctx300: EvaluationContext;

beforeAll(async () => {
  ({ data, ref300, ctx300 } = await loadEvalFixtures());
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
