/**
 * Evaluator semantics: early exit (never marks a feasible candidate infeasible) and the cache (identical masks, exact crate keys, the masks hash).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { subset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import type { LayerMasks } from '../models/params.js';
import { createInProcessEvaluator, buildMasks, cratesKey, hashMasks, type EvaluationContext } from '../evaluators/index.js';
import { prepareContext } from '../evaluators/builders.js';
import { crates, core, loadEvalFixtures } from './eval-setup.js';

let data: { validation: ImageSet; test: ImageSet };
let ctx300: EvaluationContext;

beforeAll(async () => {
  ({ data, ctx300 } = await loadEvalFixtures());
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
