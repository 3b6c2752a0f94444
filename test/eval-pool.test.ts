/**
 * The pool evaluator: the in-process results for 1 and 2 workers in any order, crash recovery, mask-shipping kinds, new contexts; no tensor leaks and a clean exit after close. The pool runs the compiled worker (dist/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { subset, type ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import type { LayerMasks } from '../models/params.js';
import {
  createInProcessEvaluator,
  createPoolEvaluator,
  evaluateMasks,
  buildMasks,
  registerMaskBuilder,
  type Candidate,
  type Evaluation,
  type EvaluationContext,
  type PoolEvaluatorHandle,
} from '../evaluators/index.js';
import { crashCandidate } from '../evaluators/testing.js';
import { UsageError } from '../foundation/errors.js';
import { crates, core, repoRoot, loadEvalFixtures } from './eval-setup.js';

let data: { validation: ImageSet; test: ImageSet };
let ctx300: EvaluationContext;
let randomCands: Candidate[];

beforeAll(async () => {
  ({ data, ctx300, randomCands } = await loadEvalFixtures());
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

