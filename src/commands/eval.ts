import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseFlags, COMMON_FLAGS } from '../cli-args.js';
import { UsageError, parseNumber } from '../../foundation/errors.js';
import { initBackend, parseBackendName, backendRecord, describeBackend } from '../../backends/backend.js';
import { loadModel } from '../../models/io.js';
import { loadDataset } from '../../foundation/data/datasets.js';
import { fitToData } from '../../models/source.js';
import { evaluateModel } from '../olmp-released/evaluate.js';

export const summary = 'prunus eval: accuracy, loss and size of a saved model (run folder, model folder or model.json) on a test or validation set';
export const usage = `usage: prunus eval <run-dir|model-dir|model.json> [--dataset D] [--data-dir D] [--split test|validation]
                   [--split-seed N] [--input-scale X] [--input-offset Y] [--backend B] [--json]

Evaluates the masked model in batches of 1000 on the chosen backend and reports accuracy (correct/count), mean
cross-entropy loss, non-zeros per layer (weights, biases), total non-zeros, parameters and compression.
  --dataset      mnist (default), fashion-mnist, a folder of IDX or .npy files, or an .npz; --data-dir reads the four
                 IDX files of mnist / fashion-mnist from D instead
  --input-scale, --input-offset
                 pixels reach the model as raw × scale + offset (default: the run's own, else 1/256 and 0)
  --split        test (default: the 10,000 test images in file order) or validation (the seeded 6,000 held out of training)
  --split-seed   seed of the train/validation split (default 0, as every prunus run)
  --json         one JSON object on stdout instead of the table`;

const FLAGS = {
  ...COMMON_FLAGS,
  dataset: { type: 'string', default: 'mnist' },
  'data-dir': { type: 'string' },
  split: { type: 'string', default: 'test' },
  'split-seed': { type: 'string' },
  'input-scale': { type: 'string' },
  'input-offset': { type: 'string' },
} as const;

/** The input scaling a run recorded (its config.json options), when `path` is a run folder. */
function runInputScaling(path: string): { inputScale?: number; inputOffset?: number } {
  const cfg = join(path, 'config.json');
  if (!existsSync(cfg)) return {};
  try {
    const c = JSON.parse(readFileSync(cfg, 'utf8')) as { options?: { inputScale?: unknown; inputOffset?: unknown }; inputScale?: unknown; inputOffset?: unknown };
    const o = c.options ?? c;
    return {
      ...(typeof o.inputScale === 'number' ? { inputScale: o.inputScale } : {}),
      ...(typeof o.inputOffset === 'number' ? { inputOffset: o.inputOffset } : {}),
    };
  } catch {
    return {};
  }
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'eval');
  if (positionals.length !== 1) throw new UsageError(`eval: give one run or model folder${positionals.length > 1 ? ` (got ${positionals.length} arguments)` : ''}`);
  const backendName = parseBackendName(v.backend);
  const split = v.split;
  if (split !== 'test' && split !== 'validation') throw new UsageError(`eval: --split must be test or validation, got '${split}'`);
  const splitSeed = v['split-seed'] === undefined ? 0 : parseNumber('--split-seed', v['split-seed'], { integer: true, min: 0 });
  const path = resolve(positionals[0]!);
  const loaded = loadModel(path);
  const file = loaded.file;
  const recorded = runInputScaling(path);
  const inputScale = v['input-scale'] !== undefined ? parseNumber('--input-scale', v['input-scale'], { min: 0, exclusiveMin: true }) : (recorded.inputScale ?? 1 / 256);
  const inputOffset = v['input-offset'] !== undefined ? parseNumber('--input-offset', v['input-offset']) : (recorded.inputOffset ?? 0);
  const data = loadDataset(v.dataset, { ...(v['data-dir'] ? { dataDir: v['data-dir'] } : {}), splitSeed, inputScale, inputOffset });
  const model = { ...loaded.model, arch: fitToData(loaded.model.arch, { shape: data.test.shape, numClasses: data.numClasses, name: data.name }, path) };
  const set = split === 'test' ? data.test : data.validation;
  const backend = await initBackend(backendName);
  const t0 = performance.now();
  const r = evaluateModel(model, set);
  const wallTimeMs = performance.now() - t0;
  if (v.json) {
    const report = {
      path,
      model: model.arch.name,
      dataset: data.name,
      dataDir: data.dir,
      split,
      ...(split === 'validation' ? { splitSeed } : {}),
      inputScale,
      inputOffset,
      count: r.count,
      correct: r.correct,
      accuracy: r.accuracy,
      error: r.error,
      meanLoss: r.meanLoss,
      layers: r.layers,
      nonZero: r.nonZero,
      params: r.params,
      compression: r.compression,
      macs: r.macs,
      denseMacs: r.denseMacs,
      backend: backendRecord(backend),
      wallTimeMs,
      ...(file.meta ? { meta: file.meta } : {}),
    };
    process.stdout.write(JSON.stringify(report) + '\n');
    return 0;
  }
  const rows: string[][] = [
    ['layer', 'weights', 'biases', 'non-zero', 'params', 'density'],
    ...r.layers.map((l) => [l.name, `${l.nonZeroWeights} / ${l.weights}`, `${l.nonZeroBiases} / ${l.biases}`, String(l.nonZero), String(l.params), pct(l.nonZero / l.params)]),
    ['total', '', '', String(r.nonZero), String(r.params), `${r.compression.toFixed(2)}x`],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const table = rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  const lines = [
    `${model.arch.name} (${path}) on ${data.name} ${split}${split === 'validation' ? ` (split seed ${splitSeed})` : ''}, ${describeBackend(backend)}`,
    `accuracy ${pct(r.accuracy)} (${r.correct}/${r.count}), error ${pct(r.error)}, mean loss ${r.meanLoss.toFixed(4)}, ${(wallTimeMs / 1000).toFixed(1)} s`,
    ...table,
    `compression ${r.compression.toFixed(2)}x (${r.params} / ${r.nonZero}), MACs per image ${r.macs} of ${r.denseMacs}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
