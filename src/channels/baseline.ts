/**
 * Baselines for channel pruning, trained on demand and cached under <resultsRoot>/baselines/<model>-s<seed>-<preset>/
 * (a prunus model folder whose meta holds the training config, data sizes and accuracies). A cached baseline is
 * reused only when its recorded training key matches; otherwise it is retrained and replaced atomically.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Architecture } from '../../models/graph.js';
import type { ModelParams as GivenParams } from '../../models/params.js';
import { initParams, onesMasks, type ModelParams } from '../../models/params.js';
import { loadModel, saveModel } from '../../models/io.js';
import { Rng } from '../../foundation/rng.js';
import type { ChannelData } from './data.js';
import type { ChannelsConfig } from './config.js';
import { shardedTraining, trainSgd } from '../train/sgd.js';
import { evaluateAccuracy } from '../train/evaluate.js';

export interface Baseline {
  params: ModelParams;
  validationAccuracy: number;
  testAccuracy: number;
  dir: string;
  cached: boolean;
  trainWallMs: number;
}

function baselineKey(cfg: ChannelsConfig): Record<string, unknown> {
  return { model: cfg.model, dataset: cfg.dataset, seed: cfg.seed, splitSeed: cfg.splitSeed, train: cfg.data.train, sgd: cfg.baseline, dataDir: cfg.dataDir ?? null, ...((cfg.trainShards ?? 1) > 1 ? { trainShards: cfg.trainShards } : {}) };
}

export function baselineDir(resultsRoot: string, cfg: ChannelsConfig): string {
  return join(resultsRoot, 'baselines', `${cfg.model}-s${cfg.seed}-${cfg.quick ? 'quick' : 'full'}`);
}

/** Loads the cached baseline for this config or trains (and caches) it. Accuracies are on this run's splits. */
export function getBaseline(resultsRoot: string, cfg: ChannelsConfig, arch: Architecture, given: GivenParams | null, data: ChannelData, log?: (line: string) => void): Baseline {
  if (given) {
    // A model given as a file is the baseline as it is: evaluated, not trained.
    log?.(`baseline: ${cfg.model} as given`);
    return {
      params: given,
      validationAccuracy: evaluateAccuracy(arch, given, null, data.validation, cfg.evalBatch).accuracy,
      testAccuracy: evaluateAccuracy(arch, given, null, data.test, cfg.evalBatch).accuracy,
      dir: cfg.model,
      cached: true,
      trainWallMs: 0,
    };
  }
  const dir = baselineDir(resultsRoot, cfg);
  const key = JSON.stringify(baselineKey(cfg));
  if (existsSync(join(dir, 'model.json'))) {
    try {
      const { model, file } = loadModel(dir);
      if (file.meta && JSON.stringify(file.meta.key) === key) {
        log?.(`baseline: cached ${dir}`);
        return {
          params: model.params,
          validationAccuracy: evaluateAccuracy(arch, model.params, null, data.validation, cfg.evalBatch).accuracy,
          testAccuracy: evaluateAccuracy(arch, model.params, null, data.test, cfg.evalBatch).accuracy,
          dir,
          cached: true,
          trainWallMs: Number(file.meta.trainWallMs ?? 0),
        };
      }
      log?.(`baseline: ${dir} was trained with other settings; retraining`);
    } catch {
      log?.(`baseline: ${dir} is unreadable; retraining`);
    }
  }
  log?.(`baseline: training ${cfg.model} for ${cfg.baseline.steps} steps on ${data.train.count} images`);
  const init = initParams(arch, new Rng(`init:${cfg.seed}`));
  const r = trainSgd(arch, init, data.train, cfg.baseline, `baseline:${cfg.seed}`, {
    ...shardedTraining(cfg),
    logEvery: Math.max(1, Math.floor(cfg.baseline.steps / 5)),
    onLog: (s, l, lr) => log?.(`  baseline step ${s}/${cfg.baseline.steps} loss ${l.toFixed(4)} lr ${lr.toPrecision(3)}`),
  });
  const validationAccuracy = evaluateAccuracy(arch, r.params, null, data.validation, cfg.evalBatch).accuracy;
  const testAccuracy = evaluateAccuracy(arch, r.params, null, data.test, cfg.evalBatch).accuracy;
  saveModel(dir, { arch, params: r.params, masks: onesMasks(arch) }, { meta: { key: JSON.parse(key), trainWallMs: r.wallMs, validationAccuracy, testAccuracy, losses: r.losses } });
  return { params: r.params, validationAccuracy, testAccuracy, dir, cached: false, trainWallMs: r.wallMs };
}
