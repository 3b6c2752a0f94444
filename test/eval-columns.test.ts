/**
 * Batched column kernels of fully-connected JS segments: the per-image kernels' results bit for bit, the wasm gather kernel against the JS column kernels, early exit and dead units.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import type { LayerMasks } from '../models/params.js';
import { loadReleasedModel, type ReleasedModel } from '../models/caffe/released.js';
import { evaluateMasks, type EvaluationContext } from '../evaluators/index.js';
import { fixtures, loadEvalFixtures } from './eval-setup.js';

let data: { validation: ImageSet; test: ImageSet };
let ref300: ReleasedModel;
let ctx300: EvaluationContext;

beforeAll(async () => {
  ({ data, ref300, ctx300 } = await loadEvalFixtures());
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
