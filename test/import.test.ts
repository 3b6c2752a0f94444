/**
 * Caffe → tfjs mapping (pure functions) and the importer's checks: every refusal is a one-line UsageError / exit 2
 * naming the file and the problem, with nothing written at --out.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../foundation/rng.js';
import { UsageError } from '../foundation/errors.js';
import { initBackend } from '../backends/backend.js';
import { lenet5 } from '../models/architectures.js';
import { type Architecture } from '../models/graph.js';
import { toTensors, forward, disposeModelTensors } from '../models/forward.js';
import { loadModel } from '../models/io.js';
import {
  caffeToTfjsDense,
  caffeToTfjsConv,
  caffeToTfjsParams,
  flattenedInputs,
  type CaffeLayerArrays,
} from '../models/caffe/layout.js';
import { importCaffeManifest, readCaffeArrays } from '../models/caffe/manifest.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = resolve(repoRoot, '../shared/fixtures/olmp-released');
const CLI = join(repoRoot, 'bin', 'prunus.js');

function fixtures(): string {
  if (!existsSync(join(FIXTURES, 'README.md'))) {
    throw new Error(`OLMP released-model fixtures missing: expected ${FIXTURES} (the shared folder beside the repository)`);
  }
  return FIXTURES;
}

function randomArray(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

describe('caffeToTfjs mapping (pure)', () => {
  it('transposes an InnerProduct weight [out,in] to a dense kernel [in,out]', () => {
    // W = [[1,2,3],[4,5,6]] (out=2, in=3) → kernel [[1,4],[2,5],[3,6]]
    const k = caffeToTfjsDense(new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3);
    expect([...k]).toEqual([1, 4, 2, 5, 3, 6]);
    const m = caffeToTfjsDense(new Uint8Array([1, 0, 0, 0, 1, 1]), 2, 3);
    expect(m).toBeInstanceOf(Uint8Array);
    expect([...m]).toEqual([1, 0, 0, 1, 0, 1]);
    expect(() => caffeToTfjsDense(new Float32Array(5), 2, 3)).toThrow(/5 values/);
  });

  it('permutes a Convolution weight [out,in,kh,kw] to [kh,kw,in,out] like tf.transpose(W, [2,3,1,0])', async () => {
    await initBackend('cpu');
    const rng = new Rng('conv-map');
    const [O, I, KH, KW] = [4, 3, 2, 5];
    const w = randomArray(rng, O * I * KH * KW);
    const mine = caffeToTfjsConv(w, O, I, KH, KW);
    const ref = tf.tidy(() => tf.transpose(tf.tensor4d(w, [O, I, KH, KW]), [2, 3, 1, 0]).dataSync());
    expect([...mine]).toEqual([...ref]);
  });

  it("maps LeNet-5 ip1 with the C,H,W → H,W,C input permutation: kernel[(h*4+w)*50+c][o] = W[o][c*16+h*4+w]", async () => {
    await initBackend('cpu');
    const rng = new Rng('ip1-map');
    const w = randomArray(rng, 500 * 800);
    const chw = flattenedInputs(lenet5());
    expect(chw).toEqual([null, null, [50, 4, 4], null]);
    const k = caffeToTfjsDense(w, 500, 800, chw[2]!);
    let mismatches = 0;
    for (let c = 0; c < 50; c++)
      for (let h = 0; h < 4; h++)
        for (let x = 0; x < 4; x++)
          for (let o = 0; o < 500; o++) if (k[((h * 4 + x) * 50 + c) * 500 + o] !== w[o * 800 + c * 16 + h * 4 + x]) mismatches++;
    expect(mismatches).toBe(0);
    // The fixtures README's equivalent form.
    const ref = tf.tidy(() => tf.transpose(tf.reshape(tf.tensor2d(w, [500, 800]), [500, 50, 4, 4]), [2, 3, 1, 0]).reshape([800, 500]).dataSync());
    expect([...k].every((v, i) => v === ref[i])).toBe(true);
    // With one channel (LeNet-300-100's flattened image) the permutation is the identity.
    const w1 = randomArray(rng, 300 * 784);
    expect(caffeToTfjsDense(w1, 300, 784, [1, 28, 28])).toEqual(caffeToTfjsDense(w1, 300, 784));
  });

  /** A small net with two input channels, so that the flatten order matters. */
  const tiny: Architecture = {
    name: 'tiny-caffe',
    inputShape: [6, 6, 2],
    numClasses: 4,
    ops: [
      { type: 'conv2d', name: 'conv1', kernel: 3, inChannels: 2, outChannels: 3, stride: 1, padding: 'valid', activation: 'linear' },
      { type: 'maxpool', size: 2, stride: 2 },
      { type: 'flatten' },
      { type: 'dense', name: 'ip1', inUnits: 12, outUnits: 5, activation: 'relu' },
      { type: 'dense', name: 'ip2', inUnits: 5, outUnits: 4, activation: 'linear' },
    ],
    maskGamma: [0, 0, 0],
  };

  /** Caffe's forward in Caffe layouts (C,H,W activations, masked weights), in float64. */
  function caffeForward(layers: CaffeLayerArrays[], xNhwc: Float32Array): number[] {
    const eff = layers.map((l) => ({
      w: l.weight.map((v, i) => (l.weightMask ? v * l.weightMask[i]! : v)),
      b: l.bias.map((v, i) => (l.biasMask ? v * l.biasMask[i]! : v)),
    }));
    const [H, W, C] = [6, 6, 2];
    const x = (c: number, h: number, w: number) => xNhwc[(h * W + w) * C + c]!;
    const conv: number[] = []; // [3][4][4]
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++) {
          let s = eff[0]!.b[o]!;
          for (let c = 0; c < C; c++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) s += eff[0]!.w[((o * C + c) * 3 + ky) * 3 + kx]! * x(c, i + ky, j + kx);
          conv[(o * 4 + i) * 4 + j] = s;
        }
    const pooled: number[] = []; // C,H,W flatten of [3][2][2]
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++) {
          const at = (a: number, b: number) => conv[(o * 4 + a) * 4 + b]!;
          pooled[o * 4 + i * 2 + j] = Math.max(at(2 * i, 2 * j), at(2 * i, 2 * j + 1), at(2 * i + 1, 2 * j), at(2 * i + 1, 2 * j + 1));
        }
    const fc = (v: number[], l: { w: Float32Array; b: Float32Array }, nOut: number, relu: boolean) =>
      Array.from({ length: nOut }, (_, o) => {
        let s = l.b[o]!;
        for (let i = 0; i < v.length; i++) s += l.w[o * v.length + i]! * v[i]!;
        return relu ? Math.max(s, 0) : s;
      });
    return fc(fc(pooled, eff[1]!, 5, true), eff[2]!, 4, false);
  }

  function tinyLayers(rng: Rng, masked: boolean): CaffeLayerArrays[] {
    const sizes: [number, number][] = [[3 * 2 * 3 * 3, 3], [5 * 12, 5], [4 * 5, 4]];
    return sizes.map(([nw, nb]) => {
      const mask = (n: number) => Uint8Array.from({ length: n }, () => (rng.uniform() < 0.6 ? 1 : 0));
      return { weight: randomArray(rng, nw), bias: randomArray(rng, nb), ...(masked ? { weightMask: mask(nw), biasMask: mask(nb) } : {}) };
    });
  }

  function tfjsLogits(arch: Architecture, mapped: ReturnType<typeof caffeToTfjsParams>, x: Float32Array, n: number): Float32Array {
    const t = toTensors(arch, mapped.params, mapped.masks);
    try {
      return tf.tidy(() => forward(arch, t, tf.tensor4d(x, [n, 6, 6, 2])).dataSync() as Float32Array);
    } finally {
      disposeModelTensors(t);
    }
  }

  it('gives the same logits as a Caffe-layout forward, masks included; skipping the flatten permutation does not', async () => {
    await initBackend('cpu');
    const rng = new Rng('tiny-forward');
    const n = 5;
    const x = Float32Array.from({ length: n * 72 }, () => rng.uniform());
    for (const masked of [false, true]) {
      const layers = tinyLayers(rng, masked);
      const mapped = caffeToTfjsParams(tiny, layers);
      if (!masked) expect(mapped.masks.every((m) => m.weight.every((v) => v === 1) && m.bias.every((v) => v === 1))).toBe(true);
      const got = tfjsLogits(tiny, mapped, x, n);
      const skipped = tfjsLogits(tiny, caffeToTfjsParams(tiny, layers, { skipFlattenPermutation: true }), x, n);
      let maxErr = 0;
      let maxSkipDiff = 0;
      for (let i = 0; i < n; i++) {
        const ref = caffeForward(layers, x.subarray(i * 72, (i + 1) * 72));
        for (let c = 0; c < 4; c++) {
          maxErr = Math.max(maxErr, Math.abs(got[i * 4 + c]! - ref[c]!));
          maxSkipDiff = Math.max(maxSkipDiff, Math.abs(skipped[i * 4 + c]! - ref[c]!));
        }
      }
      expect(maxErr).toBeLessThan(1e-4);
      expect(maxSkipDiff).toBeGreaterThan(1e-2);
    }
  });
});

