/**
 * A user's own networks, end to end: a Sequential MLP with Dropout and softmax, and a functional residual CNN
 * (Conv2D, BatchNormalization, Add, a strided block with a 1×1 projection shortcut, GlobalAveragePooling2D, Dense
 * softmax), both built with tf.layers, trained a few steps and saved in the TensorFlow.js format. Each is imported
 * (prunus's accuracy equals model.predict's), searched, exported and reloaded with plain tfjs (same predictions as
 * prunus's own evaluation); the CNN is channel-pruned (channels tied by an Add removed together, the slimmed model
 * equal to the masked one). Quantised and multi-shard weight manifests load; bad inputs give exit 2 and one line.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync, truncateSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../backends/backend.js';
import { loadModel } from '../models/io.js';
import { readLayersModel } from '../models/tfjs/read.js';
import { encodeWeights } from '../models/tfjs/weights.js';
import { toTensors, forward, disposeModelTensors } from '../models/forward.js';
import { channelGroups, applyChannelMasks, fullChannelMasks } from '../models/channels.js';
import { slimModel } from '../models/slim.js';
import type { Architecture } from '../models/graph.js';
import type { LayerMasks, ModelParams } from '../models/params.js';
import { bin, runCli, type CliResult } from './run-cli.js';
import { buildMlp, buildResidualCnn, trainBriefly, saveUserModel, loadWithTfjs, predictClasses, fashion, SCALE_255 } from './tfjs-fixtures.js';


type Result = CliResult;

function prunus(args: string[], cwd: string): Promise<Result> {
  return runCli(args, { cwd, env: { ...process.env, PRUNUS_RESULTS: join(cwd, 'results') } });
}

function ownLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !/^Warning: max\w+ artificially reduced/.test(l));
}

/** prunus's own predictions of a (masked) model on NHWC images: the fused tfjs forward, argmax per image. */
function prunusClasses(arch: Architecture, params: ModelParams, masks: LayerMasks[] | undefined, x: Float32Array, n: number): Int32Array {
  const t = toTensors(arch, params, masks);
  try {
    return tf.tidy(() => forward(arch, t, tf.tensor4d(x, [n, 28, 28, 1])).argMax(-1).dataSync() as Int32Array);
  } finally {
    disposeModelTensors(t);
  }
}

function accuracy(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) c++;
  return c / labels.length;
}

let work: string;
const N_TEST = 2000;
let test: { x: Float32Array; y: Uint8Array };

