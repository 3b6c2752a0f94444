/**
 * The retraining levers of the pipeline: the cosine decay while adjusting, distillation from the reference's logits
 * (trainer), and a last search over all layers that ends pruning; a run with all of them stopped and resumed ends
 * where the uninterrupted run ends.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../backends/backend.js';
import type { Architecture } from '../models/graph.js';
import { initParams, cloneParams, type ModelParams } from '../models/params.js';
import type { ImageSet } from '../foundation/data/datasets.js';
import { Rng } from '../foundation/rng.js';
import { randomSet } from './random-data.js';
import { Trainer } from '../src/train/index.js';
import { cosineDecay } from '../src/pipeline/olmp.js';
import { search, resume, resolveConfig } from '../src/pipeline/run.js';
import { searchSchedule } from '../src/pipeline/schedule.js';
import { StoppedError } from '../foundation/errors.js';
import { runCli, repoRoot, lines } from './run-cli.js';

function mlp(): Architecture {
  return {
    name: 'recipe-mlp',
    inputShape: [4, 4, 1],
    numClasses: 3,
    ops: [
      { type: 'flatten' },
      { type: 'dense', name: 'fc1', inUnits: 16, outUnits: 8, activation: 'relu' },
      { type: 'dense', name: 'fc2', inUnits: 8, outUnits: 3, activation: 'linear' },
    ],
    maskGamma: [2e-4, 2e-4],
  };
}


describe('cosine decay', () => {
  it('starts at lr0, halves at the middle, ends at 0 and never rises', () => {
    expect(cosineDecay(0.01, 0, 100)).toBe(0.01);
    expect(cosineDecay(0.01, 50, 100)).toBeCloseTo(0.005, 15);
    expect(cosineDecay(0.01, 100, 100)).toBeCloseTo(0, 15);
    expect(cosineDecay(0.01, 150, 100)).toBeCloseTo(0, 15);
    for (let k = 1; k <= 100; k++) expect(cosineDecay(0.01, k, 100)).toBeLessThanOrEqual(cosineDecay(0.01, k - 1, 100));
  });
});

describe('--search-all-layers', () => {
  it('searches all layers at every search period; without it, only where two or more layers were drawn', () => {
    const base = resolveConfig({ model: 'lenet-300-100', seed: 1, pruneUntil: 15000, searchBudget: 20 });
    const olmp = searchSchedule(base);
    const all = searchSchedule({ ...base, searchAllLayers: true });
    expect(all.map((s) => s.iteration)).toEqual(Array.from({ length: 15 }, (_, i) => i * 1000));
    for (const s of all) expect(s.layers).toEqual([0, 1, 2]);
    expect(olmp.length).toBeLessThan(15); // seed 1 draws two or more layers at only a few multiples of 1,000
    expect(olmp.some((s) => s.layers.length < 3)).toBe(true);
  });
});

describe('trainer: lr override and distillation', () => {
  const arch = mlp();
  let params: ModelParams;
  let train: ImageSet;
  beforeAll(async () => {
    expect((await initBackend('wasm')).name).toBe('wasm');
    const rng = new Rng('recipe');
    params = initParams(arch, rng);
    train = randomSet(rng, 64, [4, 4, 1], 3);
  });

  it('an override of the learning rate is what the step uses (0 leaves the weights as they were)', () => {
    const t = new Trainer(arch, cloneParams(params), train, { solver: { batchSize: 16 }, lrOverride: (i) => (i < 1 ? 0 : undefined) });
    expect(t.lr(0)).toBe(0);
    expect(t.lr(1)).toBeCloseTo(0.01 * (1 + 1e-4) ** -0.75, 15);
    t.step();
    expect(t.getParams().layers[0]!.weight).toEqual(params.layers[0]!.weight);
    t.step();
    expect(t.getParams().layers[0]!.weight).not.toEqual(params.layers[0]!.weight);
    t.dispose();
  });

  it('distilling (α = 1) from a teacher equal to the student: the first step is weight decay alone; α = 0 is plain training', () => {
    const t = new Trainer(arch, cloneParams(params), train, { solver: { batchSize: 16 }, distill: { teacher: params, alpha: 1, temperature: 4 } });
    t.step();
    const lr = 0.01;
    const w0 = params.layers[0]!.weight;
    const w1 = t.getParams().layers[0]!.weight;
    for (let i = 0; i < w0.length; i++) expect(w1[i]!).toBeCloseTo(w0[i]! - lr * 5e-4 * w0[i]!, 7);
    const b1 = t.getParams().layers[0]!.bias;
    const b0 = params.layers[0]!.bias;
    for (let i = 0; i < b0.length; i++) expect(b1[i]!).toBeCloseTo(b0[i]! - lr * 5e-4 * b0[i]!, 7);
    t.dispose();
    // With a different teacher the gradient is not zero.
    const other = initParams(arch, new Rng('other teacher'));
    const u = new Trainer(arch, cloneParams(params), train, { solver: { batchSize: 16 }, distill: { teacher: other, alpha: 1, temperature: 4 } });
    u.step();
    expect(Math.abs(u.getParams().layers[1]!.weight[0]! - (params.layers[1]!.weight[0]! * (1 - lr * 5e-4)))).toBeGreaterThan(1e-6);
    u.dispose();
    const plain = new Trainer(arch, cloneParams(params), train, { solver: { batchSize: 16 } });
    const zero = new Trainer(arch, cloneParams(params), train, { solver: { batchSize: 16 }, distill: { teacher: other, alpha: 0, temperature: 4 } });
    for (let i = 0; i < 3; i++) expect(zero.step().loss).toBe(plain.step().loss);
    expect(zero.getParams()).toEqual(plain.getParams());
    plain.dispose();
    zero.dispose();
  });
});

describe('pipeline: final search, cosine retraining and distillation (quick)', () => {
  const root = mkdtempSync(join(tmpdir(), 'prunus-recipe-'));
  const opts = { model: 'lenet-300-100', quick: true, seed: 7, finalSearch: true, retrainLr: 'cosine' as const, distillAlpha: 0.5 };
  const events = (dir: string) =>
    readFileSync(join(dir, 'events.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => {
        const e = JSON.parse(l);
        delete e.elapsedMs;
        return e;
      });

  it('searches all layers at t = pruneUntil, decays the lr to 0, and a stopped, resumed run ends identically', async () => {
    process.env['PRUNUS_RESULTS'] = join(root, 'results');
    const whole = join(root, 'whole');
    const report = await search({ ...opts, out: whole });
    const ev = events(whole);
    const last = ev.filter((e) => e.type === 'search').at(-1);
    expect(last).toMatchObject({ iteration: 200, layers: ['ip1', 'ip2', 'ip3'] });
    expect(report.compression).toBeCloseTo(last.compression, 6); // masks frozen after the last search
    const logs = ev.filter((e) => e.type === 'log' && e.phase === 'adjusting');
    expect(logs[0].lr).toBeGreaterThan(0.005);
    expect(logs.at(-1).lr).toBeLessThan(0.01 * logs[0].lr);
    const cfg = JSON.parse(readFileSync(join(whole, 'config.json'), 'utf8'));
    expect(cfg.options).toMatchObject({ finalSearch: true, retrainLr: 'cosine', distillAlpha: 0.5 });

    // Stopped in the adjusting phase (after the lr decay has begun), then resumed.
    const parted = join(root, 'parted');
    const stop = new AbortController();
    await expect(
      search({ ...opts, out: parted }, { stop: stop.signal, onCheckpoint: (it, phase) => phase === 'adjusting' && it >= 300 && stop.abort('SIGTERM') }),
    ).rejects.toBeInstanceOf(StoppedError);
    const resumed = await resume(parted);
    expect(resumed.compression).toBe(report.compression);
    expect(resumed.testAccuracy).toBe(report.testAccuracy);
    expect(resumed.validationAccuracy).toBe(report.validationAccuracy);
    expect(events(parted).filter((e) => e.type !== 'phase')).toEqual(ev.filter((e) => e.type !== 'phase'));
  }, 240_000);
});

describe('prunus reproduce --recipe', () => {
  const root = mkdtempSync(join(tmpdir(), 'prunus-recipe-cli-'));
  const env = { ...process.env, PRUNUS_RESULTS: join(root, 'results') };

  it('--recipe prunus sets its levers (explicit flags win), runs, and names itself in the table', async () => {
    const out = join(root, 'run');
    const r = await runCli(['reproduce', 'lenet-300-100', '--recipe', 'prunus', '--retrain-lr', 'inv', '--quick', '--out', out, '--json'], { cwd: repoRoot, env });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.reproduction.at(-1).method).toMatch(/^prunus recipe \(ncs, batch, quick\)$/);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg.options).toMatchObject({ constraint: 'batch', retrainLr: 'inv' });
    const plain = await runCli(['reproduce', 'lenet-300-100', '--recipe', 'prunus', '--quick', '--out', join(root, 'run2'), '--json'], { cwd: repoRoot, env });
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'run2', 'config.json'), 'utf8')).options).toMatchObject({ constraint: 'batch', retrainLr: 'cosine' });
  }, 240_000);

  it('refuses an unknown recipe and --recipe prunus with --as-released in one line, exit 2', async () => {
    for (const args of [
      ['reproduce', 'lenet-300-100', '--recipe', 'best', '--quick'],
      ['reproduce', 'lenet-300-100', '--recipe', 'prunus', '--as-released', '--quick'],
      ['reproduce', 'lenet-300-100', '--retrain-lr', 'step', '--quick'],
      ['reproduce', 'lenet-300-100', '--distill', '2', '--quick'],
    ]) {
      const r = await runCli(args, { cwd: root, env });
      expect(r.code, args.join(' ')).toBe(2);
      expect(lines(r.stderr), args.join(' ')).toHaveLength(1);
    }
  });
});
