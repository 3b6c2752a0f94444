/**
 * Export sizes and accuracy: how many bytes a pruned model takes on disk in each export format, and whether the
 * exported folder, loaded back with tfjs, still classifies the test set as prunus's own masked evaluation does.
 *
 *   npm run bench -- export [--json] [--runs DIR,DIR] [--dataset mnist|fashion-mnist]
 *
 * Models: the OLMP authors' released LeNet-300-100 and LeNet-5 (../shared/fixtures/olmp-released), then every model
 * or run folder given with --runs (anything loadModel reads). Rows per model, one per (format, quantisation):
 *   dense   the float32 weights at their unpruned size (parameters × 4 bytes; no topology), evaluated in memory;
 *   tfjs    the plain tfjs LayersModel export (model.json + weights.bin, zeros stored), read back from its folder;
 *   sparse  the sparse export (model.json + weights.sparse), read back with loadSparseModel;
 * tfjs and sparse with quantize none, float16, uint16 and uint8. rawBytes: the folder's files on disk, topology
 * included; gzipBytes: the sum of each file gzipped at level 9; ratioToDense: dense float32 bytes / rawBytes.
 * testAccuracy: argmax of tf predict (batches of 1000) over the whole test set; testAccuracyPrunus: prunus's forward
 * with the source model's masks, for comparison.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../foundation/errors.js';
import { DATASET_NAMES, loadDataset, type ImageSet } from '../foundation/data/datasets.js';
import { initBackend } from '../backends/backend.js';
import { maskedParams, type PrunableModel } from '../models/params.js';
import { countCorrect, disposeModelTensors, forward, toTensors } from '../models/forward.js';
import { loadModel } from '../models/io.js';
import { defaultFixturesDir, loadReleasedModel } from '../models/caffe/released.js';
import { layersModelFiles, writeLayersModelFiles } from '../models/tfjs/write.js';
import { loadLayersModelFiles } from '../models/tfjs/layers-model.js';
import { QUANTIZATIONS, type Quantization, type WeightGroup } from '../models/tfjs/weights.js';
import { encodeSparseModel, loadSparseModel, writeSparseModelFiles } from '../models/tfjs/sparse.js';

export interface ExportBenchRow {
  model: string;
  format: 'dense' | 'tfjs' | 'sparse';
  quantize: Quantization | 'none';
  rawBytes: number;
  gzipBytes: number;
  ratioToDense: number;
  testAccuracy: number;
  testCorrect: number;
  testAccuracyPrunus: number;
  testCorrectPrunus: number;
  images: number;
  dataset: string;
  backend: string;
}

interface Args {
  json: boolean;
  runs: string[];
  dataset: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, runs: [], dataset: 'mnist' };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${f} needs a value`);
      return v;
    };
    if (f === '--json') a.json = true;
    else if (f === '--runs') a.runs.push(...value().split(',').map((s) => s.trim()).filter(Boolean));
    else if (f === '--dataset') {
      const d = value();
      if (!(DATASET_NAMES as readonly string[]).includes(d)) throw new UsageError(`--dataset: unknown '${d}' (expected ${DATASET_NAMES.join(', ')})`);
      a.dataset = d;
    } else throw new UsageError(`bench export: unknown argument '${f}' (usage: npm run bench -- export [--json] [--runs DIR,DIR] [--dataset mnist|fashion-mnist])`);
  }
  return a;
}

const repoRoot = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(d, 'package.json'))) d = dirname(d);
  return d;
})();

const BATCH = 1000;

/** Correct argmax predictions of a tfjs model on the set, in batches. */
function predictCorrect(model: tf.LayersModel, set: ImageSet, numClasses: number): number {
  const inShape = model.inputs[0]!.shape.slice(1) as number[];
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  let correct = 0;
  for (let s = 0; s < set.count; s += BATCH) {
    const b = Math.min(BATCH, set.count - s);
    const logits = tf.tidy(() => model.predict(tf.tensor(set.images.subarray(s * per, (s + b) * per), [b, ...inShape])) as tf.Tensor);
    correct += countCorrect(logits.dataSync() as Float32Array, set.labels, numClasses, s);
    logits.dispose();
  }
  return correct;
}

/** Correct predictions of prunus's own forward pass on the masked model. */
function prunusCorrect(m: PrunableModel, set: ImageSet): number {
  const t = toTensors(m.arch, m.params, m.masks);
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  let correct = 0;
  for (let s = 0; s < set.count; s += BATCH) {
    const b = Math.min(BATCH, set.count - s);
    const logits = tf.tidy(() => forward(m.arch, t, tf.tensor4d(set.images.subarray(s * per, (s + b) * per), [b, ...set.shape])));
    correct += countCorrect(logits.dataSync() as Float32Array, set.labels, m.arch.numClasses, s);
    logits.dispose();
  }
  disposeModelTensors(t);
  return correct;
}