describe('your own TensorFlow.js model', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    work = mkdtempSync(join(tmpdir(), 'prunus-user-'));
    test = fashion('t10k', N_TEST);
    const mlp = buildMlp();
    await trainBriefly(mlp, 2048, 2);
    await saveUserModel(mlp, join(work, 'mlp'));
    const res = buildResidualCnn();
    await trainBriefly(res, 2048, 3);
    await saveUserModel(res, join(work, 'res'), { shards: 3 });
    mlp.dispose();
    res.dispose();
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('imports both graphs, and prunus evaluates them as model.predict does', async () => {
    for (const name of ['mlp', 'res']) {
      const { model, file } = loadModel(join(work, name));
      expect(file.kind).toBe('tfjs');
      expect(model.arch.outputActivation).toBe('softmax');
      const types = model.arch.ops.map((o) => o.type);
      if (name === 'mlp') expect(types).toEqual(['flatten', 'dense', 'dropout', 'dense', 'dense']);
      else {
        expect(types.filter((t) => t === 'add')).toHaveLength(2);
        expect(types).toContain('gap');
        expect(model.arch.ops.find((o) => o.name === 'b2_add')!.inputs).toEqual(['b2_bn2', 'b2_proj']);
        expect(model.arch.ops.find((o) => o.name === 'b1_conv1')).toMatchObject({ useBias: false });
      }
      const tfModel = await loadWithTfjs(join(work, name));
      const theirs = predictClasses(tfModel, test.x, N_TEST);
      const ours = prunusClasses(model.arch, model.params, undefined, test.x, N_TEST);
      expect(Array.from(ours)).toEqual(Array.from(theirs));
      expect(accuracy(ours, test.y)).toBeGreaterThan(0.5);
      tfModel.dispose();
    }
  });

  it('searches the MLP and the residual CNN, exports them, and plain tfjs predicts what prunus evaluated', async () => {
    for (const name of ['mlp', 'res']) {
      const run = join(work, `run-${name}`);
      const small = ['--iterations', '121', '--prune-until', '80', '--search-period', '40', '--log-period', '40', '--checkpoint-period', '40', '--search-budget', '25'];
      const r = await prunus(['search', '--model', join(work, name, 'model.json'), '--dataset', 'fashion-mnist', '--input-scale', String(SCALE_255), '--quick', ...small, '--out', run, '--json'], work);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { testAccuracy: number; compression: number; model: string };
      expect(report.compression).toBeGreaterThan(1);
      const cfg = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { modelSource: { kind: string; sha256: string }; options: { inputScale: number } };
      expect(cfg.modelSource.kind).toBe('file');
      expect(cfg.modelSource.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(cfg.options.inputScale).toBe(SCALE_255);
      // A finished run keeps no checkpoints; its model/ is itself a LayersModel.
      expect(existsSync(join(run, 'checkpoints'))).toBe(false);
      const x = join(work, `export-${name}`);
      const e = await prunus(['export', run, '--out', x, '--json'], work);
      expect(e.code, e.stderr).toBe(0);
      expect(readdirSync(x).sort()).toEqual(['model.json', 'weights.bin']);
      const tfModel = await loadWithTfjs(x);
      const theirs = predictClasses(tfModel, test.x, N_TEST);
      tfModel.dispose();
      const { model } = loadModel(run);
      const ours = prunusClasses(model.arch, model.params, model.masks, test.x, N_TEST);
      expect(Array.from(theirs)).toEqual(Array.from(ours));
      expect(accuracy(theirs, test.y)).toBeCloseTo(report.testAccuracy, 10);
    }
  });

  it('a search of a model file killed with SIGKILL resumes to the same report and events; a changed model file is refused', async () => {
    // Same flags as the uninterrupted run-mlp of the search test above, checkpointing every 20 iterations.
    const model = join(work, 'mlp', 'model.json');
    const flags = ['--dataset', 'fashion-mnist', '--input-scale', String(SCALE_255), '--quick', '--iterations', '121', '--prune-until', '80', '--search-period', '40', '--log-period', '40', '--checkpoint-period', '20', '--search-budget', '25'];
    const ref = join(work, 'resume-ref');
    const a = await prunus(['search', '--model', model, ...flags, '--out', ref, '--json'], work);
    expect(a.code, a.stderr).toBe(0);
    const dir = join(work, 'resume-killed');
    const child = spawn(process.execPath, [bin, 'search', '--model', model, ...flags, '--out', dir, '--json'], { cwd: work, env: { ...process.env, PRUNUS_RESULTS: join(work, 'results') }, stdio: 'ignore' });
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    while (!existsSync(join(dir, 'checkpoint.json'))) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(join(dir, 'report.json'))).toBe(false);
    const b = await prunus(['resume', dir, '--json'], work);
    expect(b.code, b.stderr).toBe(0);
    const pick = (r: Record<string, unknown>) => ({ ...r, wallTimeMs: 0, runDir: '' });
    expect(pick(JSON.parse(b.stdout))).toEqual(pick(JSON.parse(a.stdout)));
    const events = (d: string) => readFileSync(join(d, 'events.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => ({ ...JSON.parse(l), elapsedMs: 0 }));
    expect(events(dir)).toEqual(events(ref));

    // A run whose model file changes under it: resume says so and does nothing.
    const copy = join(work, 'mlp-copy');
    mkdirSync(copy, { recursive: true });
    for (const f of readdirSync(join(work, 'mlp'))) writeFileSync(join(copy, f), readFileSync(join(work, 'mlp', f)));
    const dir2 = join(work, 'resume-changed');
    const c2 = spawn(process.execPath, [bin, 'search', '--model', join(copy, 'model.json'), ...flags, '--out', dir2], { cwd: work, env: { ...process.env, PRUNUS_RESULTS: join(work, 'results') }, stdio: 'ignore' });
    const exited2 = new Promise<void>((res) => c2.on('exit', () => res()));
    while (!existsSync(join(dir2, 'checkpoint.json'))) await new Promise((r) => setTimeout(r, 20));
    c2.kill('SIGKILL');
    await exited2;
    const w = readFileSync(join(copy, 'weights.bin'));
    w.writeFloatLE(w.readFloatLE(0) + 1, 0);
    writeFileSync(join(copy, 'weights.bin'), w);
    const events0 = readFileSync(join(dir2, 'events.jsonl'), 'utf8');
    const r = await prunus(['resume', dir2], work);
    expect(r.code).toBe(2);
    expect(ownLines(r.stderr)).toHaveLength(1);
    expect(ownLines(r.stderr)[0]).toMatch(/model .*mlp-copy\/model\.json has changed since the run started/);
    expect(readFileSync(join(dir2, 'events.jsonl'), 'utf8')).toBe(events0);
  });

  it('residual CNN: channels tied by an Add are one group; slimming removes them together and equals the masked model', () => {
    const { model } = loadModel(join(work, 'res'));
    const arch = model.arch;
    const groups = channelGroups(arch);
    const byName = Object.fromEntries(groups.map((g) => [g.name, g]));
    expect(groups.map((g) => g.name).sort()).toEqual(['b1_conv1', 'b2_conv1', 'b2_conv2', 'stem']);
    expect(byName['stem']!.producers).toHaveLength(2); // stem + b1_conv2, tied by b1_add
    expect(byName['b2_conv2']!.producers).toHaveLength(2); // b2_conv2 + b2_proj, tied by b2_add
    const masks = fullChannelMasks(groups);
    masks[byName['stem']!.id]![2] = 0;
    masks[byName['stem']!.id]![4] = 0;
    masks[byName['b2_conv2']!.id]![7] = 0;
    masks[byName['b1_conv1']!.id]![0] = 0;
    const slim = slimModel(arch, groups, model.params, masks);
    const op = (n: string) => slim.arch.ops.find((o) => o.name === n)!;
    for (const n of ['stem', 'b1_conv2']) expect(op(n)).toMatchObject({ outChannels: 4 });
    expect(op('b1_bn2')).toMatchObject({ channels: 4 });
    for (const n of ['b2_conv1', 'b2_proj']) expect(op(n)).toMatchObject({ inChannels: 4 });
    for (const n of ['b2_conv2', 'b2_proj']) expect(op(n)).toMatchObject({ outChannels: 11 });
    expect(op('classes')).toMatchObject({ inUnits: 11 });
    expect(op('b1_conv1')).toMatchObject({ inChannels: 4, outChannels: 5 });
    const masked = applyChannelMasks(arch, groups, model.params, masks);
    const n = 64;
    const x = tf.tensor4d(test.x.subarray(0, n * 784), [n, 28, 28, 1]);
    const logits = (a: Architecture, p: ModelParams) => {
      const t = toTensors(a, p);
      const y = tf.tidy(() => forward(a, t, x).dataSync());
      disposeModelTensors(t);
      return y;
    };
    const a = logits(arch, masked);
    const b = logits(slim.arch, slim.params);
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    expect(d).toBeLessThan(1e-4);
    x.dispose();
  });

  it('channel-prunes the residual CNN from the CLI and the slimmed export reloads with plain tfjs', async () => {
    const run = join(work, 'channels-res');
    const r = await prunus(
      ['channels', '--model', join(work, 'res'), '--dataset', 'fashion-mnist', '--input-scale', String(SCALE_255), '--method', 'l1', '--quick', '--finetune-steps', '20', '--search-budget', '9', '--pop-size', '2', '--out', run, '--json'],
      work,
    );
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { macs: { before: number; after: number }; slim: { maxAbsDiffVsMasked: number }; accuracy: { finetuned: number } };
    expect(report.macs.after).toBeLessThan(report.macs.before);
    expect(report.slim.maxAbsDiffVsMasked).toBeLessThan(1e-3);
    const { model } = loadModel(run);
    const tied = (a: string, b: string) => (model.arch.ops.find((o) => o.name === a) as { outChannels: number }).outChannels === (model.arch.ops.find((o) => o.name === b) as { outChannels: number }).outChannels;
    expect(tied('stem', 'b1_conv2')).toBe(true);
    expect(tied('b2_conv2', 'b2_proj')).toBe(true);
    const x = join(work, 'export-channels');
    const e = await prunus(['export', run, '--out', x], work);
    expect(e.code, e.stderr).toBe(0);
    const tfModel = await loadWithTfjs(x);
    const theirs = predictClasses(tfModel, test.x, N_TEST);
    tfModel.dispose();
    expect(Array.from(theirs)).toEqual(Array.from(prunusClasses(model.arch, model.params, undefined, test.x, N_TEST)));
  });

  it('reads multi-shard and quantised (uint8, uint16, float16) weight manifests as tfjs does', async () => {
    // Three shards (saved so in beforeAll) read like one.
    const sharded = readLayersModel(join(work, 'res'));
    expect(readdirSync(join(work, 'res')).filter((f) => f.startsWith('group1-shard'))).toHaveLength(3);
    const tfModel = await loadWithTfjs(join(work, 'res'));
    const tfWeights = tfModel.getWeights().map((w) => w.dataSync());
    tfModel.dispose();
    const flat = (p: ModelParams) => [...p.layers.flatMap((l) => [l.weight, l.bias]), ...p.batchNorms.flatMap((b) => [b.gamma, b.beta, b.movingMean, b.movingVariance])];
    const total = (arrs: ArrayLike<number>[]) => arrs.reduce((s, a) => s + a.length, 0);
    expect(total(flat(sharded.params).filter((a) => a.length > 0))).toBe(total(tfWeights));
    // Quantised copies of the MLP: prunus reads the same values tfjs loads.
    const json = JSON.parse(readFileSync(join(work, 'mlp', 'model.json'), 'utf8')) as { weightsManifest: { weights: { name: string; shape: number[] }[] }[] };
    const orig = readLayersModel(join(work, 'mlp'));
    const named = json.weightsManifest[0]!.weights.map((w) => {
      const [layer, kind] = w.name.split('/');
      const k = orig.arch.ops.filter((o) => o.type === 'dense').findIndex((o) => o.name === layer);
      const p = orig.params.layers[k]!;
      return { name: w.name, shape: w.shape, values: kind === 'kernel' ? p.weight : p.bias };
    });
    for (const q of ['uint8', 'uint16', 'float16'] as const) {
      const dir = join(work, `mlp-${q}`);
      const { specs, bytes } = encodeWeights(named, q);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'weights.bin'), bytes);
      writeFileSync(join(dir, 'model.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(work, 'mlp', 'model.json'), 'utf8')), weightsManifest: [{ paths: ['weights.bin'], weights: specs }] }));
      const ours = readLayersModel(dir);
      const theirs = await loadWithTfjs(dir);
      const tw = theirs.getWeights().map((w) => Array.from(w.dataSync()));
      theirs.dispose();
      const ow = ours.params.layers.flatMap((l) => [Array.from(l.weight), Array.from(l.bias)]);
      expect(ow.length).toBe(tw.length);
      ow.forEach((a, i) => a.forEach((v, j) => expect(Math.abs(v - tw[i]![j]!)).toBeLessThanOrEqual(Math.abs(tw[i]![j]!) * 1e-6 + 1e-7)));
      // Close to the float32 originals (within one quantisation step).
      const step = q === 'float16' ? 1e-3 : q === 'uint16' ? 1e-3 : 5e-2;
      ow.forEach((a, i) => a.forEach((v, j) => expect(Math.abs(v - named[i]!.values[j]!)).toBeLessThan(step)));
    }
  });

  it('refuses bad models with exit 2 and one line naming the layer or file, writing nothing', async () => {
    const bad = async (name: string, build: () => Promise<void>, pattern: RegExp, extra: string[] = []) => {
      await build();
      const out = join(work, `bad-run-${name}`);
      const r = await prunus(['search', '--model', join(work, `bad-${name}`), '--dataset', 'fashion-mnist', '--quick', '--out', out, ...extra], work);
      expect(r.code, `${name}: ${r.stderr}`).toBe(2);
      const lines = ownLines(r.stderr);
      expect(lines, name).toHaveLength(1);
      expect(lines[0], name).toMatch(pattern);
      expect(existsSync(out), name).toBe(false);
      expect(existsSync(join(work, 'results')) ? readdirSync(join(work, 'results')) : [], name).toEqual([]);
    };
    const copy = (to: string) => {
      mkdirSync(join(work, to), { recursive: true });
      for (const f of readdirSync(join(work, 'res'))) writeFileSync(join(work, to, f), readFileSync(join(work, 'res', f)));
    };
    await bad(
      'unsupported',
      async () => {
        const m = tf.sequential();
        m.add(tf.layers.conv2dTranspose({ filters: 2, kernelSize: 3, inputShape: [28, 28, 1], name: 'upsample' }));
        m.add(tf.layers.flatten());
        m.add(tf.layers.dense({ units: 10 }));
        await saveUserModel(m, join(work, 'bad-unsupported'));
      },
      /Conv2DTranspose 'upsample' is not supported/,
    );
    await bad(
      'shape',
      async () => {
        const m = tf.sequential();
        m.add(tf.layers.conv2d({ filters: 2, kernelSize: 3, inputShape: [32, 32, 3] }));
        m.add(tf.layers.flatten());
        m.add(tf.layers.dense({ units: 10 }));
        await saveUserModel(m, join(work, 'bad-shape'));
      },
      /takes 32x32x3 images and predicts 10 classes; dataset fashion-mnist has 28x28x1 images and 10 classes/,
    );
    await bad('missing', async () => (copy('bad-missing'), unlinkSync(join(work, 'bad-missing', 'group1-shard2of3.bin'))), /group1-shard2of3\.bin: missing/);
    await bad('short', async () => (copy('bad-short'), truncateSync(join(work, 'bad-short', 'group1-shard3of3.bin'), 100)), /group1-shard3of3\.bin: the shards hold \d+ bytes/);
    await bad(
      'nan',
      async () => {
        copy('bad-nan');
        const f = join(work, 'bad-nan', 'group1-shard1of3.bin');
        const b = readFileSync(f);
        b.writeFloatLE(NaN, 8);
        writeFileSync(f, b);
      },
      /Conv2D 'stem': weight stem\/kernel holds NaN at index 2/,
    );
  });
});
