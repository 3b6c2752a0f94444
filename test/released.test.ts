/**
 * Cross-check against the OLMP authors' released LeNets (../shared/fixtures/olmp-released): imported and evaluated by
 * our own code on the float32 wasm backend over the full MNIST test set, they must give the published figures exactly.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../backends/backend.js';
import { loadDataset, head, type ImageSet } from '../foundation/data/datasets.js';
import { maskedParams } from '../models/params.js';
import { importCaffeManifest } from '../models/caffe/manifest.js';
import { evaluateAccuracy } from '../src/olmp-released/evaluate.js';
import {
  RELEASED_FIGURES,
  measureReleased,
  compareWithPublished,
  loadReleasedForBench,
  type MeasuredReleased,
} from '../src/olmp-released/figures.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = resolve(repoRoot, '../shared/fixtures/olmp-released');

function fixtures(): string {
  if (!existsSync(join(FIXTURES, 'README.md'))) {
    throw new Error(`OLMP released-model fixtures missing: expected ${FIXTURES} (the shared folder beside the repository)`);
  }
  return FIXTURES;
}

/** The fixtures README's per-layer tables: [name, non-zero weights, non-zero biases]. */
const README_LAYERS: Record<string, [string, number, number][]> = {
  'lenet-300-100': [
    ['ip1', 1744, 26],
    ['ip2', 469, 8],
    ['ip3', 102, 0],
  ],
  'lenet-5': [
    ['conv1', 68, 5],
    ['conv2', 189, 4],
    ['ip1', 813, 0],
    ['ip2', 369, 0],
  ],
};

