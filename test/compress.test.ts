/**
 * `prunus compress`: joint candidates (channel masks ∧ magnitude masks), the joint search (same results with 1 or 2
 * pool workers; the chosen point within the FLOPs budget and at the compression target; points over the budget
 * never run), the method's finetune keeping removed channels at zero, and end to end: the quick LeNet-5 command of
 * the README (its exported LayersModel loads in plain tfjs and predicts as prunus does), a user's residual model,
 * and a run killed with SIGKILL in its OLMP stage that resumes to the uninterrupted run's files.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../backends/backend.js';
import { getArchitecture } from '../models/architectures.js';
import { initParams, onesMasks, sizeReport, type LayerMasks } from '../models/params.js';
import { channelGroups, configCost, denseCost, keptIndices, layerMasksFromChannels, paramMasksFromChannels, type ChannelGroup } from '../models/channels.js';
import { magnitudeStats, masksForCrates } from '../models/masks.js';
import { loadModel } from '../models/io.js';
import { toTensors, forward, disposeModelTensors } from '../models/forward.js';
import { Rng } from '../foundation/rng.js';
import { createInProcessEvaluator, createPoolEvaluator, type Evaluator, type EvaluationContext } from '../evaluators/index.js';
import { jointMasks, conjunction } from '../src/compress/candidate.js';
import { searchJoint, jointResult, paretoFront, type JointSettings } from '../src/compress/search.js';
import { loadChannelData } from '../src/channels/data.js';
import { defaultChannelsConfig } from '../src/channels/config.js';
import { createMethod } from '../src/channels/methods.js';
import { l1Scores } from '../src/channels/scorers.js';
import { spawn } from 'node:child_process';
import { bin, runCli, type CliResult } from './run-cli.js';
import { buildResidualCnn, trainBriefly, saveUserModel, loadWithTfjs, predictClasses, SCALE_255 } from './tfjs-fixtures.js';
import type { CompressReport } from '../src/compress/finish.js';

let work: string;
const prunus = (args: string[]): Promise<CliResult> => runCli(args, { cwd: work, env: { ...process.env, PRUNUS_RESULTS: join(work, 'results') } });

beforeAll(async () => {
  await initBackend('wasm');
  work = mkdtempSync(join(tmpdir(), 'prunus-compress-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const ones = (m: LayerMasks[]) => m.reduce((s, l) => s + l.weight.reduce((a, b) => a + b, 0) + l.bias.reduce((a, b) => a + b, 0), 0);

describe('joint candidates', () => {
  it('masks are the conjunction of the channel masks and the magnitude masks at the crates', () => {
    const arch = getArchitecture('lenet-5');
    const params = initParams(arch, new Rng('joint-masks'));
    const groups = channelGroups(arch);
    const ctx: EvaluationContext = { arch, params, masks: onesMasks(arch), stats: params.layers.map((l) => magnitudeStats(l)), data: { images: new Float32Array(784), labels: new Uint8Array(1), count: 1, shape: [28, 28, 1] } };
    const kept = groups.map((g) => Array.from({ length: g.channels }, (_, c) => c).filter((c) => c % 3 !== 1));
    const crates = [0.2, -0.4, 0, 1.1];
    const m = jointMasks(ctx, { kept, crates });
    const channel = layerMasksFromChannels(arch, groups, kept.map((k, i) => { const a = new Uint8Array(groups[i]!.channels); for (const c of k) a[c] = 1; return a; }));
    const magnitude = masksForCrates(params.layers, ctx.masks, ctx.stats, [0.2, -0.4, null, 1.1]);
    m.forEach((l, k) => {
      for (let i = 0; i < l.weight.length; i++) expect(l.weight[i]).toBe(channel[k]!.weight[i]! & magnitude[k]!.weight[i]!);
      for (let i = 0; i < l.bias.length; i++) expect(l.bias[i]).toBe(channel[k]!.bias[i]! & magnitude[k]!.bias[i]!);
    });
    // Strictly fewer than either alone: both parts act.
    expect(ones(m)).toBeLessThan(ones(channel));
    expect(ones(m)).toBeLessThan(ones(magnitude));
    // A crate of exactly 0 leaves the layer to its channel masks (ip1 here).
    expect(Array.from(m[2]!.weight)).toEqual(Array.from(channel[2]!.weight));
    expect(ones(conjunction(m, m))).toBe(ones(m));
  });

  it('the result is feasible only within the FLOPs budget, at the target and above the accuracy floor', () => {
    const s = { objective: 'size' as const, flopsBudget: 0.5, targetCompression: 4 };
    expect(jointResult(s, { sizeRatio: 0.2, macRatio: 0.4, compression: 5, accShortfall: 0 }).feasible).toBe(true);
    const over = jointResult(s, { sizeRatio: 0.2, macRatio: 0.6, compression: 5, accShortfall: 0 });
    expect(over.feasible).toBe(false);
    expect(over.violation).toBeCloseTo(1.1, 12);
    const short = jointResult(s, { sizeRatio: 0.5, macRatio: 0.4, compression: 2, accShortfall: 0 });
    expect(short).toMatchObject({ feasible: false, violation: 0.5 });
    expect(jointResult(s, { sizeRatio: 0.2, macRatio: 0.4, compression: 5, accShortfall: 0.03 })).toMatchObject({ feasible: false, violation: 0.03 });
    expect(jointResult({ ...s, objective: 'mixed' }, { sizeRatio: 0.25, macRatio: 0.64, compression: 5, accShortfall: 0 }).fitness).toBeCloseTo(0.4, 12);
    expect(paretoFront([
      { nonZero: 10, macs: 10, accuracy: 0.9 },
      { nonZero: 12, macs: 12, accuracy: 0.9 },
      { nonZero: 8, macs: 20, accuracy: 0.8 },
      { nonZero: NaN, macs: 5, accuracy: null },
    ])).toEqual([0, 2]);
  });
});

describe('joint search on LeNet-5', () => {
  let arch: ReturnType<typeof getArchitecture>;
  let groups: ChannelGroup[];
  let ctx: EvaluationContext;
  let scores: Float32Array[];
  let baselineAccuracy: number;
  beforeAll(async () => {
    // A briefly trained LeNet-5 (150 steps on 2,000 images): accurate enough for the floor to bind.
    const cfg = { ...defaultChannelsConfig('lenet-5', 'l1', true), data: { train: 2000, score: 200, validation: 300, test: 300 }, baseline: { ...defaultChannelsConfig('lenet-5', 'l1', true).baseline, steps: 150 } };
    const data = loadChannelData('mnist', cfg.data);
    arch = getArchitecture('lenet-5');
    groups = channelGroups(arch);
    const { getBaseline } = await import('../src/channels/baseline.js');
    const base = getBaseline(join(work, 'results'), cfg, arch, null, data);
    baselineAccuracy = base.validationAccuracy;
    scores = l1Scores(arch, groups, base.params);
    ctx = { arch, params: base.params, masks: onesMasks(arch), stats: base.params.layers.map((l) => magnitudeStats(l)), data: data.validation };
  }, 120_000);

  const settings = (over: Partial<JointSettings> = {}): JointSettings => ({
    objective: 'size', flopsBudget: 0.5, targetCompression: null, maxAccDrop: 0.05, baselineAccuracy, popSize: 4, budget: 25, lower: 0.05, upper: 1, crateLower: -1.5, crateUpper: 3, crateStart: -0.5, searchCrates: true, seed: 7, ...over,
  });
  const run = async (ev: Evaluator, s: JointSettings) => {
    try {
      await ev.setContext(ctx);
      return await searchJoint(arch, groups, 4, scores, ev, ctx.data.count, sizeReport(arch, onesMasks(arch)).params, s);
    } finally {
      await ev.close();
    }
  };

  it('gives the same points with 1 and 2 pool workers, and in this thread', async () => {
    const s = settings();
    const inProcess = await run(await createInProcessEvaluator({}), s);
    const one = await run(await createPoolEvaluator({ workers: 1, backend: 'wasm' }), s);
    const two = await run(await createPoolEvaluator({ workers: 2, backend: 'wasm' }), s);
    const strip = (o: typeof one) => JSON.stringify({ points: o.points, best: o.best, evaluations: o.evaluations, earlyExits: o.earlyExits });
    expect(strip(one)).toBe(strip(inProcess));
    expect(strip(two)).toBe(strip(one));
    expect(one.points.length).toBeGreaterThan(10);
    expect(one.evaluations).toBeGreaterThan(5);
  }, 240_000);

  it('chooses a point within the FLOPs budget and at the compression target; points over the budget are never run', async () => {
    const s = settings({ targetCompression: 3, maxAccDrop: 0.3, budget: 41, seed: 3 });
    const o = await run(await createInProcessEvaluator({}), s);
    const dense = denseCost(arch, groups).macs;
    expect(o.best.result.feasible).toBe(true);
    expect(o.best.macs).toBeLessThanOrEqual(0.5 * dense);
    expect(o.best.macs).toBe(configCost(arch, groups, o.best.keep).macs);
    expect(o.best.compression).toBeGreaterThanOrEqual(3);
    expect(o.best.accuracy!).toBeGreaterThanOrEqual(baselineAccuracy - 0.3 - 1e-9);
    const over = o.points.filter((p) => p.macs > 0.5 * dense);
    for (const p of over) expect(p.accuracy).toBeNull();
    expect(o.rejectedOverBudget).toBe(over.length);
    // The target binds: some feasible-accuracy points fell short of it.
    expect(o.points.some((p) => p.accuracy !== null && p.compression < 3)).toBe(true);
  }, 240_000);
});

describe('the method keeps removed channels at zero through its finetune', () => {
  it("DI: every removed channel's filter and consumer slice is exactly zero after the rounds and the final finetune", () => {
    const cfg = { ...defaultChannelsConfig('lenet-5', 'di', true), data: { train: 1000, score: 200, validation: 200, test: 200 }, finetune: { steps: 20, batchSize: 32 } };
    const data = loadChannelData('mnist', cfg.data);
    const arch = getArchitecture('lenet-5');
    const groups = channelGroups(arch);
    const params = initParams(arch, new Rng('di-zero'));
    const method = createMethod('di', { arch, groups, baseline: params, data, seed: 5, cfg });
    const keep = groups.map((g) => Math.max(1, Math.floor(g.channels / 3)));
    const out = method.prune(keep, method.score());
    const pm = paramMasksFromChannels(arch, groups, out.masks);
    let zeros = 0;
    out.finetuned.layers.forEach((l, k) => {
      l.weight.forEach((w, i) => {
        if (!pm.layers[k]!.weight[i]) {
          expect(w).toBe(0);
          zeros++;
        }
      });
    });
    expect(zeros).toBeGreaterThan(1000);
    expect(out.masks.map((m) => keptIndices(m).length)).toEqual(keep);
    // Finetuning changed the kept weights.
    expect(out.finetuned.layers[1]!.weight.some((w, i) => pm.layers[1]!.weight[i] && w !== params.layers[1]!.weight[i])).toBe(true);
  }, 120_000);
});

describe('prunus compress end to end', () => {
  it('the quick LeNet-5 command prints compression, MACs, accuracy, seed and backend, and writes a model plain tfjs loads', async () => {
    const out = join(work, 'lenet5');
    const r = await prunus(['compress', '--model', 'lenet-5', '--method', 'di', '--max-acc-drop', '0.01', '--flops-budget', '0.5', '--quick', '--json', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as CompressReport;
    expect(rep).toMatchObject({ command: 'compress', mode: 'joint', model: 'lenet-5', method: 'di', seed: 1, backend: { name: 'wasm' } });
    expect(rep.compression).toBeGreaterThan(1.5);
    expect(rep.macs.slimmed).toBeLessThanOrEqual(0.5 * rep.macs.dense);
    expect(rep.macs.sparse).toBeLessThan(rep.macs.slimmed);
    expect(rep.accuracy.final.test).toBeGreaterThan(0.8);
    expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))).toEqual(rep);
    // The search recorded its points and front; the final model keeps the winner's channels.
    const search = JSON.parse(readFileSync(join(out, 'search.json'), 'utf8')) as { outcome: { best: { keep: number[] }; points: unknown[] }; pareto: number[] };
    expect(search.pareto.length).toBeGreaterThan(0);
    expect(rep.groups.map((g) => g.kept)).toEqual(search.outcome.best.keep);
    const { model } = loadModel(join(out, 'model'));
    expect((model.arch.ops.find((o) => o.name === 'conv1') as { outChannels: number }).outChannels).toBe(search.outcome.best.keep[0]);
    expect(sizeReport(model.arch, model.masks).nonZero).toBe(rep.nonZero);
    // The export is a LayersModel for plain tf.loadLayersModel, predicting what prunus's masked model predicts.
    const lm = await loadWithTfjs(join(out, 'export', 'tfjs'));
    const data = loadChannelData('mnist', { train: 6000, score: 1000, validation: 500, test: 2000 });
    const n = 200;
    const x = data.test.images.subarray(0, n * 784);
    const theirs = predictClasses(lm, x, n);
    const t = toTensors(model.arch, model.params, model.masks);
    const ours = tf.tidy(() => forward(model.arch, t, tf.tensor4d(x, [n, 28, 28, 1])).argMax(-1).dataSync() as Int32Array);
    disposeModelTensors(t);
    lm.dispose();
    expect(Array.from(theirs)).toEqual(Array.from(ours));
    expect(rep.exported.sparse.bytes).toBeLessThan(rep.exported.tfjs.bytes);
    expect(rep.inference.tfjsImagesPerSec).toBeGreaterThan(0);
  }, 300_000);

  it("a user's residual model (BatchNorm, channels tied by Adds) compresses end to end", async () => {
    const res = buildResidualCnn();
    await trainBriefly(res, 2048, 3);
    await saveUserModel(res, join(work, 'res'));
    res.dispose();
    const out = join(work, 'res-run');
    const r = await prunus(['compress', '--model', join(work, 'res'), '--dataset', 'fashion-mnist', '--input-scale', String(SCALE_255), '--method', 'gfbs', '--quick', '--max-acc-drop', '0.05', '--flops-budget', '0.7', '--search-budget', '13', '--finetune-steps', '20', '--iterations', '101', '--prune-until', '50', '--olmp-search-budget', '12', '--json', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as CompressReport;
    expect(rep.macs.slimmed).toBeLessThanOrEqual(0.7 * rep.macs.dense);
    expect(rep.compression).toBeGreaterThan(1);
    const { model } = loadModel(join(out, 'model'));
    const outCh = (name: string) => (model.arch.ops.find((o) => o.name === name) as { outChannels: number }).outChannels;
    expect(outCh('stem')).toBe(outCh('b1_conv2'));
    expect(outCh('b2_conv2')).toBe(outCh('b2_proj'));
    const lm = await loadWithTfjs(join(out, 'export', 'tfjs'));
    expect(lm.layers.length).toBeGreaterThan(5);
    lm.dispose();
  }, 300_000);

  it('a run killed (SIGKILL) in its OLMP stage resumes to the files of an uninterrupted run; bad input exits 2 writing nothing', async () => {
    const args = (out: string) => ['compress', '--model', 'lenet-5', '--method', 'l1', '--quick', '--flops-budget', '0.6', '--search-budget', '9', '--finetune-steps', '20', '--iterations', '161', '--prune-until', '80', '--olmp-search-budget', '12', '--json', '--out', out];
    const whole = join(work, 'whole');
    const a = await prunus(args(whole));
    expect(a.code, a.stderr).toBe(0);
    const killed = join(work, 'killed');
    // Killed once the OLMP stage has written its third checkpoint (pruning under way).
    const signal = await new Promise<NodeJS.Signals | null>((res, rej) => {
      const child = spawn(process.execPath, [bin, ...args(killed)], { cwd: work, env: { ...process.env, PRUNUS_RESULTS: join(work, 'results') }, stdio: 'ignore' });
      const poll = setInterval(() => {
        try {
          const seq = (JSON.parse(readFileSync(join(killed, 'olmp', 'checkpoint.json'), 'utf8')) as { seq: number }).seq;
          if (seq >= 3) child.kill('SIGKILL');
        } catch {
          // not written yet
        }
      }, 50);
      child.on('error', rej);
      child.on('close', (_code, sig) => {
        clearInterval(poll);
        res(sig);
      });
    });
    expect(signal).toBe('SIGKILL');
    expect(existsSync(join(killed, 'olmp', 'report.json'))).toBe(false);
    expect(existsSync(join(killed, 'report.json'))).toBe(false);
    const c = await prunus(['resume', killed, '--json']);
    expect(c.code, c.stderr).toBe(0);
    for (const f of ['model/weights.bin', 'model/masks.bin', 'export/sparse/weights.sparse', 'export/tfjs/weights.bin']) {
      expect(readFileSync(join(killed, f)).equals(readFileSync(join(whole, f))), f).toBe(true);
    }
    const searched = (dir: string) => {
      const s = JSON.parse(readFileSync(join(dir, 'search.json'), 'utf8')) as { outcome: { wallMs?: number } };
      delete s.outcome.wallMs;
      return s;
    };
    expect(searched(killed)).toEqual(searched(whole));
    // events.jsonl: the resumed run's lines are the uninterrupted run's (a rerun stage's lines are not doubled).
    const events = (dir: string) =>
      readFileSync(join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => {
        const e = JSON.parse(l) as Record<string, unknown>;
        delete e.elapsedMs;
        return e;
      });
    const ev = events(whole);
    expect(ev.filter((e) => e.type === 'search').length).toBeGreaterThan(1);
    expect(ev.filter((e) => e.type === 'stage' && e.status === 'done').map((e) => e.stage)).toEqual(['baseline', 'search', 'finetune', 'olmp']);
    expect(events(killed).filter((e) => e.stage !== 'baseline')).toEqual(ev.filter((e) => e.stage !== 'baseline'));
    const ra = JSON.parse(a.stdout) as CompressReport;
    const rc = JSON.parse(c.stdout) as CompressReport;
    expect(rc.compression).toBe(ra.compression);
    expect(rc.accuracy.final).toEqual(ra.accuracy.final);

    const bad = join(work, 'bad');
    const d = await prunus(['compress', '--model', 'lenet-5', '--mode', 'sideways', '--out', bad]);
    expect(d.code).toBe(2);
    expect(d.stderr.trim().split('\n')).toHaveLength(1);
    expect(d.stderr).toMatch(/--mode must be one of joint, chained, olmp, channels/);
    expect(existsSync(bad)).toBe(false);
  }, 420_000);
});
