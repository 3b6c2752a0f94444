/**
 * The OLMP authors' released LeNet models (IdiosyncraticDragon/OLMP @ e0978d4, converted in
 * ../shared/fixtures/olmp-released): their published figures as data, and the same figures measured by prunus.
 * `prunus reproduce` prints the measured rows as the "released model" line of its table.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { PrunableModel } from '../../models/params.js';
import type { MagnitudeStats } from '../../models/masks.js';
import { initBackend, parseBackendName, backendRecord } from '../../backends/backend.js';
import { loadDataset } from '../../foundation/data/datasets.js';
import { UsageError } from '../../foundation/errors.js';
import { importCaffeManifest } from '../../models/caffe/manifest.js';
import { evaluateModel, type LayerSize } from './evaluate.js';

export type ReleasedModelName = 'lenet-300-100' | 'lenet-5';
export type ReleasedVariant = 'reference' | 'compressed';

export interface ReleasedFigures {
  model: ReleasedModelName;
  variant: ReleasedVariant;
  /** Fixture folder under olmp-released/. */
  folder: string;
  /** File in the OLMP repository. */
  original: string;
  testImages: number;
  correct: number;
  accuracy: number;
  error: number;
  meanLoss: number;
  nonZero: number;
  params: number;
  /** params / nonZero, to two decimals as published. */
  compression: number;
  layers: LayerSize[];
}

function layer(name: string, nonZeroWeights: number, weights: number, nonZeroBiases: number, biases: number): LayerSize {
  return { name, nonZeroWeights, weights, nonZeroBiases, biases, nonZero: nonZeroWeights + nonZeroBiases, params: weights + biases };
}

const dense = (name: string, weights: number, biases: number): LayerSize => layer(name, weights, weights, biases, biases);

/** The fixtures README's "Verified figures" (MNIST t10k, masks applied; non-zeros = effective weights + biases). */
export const RELEASED_FIGURES: readonly ReleasedFigures[] = [
  {
    model: 'lenet-300-100',
    variant: 'reference',
    folder: 'lenet300100-reference',
    original: 'models/lenet300100/lenet300100_iter_10000.caffemodel',
    testImages: 10000,
    correct: 9773,
    accuracy: 0.9773,
    error: 0.0227,
    meanLoss: 0.0731,
    nonZero: 266610,
    params: 266610,
    compression: 1,
    layers: [dense('ip1', 235200, 300), dense('ip2', 30000, 100), dense('ip3', 1000, 10)],
  },
  {
    model: 'lenet-300-100',
    variant: 'compressed',
    folder: 'lenet300100-compressed',
    original: 'models/lenet300100/compressed_lenet300100.caffemodel',
    testImages: 10000,
    correct: 9782,
    accuracy: 0.9782,
    error: 0.0218,
    meanLoss: 0.0752,
    nonZero: 2349,
    params: 266610,
    compression: 113.5,
    layers: [layer('ip1', 1744, 235200, 26, 300), layer('ip2', 469, 30000, 8, 100), layer('ip3', 102, 1000, 0, 10)],
  },
  {
    model: 'lenet-5',
    variant: 'reference',
    folder: 'lenet5-reference',
    original: 'models/lenet5/caffe_lenet5_original.caffemodel',
    testImages: 10000,
    correct: 9909,
    accuracy: 0.9909,
    error: 0.0091,
    meanLoss: 0.0292,
    nonZero: 431080,
    params: 431080,
    compression: 1,
    layers: [dense('conv1', 500, 20), dense('conv2', 25000, 50), dense('ip1', 400000, 500), dense('ip2', 5000, 10)],
  },
  {
    model: 'lenet-5',
    variant: 'compressed',
    folder: 'lenet5-compressed',
    original: 'models/lenet5/compressed_lenet5.caffemodel',
    testImages: 10000,
    correct: 9909,
    accuracy: 0.9909,
    error: 0.0091,
    meanLoss: 0.0321,
    nonZero: 1448,
    params: 431080,
    compression: 297.71,
    layers: [layer('conv1', 68, 500, 5, 20), layer('conv2', 189, 25000, 4, 50), layer('ip1', 813, 400000, 0, 500), layer('ip2', 369, 5000, 0, 10)],
  },
];

/** Published figures of one released model. */
export function releasedFigures(model: ReleasedModelName, variant: ReleasedVariant): ReleasedFigures {
  return RELEASED_FIGURES.find((f) => f.model === model && f.variant === variant)!;
}

