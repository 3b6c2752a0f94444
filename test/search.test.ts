import { describe, it, expect } from 'vitest';
import { Rng } from '../foundation/rng.js';
import { UsageError } from '../foundation/errors.js';
import {
  OPTIMIZER_NAMES,
  bhattacharyya,
  clampToBounds,
  compareResults,
  correlations,
  createOptimizer,
  lambdaSigmaAfter,
  normalisedCorrelation,
  normalisedFitness,
  restoreOptimizer,
  runOptimizer,
  scalariseFeasibilityFirst,
  shouldReplace,
  successRuleUpdate,
  type EvalResult,
  type OptimizerName,
  type OptimizerOptions,
  type OptimizerState,
} from '../search/index.js';
import { makeProblem } from '../search/benchmarks.js';
import { median, signTestLess, wilcoxonSignedRankLess } from '../search/stats.js';
import { feasible, infeasible, box, bumpy, drive, baseOpts, starts } from './search-helpers.js';

describe('compareResults', () => {
  it('puts feasible first, then smaller violation, then lower fitness', () => {
    expect(compareResults(feasible(10), infeasible(-10, 0.1))).toBeLessThan(0);
    expect(compareResults(infeasible(-10, 0.1), feasible(10))).toBeGreaterThan(0);
    expect(compareResults(infeasible(5, 0.1), infeasible(-5, 0.2))).toBeLessThan(0);
    expect(compareResults(infeasible(5, 0.2), infeasible(-5, 0.2))).toBeGreaterThan(0);
    expect(compareResults(feasible(1), feasible(2))).toBeLessThan(0);
    expect(compareResults(feasible(2), feasible(2))).toBe(0);
    expect(compareResults(feasible(NaN), feasible(1e300))).toBeGreaterThan(0);
    expect(compareResults(feasible(-Infinity), feasible(0))).toBeLessThan(0);
    const list = [infeasible(0, 3), feasible(2), infeasible(1, 1), feasible(-1), infeasible(-1, 1), feasible(NaN)];
    const sorted = list.slice().sort(compareResults);
    expect(sorted).toEqual([feasible(-1), feasible(2), feasible(NaN), infeasible(-1, 1), infeasible(1, 1), infeasible(0, 3)]);
  });

  it('the NCS scalarisation orders results as compareResults does', () => {
    const rng = new Rng('scal');
    for (let trial = 0; trial < 200; trial++) {
      const rs = Array.from({ length: 8 }, () =>
        rng.uniform() < 0.5 ? feasible(Math.round(rng.normal() * 4)) : infeasible(rng.normal() * 5, Math.round(rng.uniform() * 3) + 0.5),
      );
      const scal = scalariseFeasibilityFirst(rs);
      for (const a of rs) {
        for (const b of rs) {
          const c = compareResults(a, b);
          // Infeasible ties on violation may differ in fitness; the scalar ignores that tie-break.
          if (!a.feasible && !b.feasible && a.violation === b.violation) continue;
          expect(Math.sign(scal(a) - scal(b)) + 0).toBe(Math.sign(c) + 0);
        }
      }
    }
    const all = scalariseFeasibilityFirst([feasible(3), feasible(1)]);
    expect(all(feasible(3))).toBe(3);
    expect(scalariseFeasibilityFirst([infeasible(0, 2)])(infeasible(0, 2))).toBe(2);
  });
});