describe('importer checks', () => {
  let work: string;
  beforeAll(() => {
    fixtures();
    work = mkdtempSync(join(tmpdir(), 'prunus-import-'));
  });

  /** A writable copy of one fixture folder. */
  function copyFixture(folder: string, name = folder): string {
    const dst = join(work, 'src', name);
    cpSync(join(fixtures(), folder), dst, { recursive: true });
    for (const f of readdirSync(dst)) chmodSync(join(dst, f), 0o644);
    return dst;
  }
  const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, any>;
  const writeJson = (p: string, v: unknown) => writeFileSync(p, JSON.stringify(v));

  /** A fresh, empty parent folder; returns the --out path inside it. */
  function outPath(): string {
    const parent = mkdtempSync(join(work, 'out-'));
    return join(parent, 'model');
  }
  function expectNothingWritten(out: string): void {
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dirname(out))).toEqual([]);
  }
  function cli(args: string[]) {
    expect(existsSync(join(repoRoot, 'dist', 'src', 'cli.js')), 'dist/ missing: run npx tsc -p tsconfig.json first').toBe(true);
    return spawnSync(process.execPath, [CLI, ...args], { cwd: repoRoot, encoding: 'utf8' });
  }
  function expectRefused(r: ReturnType<typeof cli>, pattern: RegExp): void {
    expect(r.status, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^prunus: /);
    expect(lines[0]).toMatch(pattern);
  }

  it('imports a plain reference model with all-ones masks, and the compressed one with the released masks', () => {
    const ref = importCaffeManifest(join(fixtures(), 'lenet300100-reference'), 'lenet-300-100');
    expect(ref.model.masks.every((m) => m.weight.every((v) => v === 1) && m.bias.every((v) => v === 1))).toBe(true);
    expect(ref.meta.masks).toMatch(/all ones/);
    expect(ref.meta.sha256).toBe(readJson(join(fixtures(), 'lenet300100-reference', 'manifest.json')).sha256);
    const comp = importCaffeManifest(join(fixtures(), 'lenet300100-compressed'), 'lenet-300-100');
    expect(comp.model.masks.map((m) => m.weight.reduce((s, v) => s + v, 0))).toEqual([1744, 469, 102]);
    expect(comp.model.masks.map((m) => m.bias.reduce((s, v) => s + v, 0))).toEqual([26, 8, 0]);
    // ip1: dense weights transposed, masks too: kernel[i][o] = W[o][i].
    const caffe = readCaffeArrays(join(fixtures(), 'lenet300100-compressed'), 'lenet-300-100');
    const W = caffe.layers[0]!.weight;
    const M = caffe.layers[0]!.weightMask!;
    for (const [o, i] of [[0, 0], [299, 783], [17, 400], [123, 5]] as const) {
      expect(comp.model.params.layers[0]!.weight[i * 300 + o]).toBe(W[o * 784 + i]);
      expect(comp.model.masks[0]!.weight[i * 300 + o]).toBe(M[o * 784 + i]);
    }
  });

  it('accepts float32 masks (as in the original caffemodels) and gives the same model', () => {
    const dir = copyFixture('lenet300100-compressed', 'float-masks');
    const m = readJson(join(dir, 'manifest.json'));
    const bin = readFileSync(join(dir, 'weights.bin'));
    const parts: Buffer[] = [bin];
    let off = bin.length;
    for (const t of m.tensors) {
      if (t.dtype !== 'uint8') continue;
      const f = new Float32Array(t.count);
      for (let j = 0; j < t.count; j++) f[j] = bin[t.byteOffset + j]!;
      parts.push(Buffer.from(f.buffer));
      Object.assign(t, { dtype: 'float32', byteOffset: off, byteLength: 4 * t.count });
      off += 4 * t.count;
    }
    writeFileSync(join(dir, 'weights.bin'), Buffer.concat(parts));
    delete m.sha256;
    delete m.byteLength;
    writeJson(join(dir, 'manifest.json'), m);
    const a = importCaffeManifest(dir, 'lenet-300-100');
    const b = importCaffeManifest(join(fixtures(), 'lenet300100-compressed'), 'lenet-300-100');
    expect(a.model.masks).toEqual(b.model.masks);
    expect(a.model.params).toEqual(b.model.params);
  });

  it('refuses a truncated weights.bin (CLI: exit 2, one line, nothing written)', () => {
    const dir = copyFixture('lenet5-compressed', 'truncated');
    const bin = readFileSync(join(dir, 'weights.bin'));
    writeFileSync(join(dir, 'weights.bin'), bin.subarray(0, bin.length - 1000));
    const out = outPath();
    expectRefused(cli(['import', '--manifest', dir, '--model', 'lenet-5', '--out', out]), /truncated\/weights\.bin: 2154400 bytes, the manifest says 2155400 \(truncated\)/);
    expectNothingWritten(out);
    // Without the manifest's byteLength, the tensor ranges still catch it.
    const m = readJson(join(dir, 'manifest.json'));
    delete m.byteLength;
    delete m.sha256;
    writeJson(join(dir, 'manifest.json'), m);
    expect(() => importCaffeManifest(dir, 'lenet-5')).toThrow(/weights\.bin: 2154400 bytes, too short for ip2 weight_mask at bytes 2150390\.\.2155390/);
  });

  it('refuses a wrong shape in the manifest (CLI)', () => {
    const dir = copyFixture('lenet300100-reference', 'bad-shape');
    const m = readJson(join(dir, 'manifest.json'));
    m.tensors[2].shape = [300, 100];
    writeJson(join(dir, 'manifest.json'), m);
    const out = outPath();
    expectRefused(
      cli(['import', '--manifest', dir, '--model', 'lenet-300-100', '--out', out]),
      /bad-shape\/manifest\.json: tensor 2 \(ip2 weight\): shape \[300,100\] does not match lenet-300-100's ip2 \(expected \[100,300\]/,
    );
    expectNothingWritten(out);
  });

  it('refuses an unknown model name (CLI)', () => {
    const out = outPath();
    expectRefused(cli(['import', '--manifest', join(fixtures(), 'lenet5-compressed'), '--model', 'lenet-7', '--out', out]), /unknown model 'lenet-7'/);
    expectNothingWritten(out);
  });

  it('refuses a manifest for the other model, both ways', () => {
    const out = outPath();
    expectRefused(
      cli(['import', '--manifest', join(fixtures(), 'lenet5-compressed'), '--model', 'lenet-300-100', '--out', out]),
      /lenet5-compressed\/manifest\.json: layers conv1, conv2 not in lenet-300-100 .*another model/,
    );
    expectNothingWritten(out);
    // The other way round: LeNet-5 has ip1 and ip2 too, but no ip3.
    expect(() => importCaffeManifest(join(fixtures(), 'lenet300100-reference'), 'lenet-5')).toThrow(/layer ip3 not in lenet-5/);
  });

  it('refuses mask values other than 0/1, and a file whose sha256 does not match', () => {
    const dir = copyFixture('lenet5-compressed', 'bad-mask');
    const m = readJson(join(dir, 'manifest.json'));
    const conv2Mask = m.tensors.find((t: any) => t.layer === 'conv2' && t.role === 'weight_mask');
    const bin = readFileSync(join(dir, 'weights.bin'));
    bin[conv2Mask.byteOffset + 7] = 2;
    writeFileSync(join(dir, 'weights.bin'), bin);
    // With the manifest's sha256 the corruption is caught first.
    const out = outPath();
    expectRefused(cli(['import', '--manifest', dir, '--model', 'lenet-5', '--out', out]), /bad-mask\/weights\.bin: sha256 [0-9a-f]{64} does not match/);
    expectNothingWritten(out);
    delete m.sha256;
    writeJson(join(dir, 'manifest.json'), m);
    const out2 = outPath();
    expectRefused(cli(['import', '--manifest', dir, '--model', 'lenet-5', '--out', out2]), /tensor 10 \(conv2 weight_mask\): mask value 2 at index 7 \(masks must be 0 or 1\)/);
    expectNothingWritten(out2);
    expect(() => importCaffeManifest(dir, 'lenet-5')).toThrow(UsageError);
  });

  it('refuses inconsistent entries: bad byteLength, overlap, dtype, duplicate, missing bias, lone mask', () => {
    const base = join(fixtures(), 'lenet300100-compressed', 'manifest.json');
    const cases: [string, (m: any) => void, RegExp][] = [
      ['byteLength', (m) => (m.tensors[1].byteLength = 1196), /tensor 1 \(ip1 bias\): byteLength 1196, 300 float32 values take 1200/],
      ['overlap', (m) => (m.tensors[3].byteOffset = 1061900), /ip2 weight \(bytes 942000\.\.1062000\) overlaps ip2 bias/],
      ['dtype', (m) => (m.tensors[0].dtype = 'uint8'), /tensor 0 \(ip1 weight\): dtype uint8, weights and biases must be float32/],
      ['duplicate', (m) => m.tensors.push({ ...m.tensors[0] }), /ip1 has two 'weight' entries/],
      ['no-bias', (m) => m.tensors.splice(5, 1), /no 'bias' entry for layer ip3/],
      ['lone-mask', (m) => (m.tensors = m.tensors.filter((t: any) => !(t.layer === 'ip2' && t.role === 'bias_mask'))), /layer ip2 has a weight_mask but no bias_mask/],
      ['type', (m) => (m.tensors[0].type = 'CConvolution'), /Caffe type CConvolution but lenet-300-100's ip1 is an InnerProduct layer/],
      ['nonzero', (m) => (m.tensors[6].nonzeroInArray = 1745), /1744 non-zero values in the file, the manifest says 1745/],
      ['escape', (m) => (m.file = '../x/weights.bin'), /data file '\.\.\/x\/weights\.bin' must be a plain name/],
    ];
    for (const [name, edit, pattern] of cases) {
      const dir = join(work, 'src', `case-${name}`);
      mkdirSync(dir, { recursive: true });
      cpSync(join(fixtures(), 'lenet300100-compressed', 'weights.bin'), join(dir, 'weights.bin'));
      const m = readJson(base);
      edit(m);
      writeJson(join(dir, 'manifest.json'), m);
      expect(() => importCaffeManifest(dir, 'lenet-300-100'), name).toThrow(pattern);
      expect(() => importCaffeManifest(dir, 'lenet-300-100'), name).toThrow(UsageError);
    }
  });

  it('refuses to replace an --out folder that is not a prunus model, and replaces a model folder', () => {
    const parent = mkdtempSync(join(work, 'keep-'));
    writeFileSync(join(parent, 'precious.txt'), 'x');
    const r = cli(['import', '--manifest', join(fixtures(), 'lenet300100-compressed'), '--model', 'lenet-300-100', '--out', parent]);
    expectRefused(r, /is not a prunus model folder; refusing to replace it/);
    expect(readdirSync(parent)).toEqual(['precious.txt']);

    const out = outPath();
    for (const folder of ['lenet300100-reference', 'lenet300100-compressed']) {
      const ok = cli(['import', '--manifest', join(fixtures(), folder), '--model', 'lenet-300-100', '--out', out, '--json']);
      expect(ok.status, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout).nonZero).toBe(folder.endsWith('reference') ? 266610 : 2349);
    }
    const saved = loadModel(out);
    expect(saved.file.meta?.manifestModel).toBe('lenet300100-compressed');
    expect(saved.file.magnitudeStats).toHaveLength(3);
    expect(readdirSync(dirname(out))).toEqual(['model']);
  });
});