describe('OLMP released models', () => {
  let rows: MeasuredReleased[];
  let test: ImageSet;

  beforeAll(async () => {
    await initBackend('wasm');
    rows = await measureReleased(fixtures(), 'wasm');
    test = loadDataset('mnist').test;
  });

  const row = (model: string, variant: string) => rows.find((r) => r.model === model && r.variant === variant)!;

  it('the fixtures folder is present', () => {
    expect(existsSync(join(FIXTURES, 'README.md')), `missing ${FIXTURES}`).toBe(true);
  });

  it('give the published accuracy on all 10,000 test images (wasm, float32)', () => {
    expect(rows.map((r) => [r.model, r.variant, r.count, r.correct])).toEqual([
      ['lenet-300-100', 'reference', 10000, 9773],
      ['lenet-300-100', 'compressed', 10000, 9782],
      ['lenet-5', 'reference', 10000, 9909],
      ['lenet-5', 'compressed', 10000, 9909],
    ]);
    for (const r of rows) expect(r.backend.name).toBe('wasm');
    expect(row('lenet-5', 'compressed').accuracy).toBe(0.9909);
  });

  it('give the published non-zeros, compression and mean loss', () => {
    expect(row('lenet-300-100', 'reference').nonZero).toBe(266610);
    expect(row('lenet-300-100', 'compressed').nonZero).toBe(2349);
    expect(row('lenet-300-100', 'compressed').compression.toFixed(2)).toBe('113.50');
    expect(row('lenet-5', 'reference').nonZero).toBe(431080);
    expect(row('lenet-5', 'compressed').nonZero).toBe(1448);
    expect(row('lenet-5', 'compressed').compression.toFixed(2)).toBe('297.71');
    const losses = rows.map((r) => r.meanLoss);
    [0.0731, 0.0752, 0.0292, 0.0321].forEach((l, i) => expect(Math.abs(losses[i]! - l)).toBeLessThan(5e-4));
    expect(compareWithPublished(rows)).toEqual([]);
  });

  it("per-layer non-zeros equal the README's tables (mask counts and effective non-zero parameters)", () => {
    for (const model of ['lenet-300-100', 'lenet-5'] as const) {
      const r = row(model, 'compressed');
      expect(r.layers.map((l) => [l.name, l.nonZeroWeights, l.nonZeroBiases])).toEqual(README_LAYERS[model]);
      const folder = model === 'lenet-5' ? 'lenet5-compressed' : 'lenet300100-compressed';
      const { model: m } = importCaffeManifest(join(fixtures(), folder), model);
      const eff = maskedParams(m.params, m.masks).layers.map((l) => [l.weight.filter((v) => v !== 0).length, l.bias.filter((v) => v !== 0).length]);
      expect(eff).toEqual(README_LAYERS[model]!.map(([, w, b]) => [w, b]));
    }
  });

  it("agree with each manifest's own verified figures and with the figures module", () => {
    for (const f of RELEASED_FIGURES) {
      const v = JSON.parse(readFileSync(join(fixtures(), f.folder, 'manifest.json'), 'utf8')).verified;
      const r = row(f.model, f.variant);
      expect([r.correct, r.nonZero, r.params]).toEqual([v.correct, v.nonzeroTotal, v.parameterTotal]);
      expect([f.correct, f.nonZero, f.params, f.compression]).toEqual([v.correct, v.nonzeroTotal, v.parameterTotal, v.compressionRatio]);
      expect(Object.fromEntries(r.layers.map((l) => [l.name, l.nonZero]))).toEqual(v.nonzeroPerLayer);
      expect(Math.abs(r.meanLoss - v.lossMeanCrossEntropy)).toBeLessThan(5e-5);
    }
  });

  it("reference weights give the spec's frozen DNS statistics (olmp.md §2)", () => {
    const spec: Record<string, [number, number][]> = {
      'lenet-300-100': [[0.024497, 0.017468], [0.047069, 0.034508], [0.188911, 0.141738]],
      'lenet-5': [[0.186034, 0.116885], [0.033996, 0.024249], [0.021867, 0.013425], [0.057739, 0.042102]],
    };
    const bench = loadReleasedForBench(fixtures());
    expect(bench.map((b) => b.name)).toEqual(['lenet-300-100', 'lenet-5']);
    for (const b of bench) {
      const want = spec[b.name]!;
      expect(b.stats).toHaveLength(want.length);
      b.stats.forEach((s, k) => {
        expect(Math.abs(s.mu - want[k]![0])).toBeLessThan(1e-6);
        expect(Math.abs(s.sigma - want[k]![1])).toBeLessThan(1e-6);
      });
      // The bench models are the compressed ones, with their real masks.
      const total = b.model.masks.reduce((s, m) => s + m.weight.reduce((a, v) => a + v, 0) + m.bias.reduce((a, v) => a + v, 0), 0);
      expect(total).toBe(b.name === 'lenet-5' ? 1448 : 2349);
      expect(b.reference.layers.map((l) => l.weight.length)).toEqual(b.model.params.layers.map((l) => l.weight.length));
    }
  });

  it('LeNet-5 collapses without the ip1 input permutation (C,H,W vs H,W,C flatten)', () => {
    const subset = head(test, 2000);
    for (const folder of ['lenet5-compressed', 'lenet5-reference']) {
      const right = importCaffeManifest(join(fixtures(), folder), 'lenet-5');
      const wrong = importCaffeManifest(join(fixtures(), folder), 'lenet-5', { skipFlattenPermutation: true });
      expect(evaluateAccuracy(right.model, subset).accuracy).toBeGreaterThan(0.98);
      expect(evaluateAccuracy(wrong.model, subset).accuracy).toBeLessThan(0.2);
    }
  });

  it('CLI: import the compressed LeNet-5, then eval --json prints accuracy 0.9909 and 1448 non-zeros', () => {
    expect(existsSync(join(repoRoot, 'dist', 'src', 'cli.js')), 'dist/ missing: run npx tsc -p tsconfig.json first').toBe(true);
    fixtures();
    const out = join(mkdtempSync(join(tmpdir(), 'prunus-released-')), 'lenet5');
    const node = (args: string[]) => spawnSync(process.execPath, ['bin/prunus.js', ...args], { cwd: repoRoot, encoding: 'utf8' });
    const imp = node(['import', '--manifest', '../shared/fixtures/olmp-released/lenet5-compressed', '--model', 'lenet-5', '--out', out]);
    expect(imp.status, imp.stderr).toBe(0);
    const ev = node(['eval', out, '--json']);
    expect(ev.status, ev.stderr).toBe(0);
    const report = JSON.parse(ev.stdout);
    expect(report.accuracy).toBe(0.9909);
    expect(report.correct).toBe(9909);
    expect(report.nonZero).toBe(1448);
    expect(report.layers.map((l: { nonZero: number }) => l.nonZero)).toEqual([73, 193, 813, 369]);
    expect(report.compression).toBeCloseTo(297.707, 3);
    expect(report.meta.sha256).toBe('2fa4625af8b118cf416a849e1f5d20de083eb7f6c9a599f213bf418ca39bf64c');
  });

  it('CLI: eval reads a run folder holding model/, prints a table, and refuses bad flags with exit 2', () => {
    const run = mkdtempSync(join(tmpdir(), 'prunus-released-run-'));
    const node = (args: string[]) => spawnSync(process.execPath, ['bin/prunus.js', ...args], { cwd: repoRoot, encoding: 'utf8' });
    const imp = node(['import', '--manifest', join(fixtures(), 'lenet300100-compressed'), '--model', 'lenet-300-100', '--out', join(run, 'model')]);
    expect(imp.status, imp.stderr).toBe(0);
    const ev = node(['eval', run, '--backend', 'wasm']);
    expect(ev.status, ev.stderr).toBe(0);
    expect(ev.stdout).toMatch(/on mnist test, backend wasm/);
    expect(ev.stdout).toMatch(/accuracy 97\.82% \(9782\/10000\), error 2\.18%, mean loss 0\.0752/);
    expect(ev.stdout).toMatch(/^ip1 +1744 \/ 235200 +26 \/ 300 +1770 +235500/m);
    expect(ev.stdout).toMatch(/^total +2349 +266610 +113\.50x$/m);
    for (const bad of [['--split', 'train'], ['--dataset', 'cifar'], ['--backend', 'gpu'], ['--bogus']]) {
      const r = node(['eval', run, ...bad]);
      expect(r.status, bad.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