describe('NCS maths', () => {
  it('Bhattacharyya distance of diagonal Gaussians', () => {
    expect(bhattacharyya([1, 2], [1, 2], [0.5, 3], [0.5, 3])).toBe(0);
    // Equal σ = 1, mean distance 2 in one dimension: (1/8)·4/1 = 0.5.
    expect(bhattacharyya([0], [2], [1], [1])).toBeCloseTo(0.5, 15);
    // σ 1 and 2, same mean: ½ ln(2.5/2).
    expect(bhattacharyya([0], [0], [1], [2])).toBeCloseTo(0.5 * Math.log(1.25), 15);
    // Both terms and two dimensions: c = (2.5, 1).
    const expected = (1 / 8) * (9 / 2.5 + 1 / 1) + 0.5 * (Math.log(2.5 / 2) + Math.log(1));
    expect(bhattacharyya([0, 1], [3, 0], [1, 1], [2, 1])).toBeCloseTo(expected, 14);
    expect(bhattacharyya([0, 1], [3, 0], [1, 1], [2, 1])).toBeCloseTo(bhattacharyya([3, 0], [0, 1], [2, 1], [1, 1]), 15);
  });

  it('correlations take the nearest other process, for parents and offspring', () => {
    const pop = [[0], [1], [5]];
    const trial = [[0.5], [3], [5]];
    const sigma = [[1], [1], [1]];
    const { c, cTrial } = correlations(pop, trial, sigma);
    expect(c).toEqual([1 / 8, 1 / 8, 16 / 8]);
    expect(cTrial).toEqual([0.25 / 8, 4 / 8, 16 / 8]);
  });

  it('normalised fitness and correlation, NaN on 0/0, and the replacement rule', () => {
    expect(normalisedFitness(3, 1, 1)).toBe(0); // offspring is the best so far
    expect(normalisedFitness(1, 3, 1)).toBe(1); // parent is the best so far
    expect(normalisedFitness(2, 4, 1)).toBeCloseTo(0.75, 15);
    expect(normalisedFitness(1, 1, 1)).toBeNaN();
    expect(normalisedCorrelation(1, 3)).toBe(0.75);
    expect(normalisedCorrelation(0, 0)).toBeNaN();
    expect(shouldReplace(1, 0.6, 0.5)).toBe(true);
    expect(shouldReplace(1, 0.5, 0.5)).toBe(false); // strictly greater
    expect(shouldReplace(0.8, 0.6, 0.5)).toBe(false);
    expect(shouldReplace(1, NaN, 0.5)).toBe(false);
    expect(shouldReplace(1, 0.6, NaN)).toBe(false);
    // ncs.py's gate: only negative fitness may replace.
    expect(shouldReplace(1, 0.6, 0.5, { fu: 0.3 })).toBe(false);
    expect(shouldReplace(1, 0.6, 0.5, { fu: -0.3 })).toBe(true);
  });

  it('λ schedule, 1/5 rule and the clamp', () => {
    expect(lambdaSigmaAfter(0, 160)).toBe(0.1);
    expect(lambdaSigmaAfter(80, 160)).toBeCloseTo(0.05, 15);
    expect(lambdaSigmaAfter(160, 160)).toBe(0);
    const sigma = [
      [1, 2],
      [1, 2],
      [1, 2],
    ];
    successRuleUpdate(sigma, [3, 2, 1], 10, 0.99); // rates 0.3, 0.2, 0.1
    expect(sigma).toEqual([
      [1 / 0.99, 2 / 0.99],
      [1, 2],
      [0.99, 2 * 0.99],
    ]);
    expect(clampToBounds([-1, 0.5, 11, 0, 10], box(5, 0, 10))).toEqual([1e-4, 0.5, 10 - 1e-4, 0, 10]);
  });
});

describe('statistics helpers', () => {
  it('Wilcoxon signed-rank (exact) and sign test', () => {
    const allNeg = Array.from({ length: 10 }, (_, i) => -(i + 1));
    expect(wilcoxonSignedRankLess(allNeg).p).toBeCloseTo(1 / 1024, 15);
    // Ranks 1..4, W+ = 4: subsets of {1,2,3,4} with sum ≤ 4 are 7 of 16.
    expect(wilcoxonSignedRankLess([-1, -2, -3, 4]).p).toBeCloseTo(7 / 16, 15);
    expect(wilcoxonSignedRankLess([1, 2, 3]).p).toBe(1);
    expect(wilcoxonSignedRankLess([0, 0]).p).toBe(1);
    // Ties: |d| = 1,1 → ranks 1.5,1.5; W+ = 1.5 → P(W+ ≤ 1.5) = 3/4.
    expect(wilcoxonSignedRankLess([-1, 1]).p).toBeCloseTo(3 / 4, 15);
    expect(signTestLess(allNeg).p).toBeCloseTo(1 / 1024, 15);
    expect(signTestLess([-1, -1, -1, -1, -1, -1, -1, -1, -1, 1]).p).toBeCloseTo(11 / 1024, 15);
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });
});

