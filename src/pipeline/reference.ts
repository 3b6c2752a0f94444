/**
 * The reference a run prunes: `--reference DIR`, the given model file itself, or the zoo model trained by the
 * Caffe recipe from the seed (cached per machine under <resultsRoot>/references/, checkpointed while it trains; runs
 * that need the same one train it once, the others wait for its cache).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { OlmpConfig } from './config.js';
import type { PipelineHooks, RunFileConfig } from './olmp.js';
import { waitForLease } from '../../foundation/lease.js';
import { recoverDir } from '../../foundation/atomic.js';
import { UsageError } from '../../foundation/errors.js';
import { Rng } from '../../foundation/rng.js';
import type { Dataset } from '../../foundation/data/datasets.js';
import type { Architecture } from '../../models/graph.js';
import { layerStats } from '../../models/walk.js';
import { initParams, onesMasks, type ModelParams } from '../../models/params.js';
import { saveModel, loadModel } from '../../models/io.js';
import { backendRecord, type BackendInfo } from '../../backends/backend.js';
import { Trainer, evaluateAccuracy, type TrainerState } from '../train/index.js';

/** The reference's weights, its accuracies, and where it came from. */
export interface Reference {
  params: ModelParams;
  validationAccuracy: number;
  validationCorrect: number;
  testAccuracy: number;
  source: string;
}

function referenceCacheDir(cfg: OlmpConfig, backend: string, resultsRoot: string): string {
  const lim = cfg.limit.train ? `-n${cfg.limit.train}` : '';
  const order = cfg.trainOrder === 'file' ? 'fileorder' : `split${cfg.splitSeed}`;
  const shards = (cfg.trainShards ?? 1) > 1 ? `-k${cfg.trainShards}` : '';
  return join(resultsRoot, 'references', `${cfg.model}-${cfg.dataset}-${order}-s${cfg.seed}-i${cfg.referenceIterations}-b${cfg.batchSize}${shards}${lim}-${backend}`);
}

/** What obtaining the reference needs from the run. */
export interface ReferenceContext {
  cfg: OlmpConfig;
  runCfg: RunFileConfig;
  arch: Architecture;
  data: Dataset;
  backend: BackendInfo;
  /** The run's state: where reference training is (iteration) and its trainer's saved state. */
  st: { iteration: number; trainer: TrainerState | null };
  getTrainer: () => Trainer | null;
  setTrainer: (t: Trainer) => void;
  checkpoint: () => void;
  hooks: PipelineHooks;
  elapsed: () => number;
  timeBudgetMs: number;
  /** Once per iteration (and while waiting): the lease's refresh and a requested stop. */
  tick: () => Promise<void>;
  /** Threads of a sharded training step (resolved: >= 1). */
  trainThreads: number;
}

export async function obtainReference(
  ctx: ReferenceContext,
  /** The weights of a model given as a file: it is its own reference. */
  given: ModelParams | null,
): Promise<Reference> {
  const { cfg, runCfg, arch, data, backend } = ctx;
  const finish = (params: ModelParams, source: string) => {
    const val = evaluateAccuracy(arch, params, null, data.validation);
    const test = evaluateAccuracy(arch, params, null, data.test);
    return { params, validationAccuracy: val.accuracy, validationCorrect: val.correct, testAccuracy: test.accuracy, source };
  };
  if (cfg.reference) {
    const m = loadModel(cfg.reference).model;
    const shapes = (a: Architecture) => JSON.stringify(layerStats(a).map((l) => [l.weights, l.biases]));
    if (given ? shapes(m.arch) !== shapes(arch) : m.arch.name !== cfg.model) throw new UsageError(`--reference ${cfg.reference} holds a ${m.arch.name}, not a ${given ? arch.name : cfg.model}`);
    return finish(m.params, resolve(cfg.reference));
  }
  if (given) return finish(given, cfg.model);
  const cache = referenceCacheDir(cfg, backend.name, runCfg.resultsRoot);
  recoverDir(cache);
  if (existsSync(join(cache, 'model.json'))) return finish(loadModel(cache).model.params, cache);
  // Runs on this machine that need the same reference (a sweep's, a queue worker's) train it once: the others wait
  // for the first and then read its cache.
  const training = await waitForLease(cache, 'prunus reference training', ctx.tick);
  try {
    recoverDir(cache);
    if (existsSync(join(cache, 'model.json'))) return finish(loadModel(cache).model.params, cache);
    return finish(await trainReference(ctx, cache), cache);
  } finally {
    training.release();
  }
}

/** Trains the reference into the cache folder, checkpointing as it goes; returns its parameters. */
async function trainReference(
  { cfg, runCfg, arch, data, backend, st, getTrainer, setTrainer, checkpoint, hooks, elapsed, timeBudgetMs, tick, trainThreads }: ReferenceContext,
  cache: string,
): Promise<ModelParams> {
  // The reference's init draws from a stream derived from the seed alone, so a cached reference and a freshly
  // trained one are the same model.
  let trainer = getTrainer();
  if (!trainer) {
    trainer = st.trainer
      ? Trainer.restore(arch, st.trainer, data.train, { threads: trainThreads })
      : new Trainer(arch, initParams(arch, new Rng(`reference:${cfg.seed}`)), data.train, { solver: { batchSize: cfg.batchSize }, shards: cfg.trainShards ?? 1, threads: trainThreads });
    setTrainer(trainer);
  }
  while (st.iteration < cfg.referenceIterations) {
    await tick();
    if (elapsed() > timeBudgetMs) throw new UsageError(`time budget spent while training the reference (${st.iteration}/${cfg.referenceIterations} iterations); pass --reference or a larger --time-budget`);
    trainer.step();
    st.iteration++;
    if (st.iteration % 25 === 0) hooks.onProgress?.({ phase: 'reference', iteration: st.iteration, total: cfg.referenceIterations, compression: 1, accuracy: NaN });
    if (st.iteration % (cfg.checkpointPeriod * 2) === 0 && st.iteration < cfg.referenceIterations) checkpoint();
  }
  const params = trainer.getParams();
  mkdirSync(join(runCfg.resultsRoot, 'references'), { recursive: true });
  saveModel(cache, { arch, params, masks: onesMasks(arch) }, { meta: { seed: cfg.seed, iterations: cfg.referenceIterations, backend: backendRecord(backend) } });
  return params;
}

