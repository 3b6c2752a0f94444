/**
 * `prunus train`: trains a reference model from a seeded Xavier initialisation (or continues training a model given as
 * a TensorFlow.js LayersModel, from its weights) with Caffe's SGD (src/train), evaluates
 * it on the validation and test sets and writes a run folder atomically (src/run-dir.ts):
 *   config.json   resolved config (seed, split seed, solver, backend record, versions)
 *   metrics.json  progress records (iteration, mean loss over the interval, lr, images/s) and final evaluations
 *   report.json   the final report (also printed as one JSON object on stdout with --json)
 *   model/        the trained model (models/io.ts: a TensorFlow.js LayersModel, all-ones masks)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags, COMMON_FLAGS } from '../cli-args.js';
import { UsageError, check, parseNumber } from '../../foundation/errors.js';
import { modelNames } from '../../models/architectures.js';
import { resolveModel, fitToData } from '../../models/source.js';
import { initParams, onesMasks } from '../../models/params.js';
import { writeModelFiles } from '../../models/io.js';
import { loadDataset, type TrainOrder } from '../../foundation/data/datasets.js';
import { initBackend, parseBackendName, describeBackend, backendRecord } from '../../backends/backend.js';
import { Rng } from '../../foundation/rng.js';
import { Trainer, evaluateAccuracy, resolveTrainThreads, type EvalResult } from '../train/index.js';
import { resolveRunDir, buildRunDir, writeJson, runVersions } from '../run-dir.js';

export const summary = 'prunus train: train a reference model with Caffe SGD (or continue training a model file) and write a run folder';
export const usage = `usage: prunus train --model lenet-300-100|lenet-5|PATH/model.json [options]

  --model M            architecture (${modelNames().join(', ')}), or a TensorFlow.js model.json to continue training
  --seed S             seed of the Xavier initialisation (integer >= 0, default 1)
  --iterations K       SGD iterations (default 10000, as the Caffe references)
  --dataset D          mnist (default) | fashion-mnist | a folder of IDX or .npy files | an .npz
  --input-scale X      pixels reach the model as raw × X + Y (default 1/256)   --input-offset Y (default 0)
  --data-dir DIR       folder with the four IDX files (overrides the dataset's location)
  --split-seed N       seed of the 54k/6k train/validation split (default 0)
  --train-order O      split: train on the split's 54k in its seeded order (default); file: all 60k training
                       images in file order, as Caffe read them for the OLMP references (validation not held out)
  --batch N            batch size (default 64)
  --lr-base X          base learning rate of the "inv" policy (default 0.01)
  --train-shards K     cut each batch into K shards whose gradients are summed in a fixed order (default 1: the
                       whole batch at once); results depend on K, not on the threads
  --train-threads N    threads computing the shards (default: one per core, at most K; results do not change)
  --progress-every N   a progress line on stderr every N iterations (default 500; none with --json)
  --out DIR            run folder (default results/train-<model>-s<seed>-<UTC timestamp>; must not exist)
  --backend B          auto | webgpu | tensorflow | wasm | cpu (default auto)
  --json               print only the final report, as one JSON object, on stdout

Solver (spec olmp.md §1): momentum 0.9, weight decay 5e-4, bias lr x2, lr = base·(1+1e-4·t)^-0.75, softmax loss.`;

const FLAGS = {
  ...COMMON_FLAGS,
  model: { type: 'string' },
  seed: { type: 'string', default: '1' },
  iterations: { type: 'string', default: '10000' },
  dataset: { type: 'string', default: 'mnist' },
  'data-dir': { type: 'string' },
  'split-seed': { type: 'string', default: '0' },
  'train-order': { type: 'string', default: 'split' },
  batch: { type: 'string', default: '64' },
  'lr-base': { type: 'string', default: '0.01' },
  'train-shards': { type: 'string', default: '1' },
  'train-threads': { type: 'string', default: '0' },
  'progress-every': { type: 'string', default: '500' },
  out: { type: 'string' },
  'input-scale': { type: 'string', default: String(1 / 256) },
  'input-offset': { type: 'string', default: '0' },
} as const;

export interface TrainReport {
  command: 'train';
  model: string;
  dataset: string;
  seed: number;
  splitSeed: number;
  trainOrder: TrainOrder;
  backend: Record<string, unknown>;
  iterations: number;
  batchSize: number;
  lrBase: number;
  trainShards: number;
  trainThreads: number;
  finalLoss: number;
  validation: EvalResult;
  test: EvalResult;
  validationAccuracy: number;
  testAccuracy: number;
  trainMsPerStep: number;
  wallTimeMs: number;
  outDir: string;
}

export async function run(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const { values, positionals } = parseFlags(argv, FLAGS, 'train');
  check(positionals.length === 0, `train: unexpected argument '${positionals[0]}'`);
  check(values.model !== undefined, `train: --model is required (${modelNames().join(', ')}, or a path to a TensorFlow.js model.json)`);
  const model = resolveModel(values.model);
  const inputScale = parseNumber('--input-scale', values['input-scale'], { min: 0, exclusiveMin: true });
  const inputOffset = parseNumber('--input-offset', values['input-offset']);
  const seed = parseNumber('--seed', values.seed, { min: 0, max: 2 ** 32 - 1, integer: true });
  const iterations = parseNumber('--iterations', values.iterations, { min: 1, max: 1e9, integer: true });
  const splitSeed = parseNumber('--split-seed', values['split-seed'], { min: 0, max: 2 ** 32 - 1, integer: true });
  const batchSize = parseNumber('--batch', values.batch, { min: 1, max: 60000, integer: true });
  const lrBase = parseNumber('--lr-base', values['lr-base'], { min: 0, exclusiveMin: true, max: 100 });
  const trainShards = parseNumber('--train-shards', values['train-shards'], { min: 1, max: 256, integer: true });
  const trainThreads = resolveTrainThreads(parseNumber('--train-threads', values['train-threads'], { min: 0, max: 256, integer: true }));
  const progressEvery = parseNumber('--progress-every', values['progress-every'], { min: 1, integer: true });
  const backendName = parseBackendName(values.backend);
  const dataset = values.dataset;
  const json = values.json;
  const started = new Date();
  const outDir = resolveRunDir(values.out, 'train', model.arch.name.replace(/[^A-Za-z0-9_.-]/g, '_'), seed, started);

  const trainOrder = values['train-order'] as TrainOrder;
  const data = loadDataset(dataset, { ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}), splitSeed, trainOrder, inputScale, inputOffset });
  check(data.train.count > 0, `${dataset}: the training split is empty`);
  const arch = fitToData(model.arch, { shape: data.train.shape, numClasses: data.numClasses, name: data.name }, values.model);

  const backend = await initBackend(backendName);
  process.stderr.write(`prunus train: ${describeBackend(backend, values.verbose)}\n`);

  const params = model.params ?? initParams(arch, new Rng(`reference:${seed}`));
  const trainer = new Trainer(arch, params, data.train, { solver: { batchSize, baseLr: lrBase }, shards: trainShards, threads: trainThreads });
  const progress: { iteration: number; loss: number; lr: number; imagesPerSec: number; elapsedMs: number }[] = [];
  let finalLoss = NaN;
  let trainMs = 0;
  try {
    let lossSum = 0;
    let lossN = 0;
    let lastT = performance.now();
    let lastIter = 0;
    const trainStart = lastT;
    for (let i = 1; i <= iterations; i++) {
      const { loss } = trainer.step();
      if (!Number.isFinite(loss)) throw new UsageError(`training diverged at iteration ${i} (loss ${loss}); try a smaller --lr-base`);
      lossSum += loss;
      lossN++;
      finalLoss = loss;
      if (i % progressEvery === 0 || i === iterations) {
        const now = performance.now();
        const rec = {
          iteration: i,
          loss: lossSum / lossN,
          lr: trainer.lr(i - 1),
          imagesPerSec: ((i - lastIter) * batchSize) / ((now - lastT) / 1000),
          elapsedMs: Math.round(now - t0),
        };
        progress.push(rec);
        if (!json) {
          process.stderr.write(`iter ${i}/${iterations} loss ${rec.loss.toFixed(4)} lr ${rec.lr.toPrecision(4)} ${Math.round(rec.imagesPerSec)} img/s\n`);
        }
        lossSum = 0;
        lossN = 0;
        lastT = now;
        lastIter = i;
      }
    }
    trainMs = performance.now() - trainStart;
  } catch (e) {
    trainer.dispose();
    throw e;
  }
  const trained = trainer.getParams();
  trainer.dispose();
  const validation = evaluateAccuracy(arch, trained, null, data.validation);
  const test = evaluateAccuracy(arch, trained, null, data.test);

  const config = {
    command: 'train',
    argv,
    startedAt: started.toISOString(),
    model: arch.name,
    modelSource: model.source,
    dataset,
    dataDir: data.dir,
    inputScale,
    inputOffset,
    seed,
    initSeed: model.params ? null : `reference:${seed}`,
    splitSeed,
    trainOrder,
    split: { train: data.train.count, validation: data.validation.count, test: data.test.count },
    iterations,
    solver: trainer.solver,
    progressEvery,
    backend: backendRecord(backend),
    versions: runVersions(),
  };
  const report: TrainReport = {
    command: 'train',
    model: arch.name,
    dataset,
    seed,
    splitSeed,
    trainOrder,
    backend: backendRecord(backend),
    iterations,
    batchSize,
    lrBase,
    trainShards,
    trainThreads: trainer.threads,
    finalLoss,
    validation,
    test,
    validationAccuracy: validation.accuracy,
    testAccuracy: test.accuracy,
    trainMsPerStep: trainMs / iterations,
    wallTimeMs: 0,
    outDir,
  };
  buildRunDir(outDir, (tmp) => {
    writeJson(tmp, 'config.json', config);
    writeJson(tmp, 'metrics.json', { progress, validation, test, trainMsPerStep: report.trainMsPerStep });
    mkdirSync(join(tmp, 'model'));
    writeModelFiles(join(tmp, 'model'), { arch, params: trained, masks: onesMasks(arch) }, { meta: { source: 'prunus train', seed, dataset, iterations, testAccuracy: test.accuracy, backend: backend.name } });
    report.wallTimeMs = Math.round(performance.now() - t0);
    writeJson(tmp, 'report.json', report);
  });
  if (json) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else {
    process.stdout.write(
      [
        `${arch.name} seed ${seed}: ${iterations} iterations on ${backend.name}, ${report.trainMsPerStep.toFixed(1)} ms/step`,
        `validation accuracy ${(validation.accuracy * 100).toFixed(2)}% (${validation.count} images)`,
        `test accuracy ${(test.accuracy * 100).toFixed(2)}% (${test.count} images)`,
        `run folder ${outDir}`,
      ].join('\n') + '\n',
    );
  }
  return 0;
}