describe('options', () => {
  const good: OptimizerOptions = { dimension: 2, bounds: box(2, 0, 1), seed: 1, budget: 100 };
  const cases: [string, Partial<OptimizerOptions> | Record<string, unknown>, RegExp][] = [
    ['dimension 0', { dimension: 0 }, /dimension must be an integer >= 1/],
    ['dimension 1.5', { dimension: 1.5 }, /dimension must be an integer >= 1/],
    ['short bounds', { bounds: { lower: [0], upper: [1, 1] } }, /bounds.lower must be an array of 2 numbers/],
    ['lower = upper', { bounds: { lower: [0, 1], upper: [1, 1] } }, /bounds.lower\[1\] \(1\) must be < bounds.upper\[1\] \(1\)/],
    ['lower > upper', { bounds: { lower: [2, 0], upper: [1, 1] } }, /bounds.lower\[0\] \(2\) must be </],
    ['infinite bound', { bounds: { lower: [0, -Infinity], upper: [1, 1] } }, /bounds.lower\[1\] must be a finite number/],
    ['NaN bound', { bounds: { lower: [0, 0], upper: [NaN, 1] } }, /bounds.upper\[0\] must be a finite number/],
    ['budget 0', { budget: 0 }, /budget must be an integer >= 1/],
    ['budget NaN', { budget: NaN }, /budget must be an integer >= 1/],
    ['x0 outside', { x0: [0.5, 2] }, /x0\[1\] = 2 is outside the bounds \[0, 1\]/],
    ['f0 without x0', { f0: feasible(1) }, /f0 needs x0/],
    ['bad f0', { x0: [0.5, 0.5], f0: { fitness: 1 } }, /f0: expected \{fitness/],
    ['sigma0 0', { sigma0: 0 }, /sigma0 must be a finite number > 0/],
    ['sigma0 array', { sigma0: [1, -1] }, /sigma0\[1\] must be a finite number > 0/],
    ['r 1', { r: 1 }, /r must be a number in \(0, 1\)/],
    ['epoch 0', { epoch: 0 }, /epoch must be an integer >= 1/],
    ['seed NaN', { seed: NaN }, /seed must be a finite number or a string/],
  ];
  for (const name of OPTIMIZER_NAMES) {
    it(`${name}: bad options throw one-line UsageErrors`, () => {
      expect(() => createOptimizer(name, good)).not.toThrow();
      for (const [, over, re] of cases) {
        let err: unknown;
        try {
          createOptimizer(name, { ...good, ...over } as OptimizerOptions);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(UsageError);
        expect((err as Error).message).toMatch(re);
        expect((err as Error).message).not.toContain('\n');
      }
    });
  }
  it('optimiser-specific checks', () => {
    expect(() => createOptimizer('nope' as OptimizerName, good)).toThrow(/unknown optimizer 'nope' \(expected one of: ncs, olmp-released, random, one-plus-one, cmaes\)/);
    expect(() => createOptimizer('ncs', { ...good, popSize: 1 })).toThrow(/popSize must be >= 2/);
    expect(() => createOptimizer('one-plus-one', { ...good, popSize: 4 })).toThrow(/popSize must be 1/);
    expect(() => createOptimizer('ncs', { ...good, budget: 19 })).toThrow(/ncs: budget 19 leaves no generation; needs at least 20/);
    expect(() => createOptimizer('ncs', { ...good, budget: 10, x0: [0, 0], f0: feasible(0) })).not.toThrow();
    expect(() => createOptimizer('olmp-released', { ...good, budget: 10 })).toThrow(/needs at least 11/);
    expect(() => createOptimizer('random', { ...good, budget: 1 })).not.toThrow();
    expect(() => restoreOptimizer({ format: 'x' } as unknown as OptimizerState)).toThrow(UsageError);
  });
});

describe('ask/tell protocol, determinism, bounds, budget', () => {
  for (const name of OPTIMIZER_NAMES) {
    it(`${name}: same seed → same candidates; another seed → others`, () => {
      for (const over of starts(name)) {
        const a = drive(createOptimizer(name, baseOpts(name, over)));
        const b = drive(createOptimizer(name, baseOpts(name, over)));
        expect(b).toEqual(a);
        const c = drive(createOptimizer(name, baseOpts(name, { ...over, seed: 8 })));
        expect(c).not.toEqual(a);
      }
    });

    it(`${name}: budget, ids, done(), repeated ask, tell errors`, () => {
      for (const over of starts(name)) {
        const opt = createOptimizer(name, baseOpts(name, over));
        expect(opt.name).toBe(name);
        expect(opt.dimension).toBe(3);
        expect(() => opt.tell([], [])).toThrow(/without a pending ask/);
        const first = opt.ask();
        expect(opt.ask()).toEqual(first); // repeated ask returns the pending generation
        expect(() => opt.tell(first.slice(1), first.slice(1).map((c) => bumpy(c.x)))).toThrow();
        expect(() => opt.tell([{ id: 999, x: first[0]!.x }, ...first.slice(1)], first.map((c) => bumpy(c.x)))).toThrow(/missing candidate id/);
        expect(() => opt.tell(first, first.map(() => ({ fitness: 1 }) as EvalResult))).toThrow(/expected \{fitness/);
        // any order is fine
        const rev = first.slice().reverse();
        opt.tell(
          rev,
          rev.map((c) => bumpy(c.x)),
        );
        const rest = drive(opt);
        const ids = [first, ...rest].flat().map((c) => c.id);
        expect(ids).toEqual(ids.map((_, i) => i));
        expect(opt.done()).toBe(true);
        expect(opt.ask()).toEqual([]);
        expect(opt.evaluations).toBe(ids.length);
        expect(opt.evaluations).toBeLessThanOrEqual(opt.budget);
        expect(opt.generation).toBe(rest.length + 1);
        if (name === 'random' || name === 'one-plus-one') expect(opt.evaluations).toBe(opt.budget);
        else expect(opt.budget - opt.evaluations).toBeLessThan(over.popSize ?? 10);
        // best is the feasibility-first best of everything seen (and f0)
        const seen: EvalResult[] = [first, ...rest].flat().map((c) => bumpy(c.x));
        if (over.f0) seen.push(over.f0);
        if (name === 'olmp-released') {
          // by the released code's penalised fitness (infeasible → 1.1), which bumpy's fitness can exceed
          const pen = (r: EvalResult) => (r.feasible ? r.fitness : 1.1);
          expect(pen(opt.best()!.result)).toBe(Math.min(...seen.map(pen)));
        } else {
          const bestSeen = seen.slice().sort(compareResults)[0]!;
          expect(compareResults(opt.best()!.result, bestSeen)).toBe(0);
        }
        expect(bumpy(opt.best()!.x)).toEqual(opt.best()!.result);
      }
    });

    it(`${name}: candidates stay inside tight bounds, with the ncs.py clamp`, () => {
      const bounds = { lower: [0, -1, 100], upper: [0.01, 1, 100.5] };
      const opt = createOptimizer(name, { dimension: 3, bounds, seed: 3, budget: 200, ...(name === 'random' ? {} : { sigma0: [50, 0.3, 20] }) });
      const asked = drive(opt, (x) => feasible(x[0]! + x[1]! * x[1]! + x[2]!)).flat();
      expect(asked.length).toBeGreaterThan(100);
      let clamped = 0;
      for (const c of asked) {
        c.x.forEach((v, d) => {
          expect(v).toBeGreaterThanOrEqual(bounds.lower[d]!);
          expect(v).toBeLessThanOrEqual(bounds.upper[d]!);
          if (v === bounds.lower[d]! + 1e-4 || v === bounds.upper[d]! - 1e-4) clamped++;
        });
      }
      if (name !== 'random') expect(clamped).toBeGreaterThan(50);
    });

    it(`${name}: restore after any tell (or between ask and tell) continues bit-identically`, () => {
      const pick = new Rng(`resume:${name}`);
      for (const over of starts(name)) {
        const full = drive(createOptimizer(name, baseOpts(name, over)));
        for (let trial = 0; trial < 3; trial++) {
          const k = pick.int(full.length);
          const opt = createOptimizer(name, baseOpts(name, over));
          const before = drive(opt, bumpy, k);
          const midAsk = pick.uniform() < 0.5;
          if (midAsk) opt.ask();
          const json = JSON.stringify(opt.state());
          const restored = restoreOptimizer(JSON.parse(json) as OptimizerState);
          expect(JSON.stringify(restored.state())).toBe(json);
          expect(restored.evaluations).toBe(opt.evaluations);
          expect(restored.generation).toBe(opt.generation);
          const after = drive(restored);
          expect([...before, ...after]).toEqual(full);
          // the original object continues identically too
          expect(drive(opt)).toEqual(after);
          expect(restored.best()).toEqual(opt.best());
          expect(JSON.stringify(restored.state())).toBe(JSON.stringify(opt.state()));
        }
      }
    });
  }

  it('state survives non-finite fitness values', () => {
    const opt = createOptimizer('ncs', { dimension: 2, bounds: box(2, -1, 1), seed: 1, budget: 60 });
    const weird = (x: readonly number[]): EvalResult =>
      x[0]! > 0.5 ? feasible(NaN) : x[0]! < -0.5 ? feasible(Infinity) : infeasible(-Infinity, x[1]! + 2);
    drive(opt, weird, 2);
    const restored = restoreOptimizer(JSON.parse(JSON.stringify(opt.state())) as OptimizerState);
    expect(drive(restored, weird)).toEqual(drive(opt, weird));
  });
});

/**
 * NCS-C written out again, straight from spec §4 (x0 copies, f0 known, fitness all feasible), to check the
 * optimiser's candidates bit for bit, replacements and σ adaptation included.
 */
describe('runOptimizer', () => {
  it('loops ask → evaluate → tell with progress, async evaluators and abort', async () => {
    const p = makeProblem('sphere', 4);
    const infos: { generation: number; evaluations: number; best: number }[] = [];
    const opt = createOptimizer('ncs', { dimension: 4, bounds: p.bounds, seed: 2, budget: 300 });
    const best = await runOptimizer(opt, async (xs) => xs.map((x) => p.evaluate(x)), {
      onGeneration: (i) => {
        infos.push({ generation: i.generation, evaluations: i.evaluations, best: i.best!.result.fitness });
      },
    });
    expect(infos.length).toBe(30);
    expect(infos.map((i) => i.generation)).toEqual(infos.map((_, k) => k + 1));
    expect(infos.at(-1)!.evaluations).toBe(300);
    for (let k = 1; k < infos.length; k++) expect(infos[k]!.best).toBeLessThanOrEqual(infos[k - 1]!.best);
    expect(best!.result.fitness).toBe(infos.at(-1)!.best);

    const ac = new AbortController();
    const stopped = createOptimizer('random', { dimension: 4, bounds: p.bounds, seed: 2, budget: 300 });
    await runOptimizer(stopped, (xs) => xs.map((x) => p.evaluate(x)), {
      onGeneration: (i) => {
        if (i.generation === 3) ac.abort();
      },
      signal: ac.signal,
    });
    expect(stopped.generation).toBe(3);
    expect(stopped.done()).toBe(false);
    await expect(runOptimizer(createOptimizer('random', { dimension: 4, bounds: p.bounds, seed: 2, budget: 30 }), () => [])).rejects.toThrow(/evaluate returned 0 results for 10/);
  });
});