function fixtureDir(fixturesDir: string, folder: string): string {
  const dir = join(fixturesDir, folder);
  if (!existsSync(join(dir, 'manifest.json'))) throw new UsageError(`${dir}: no manifest.json (is ${fixturesDir} the olmp-released fixtures folder?)`);
  return dir;
}

/** One released model measured by prunus over the MNIST test set. */
/** What prunus measures of a released model: the published fields but the OLMP file name, with the image count. */
export interface MeasuredReleased extends Omit<ReleasedFigures, 'original' | 'testImages'> {
  count: number;
  backend: Record<string, unknown>;
}

/**
 * Imports and evaluates the four released models (fixtures folder holding lenet300100-reference, ...) on `backend`
 * (auto | webgpu | tensorflow | wasm | cpu; activates it), over the MNIST test set in file order.
 */
export async function measureReleased(fixturesDir: string, backend = 'wasm', opts: { dataDir?: string } = {}): Promise<MeasuredReleased[]> {
  const dirs = RELEASED_FIGURES.map((f) => fixtureDir(fixturesDir, f.folder));
  const info = await initBackend(parseBackendName(backend));
  const test = loadDataset('mnist', opts.dataDir ? { dataDir: opts.dataDir } : {}).test;
  return RELEASED_FIGURES.map((f, i) => {
    const { model } = importCaffeManifest(dirs[i]!, f.model);
    const r = evaluateModel(model, test);
    return {
      model: f.model,
      variant: f.variant,
      folder: f.folder,
      correct: r.correct,
      count: r.count,
      accuracy: r.accuracy,
      error: r.error,
      meanLoss: r.meanLoss,
      nonZero: r.nonZero,
      params: r.params,
      compression: r.compression,
      layers: r.layers,
      backend: backendRecord(info),
    };
  });
}

/** Differences between measured rows and the published figures (empty when they agree; loss to ±0.0005, compression to ±0.005). */
export function compareWithPublished(rows: MeasuredReleased[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    const p = releasedFigures(r.model, r.variant);
    const tag = `${r.model} ${r.variant}`;
    if (r.count !== p.testImages) out.push(`${tag}: ${r.count} test images, published ${p.testImages}`);
    if (r.correct !== p.correct) out.push(`${tag}: ${r.correct} correct, published ${p.correct}`);
    if (Math.abs(r.meanLoss - p.meanLoss) > 5e-4) out.push(`${tag}: mean loss ${r.meanLoss.toFixed(4)}, published ${p.meanLoss}`);
    if (r.nonZero !== p.nonZero) out.push(`${tag}: ${r.nonZero} non-zeros, published ${p.nonZero}`);
    if (Math.abs(r.compression - p.compression) > 5e-3) out.push(`${tag}: compression ${r.compression.toFixed(2)}x, published ${p.compression}x`);
    p.layers.forEach((pl, k) => {
      const ml = r.layers[k];
      if (!ml || ml.name !== pl.name || ml.nonZeroWeights !== pl.nonZeroWeights || ml.nonZeroBiases !== pl.nonZeroBiases) {
        out.push(`${tag}: layer ${pl.name} ${ml ? `${ml.nonZeroWeights}+${ml.nonZeroBiases}` : 'missing'}, published ${pl.nonZeroWeights}+${pl.nonZeroBiases}`);
      }
    });
  }
  return out;
}

export interface ReleasedBenchModel {
  name: ReleasedModelName;
  /** The released compressed model: its dense weights with the authors' masks. */
  model: PrunableModel;
  /** DNS statistics (μ, σ per layer) of the reference model's weights: the frozen values OLMP prunes with (spec §2). */
  stats: MagnitudeStats[];
  /** The reference model's dense weights (tfjs layouts), e.g. to apply the released masks to them. */
  reference: PrunableModel['params'];
}

/** The two released compressed models with their real masks, plus the reference weights and statistics, for benchmarks. */
export function loadReleasedForBench(fixturesDir: string): ReleasedBenchModel[] {
  return (['lenet-300-100', 'lenet-5'] as const).map((name) => {
    const compressed = importCaffeManifest(fixtureDir(fixturesDir, releasedFigures(name, 'compressed').folder), name);
    const reference = importCaffeManifest(fixtureDir(fixturesDir, releasedFigures(name, 'reference').folder), name);
    return { name, model: compressed.model, stats: reference.magnitudeStats, reference: reference.model.params };
  });
}