/** A tfjs LayersModel folder read back by hand: model.json and its manifest's shards, through tf.io.fromMemory. */
async function loadTfjsFolder(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: WeightGroup[] };
  const shards = json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p))));
  const data = Buffer.concat(shards);
  const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[];
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
}

/** Raw and gzipped (level 9, file by file) bytes of a folder's files. */
function folderBytes(dir: string): { raw: number; gzip: number } {
  let raw = 0;
  let gzip = 0;
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    raw += statSync(p).size;
    gzip += gzipSync(readFileSync(p), { level: 9 }).length;
  }
  return { raw, gzip };
}

async function benchModel(name: string, m: PrunableModel, set: ImageSet, dataset: string, backend: string, emit: (r: ExportBenchRow) => void): Promise<void> {
  const [H, W, C] = m.arch.inputShape;
  if (H !== set.shape[0] || W !== set.shape[1] || C !== set.shape[2]) {
    throw new UsageError(`${name}: input ${m.arch.inputShape.join('x')} does not fit ${dataset} images (${set.shape.join('x')}); pass --dataset`);
  }
  const masked = maskedParams(m.params, m.masks);
  const prunus = prunusCorrect(m, set);
  const row = (format: ExportBenchRow['format'], quantize: ExportBenchRow['quantize'], raw: number, gzip: number, denseRaw: number, correct: number): ExportBenchRow => ({
    model: name,
    format,
    quantize,
    rawBytes: raw,
    gzipBytes: gzip,
    ratioToDense: +(denseRaw / raw).toFixed(2),
    testAccuracy: correct / set.count,
    testCorrect: correct,
    testAccuracyPrunus: prunus / set.count,
    testCorrectPrunus: prunus,
    images: set.count,
    dataset,
    backend,
  });

  // dense: the float32 weights alone, at the unpruned size.
  const dense = layersModelFiles(m.arch, masked);
  const denseRaw = dense.weights.length;
  const denseModel = await loadLayersModelFiles(dense);
  emit(row('dense', 'none', denseRaw, gzipSync(dense.weights, { level: 9 }).length, denseRaw, predictCorrect(denseModel, set, m.arch.numClasses)));
  denseModel.dispose();

  for (const format of ['tfjs', 'sparse'] as const) {
    for (const quantize of QUANTIZATIONS) {
      const dir = mkdtempSync(join(tmpdir(), `prunus-export-${format}-`));
      try {
        if (format === 'tfjs') writeLayersModelFiles(dir, layersModelFiles(m.arch, masked, { quantize }));
        else writeSparseModelFiles(dir, encodeSparseModel(m.arch, m.params, m.masks, { quantize }));
        const { raw, gzip } = folderBytes(dir);
        const loaded = format === 'tfjs' ? await loadTfjsFolder(dir) : await loadSparseModel(dir);
        const correct = predictCorrect(loaded, set, m.arch.numClasses);
        loaded.dispose();
        emit(row(format, quantize, raw, gzip, denseRaw, correct));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
}

export async function run(args: string[]): Promise<void> {
  const a = parseArgs(args);
  const backend = (await initBackend('wasm')).name;
  const set = loadDataset(a.dataset, { limit: { train: 1, validation: 1 } }).test;
  const fixtures = defaultFixturesDir(repoRoot);
  const models: [string, () => PrunableModel][] = [
    ['olmp-released/lenet-300-100', () => loadReleasedModel(fixtures, 'lenet300100-compressed')],
    ['olmp-released/lenet-5', () => loadReleasedModel(fixtures, 'lenet5-compressed')],
    ...a.runs.map((dir): [string, () => PrunableModel] => [dir, () => loadModel(dir).model]),
  ];
  if (!a.json) {
    console.log(`export sizes and ${a.dataset} test accuracy (${set.count} images), backend ${backend}`);
    console.log(`${'model'.padEnd(28)} ${'format'.padEnd(6)} ${'quantize'.padEnd(8)} ${'raw B'.padStart(9)} ${'gzip B'.padStart(9)} ${'x dense'.padStart(8)} ${'acc %'.padStart(7)} ${'prunus %'.padStart(8)}`);
  }
  for (const [name, load] of models) {
    await benchModel(name, load(), set, a.dataset, backend, (r) => {
      if (a.json) console.log(JSON.stringify(r));
      else
        console.log(
          `${r.model.padEnd(28)} ${r.format.padEnd(6)} ${r.quantize.padEnd(8)} ${String(r.rawBytes).padStart(9)} ${String(r.gzipBytes).padStart(9)} ${r.ratioToDense.toFixed(1).padStart(8)} ${(100 * r.testAccuracy).toFixed(2).padStart(7)} ${(100 * r.testAccuracyPrunus).toFixed(2).padStart(8)}`,
        );
    });
  }
}
