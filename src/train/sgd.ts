/**
 * Momentum-SGD training runs (the channel-pruning recipes: baselines, finetuning, DCP's joint finetune) on the one
 * trainer: a fixed number of steps on seeded epoch-wise shuffled batches, optional held channel masks, the mean loss
 * of every block of steps logged. Deterministic for a seed (given the backend).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../../models/graph.js';
import { cloneParams, type ModelParams } from '../../models/params.js';
import type { ParamMasks } from '../../models/channels.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { checkSgdConfig, type SgdConfig } from './solver.js';
import { Trainer, type LossFn } from './trainer.js';
import { resolveTrainThreads } from './shard-pool.js';

export interface TrainResult {
  params: ModelParams;
  /** Mean training loss over each block of `logEvery` steps. */
  losses: number[];
  steps: number;
  wallMs: number;
}

export interface TrainOptions {
  /** Parameter masks held during training (pruned entries stay zero). */
  masks?: ParamMasks;
  logEvery?: number;
  onLog?: (step: number, loss: number, lr: number) => void;
  /** Replaces the softmax cross-entropy of the network output. */
  loss?: LossFn;
  /** More variables trained by the same optimiser (no weight decay, no masks), e.g. DCP heads. The caller owns them. */
  extraVariables?: tf.Variable[];
  /** Sharded steps (Trainer's shards and threads); the default loss only. */
  shards?: number;
  threads?: number;
}

/** The sharding options of a config holding trainShards / trainThreads (0 threads = one per core). */
export function shardedTraining(cfg: { trainShards?: number; trainThreads?: number }): Pick<TrainOptions, 'shards' | 'threads'> {
  return { shards: cfg.trainShards ?? 1, threads: resolveTrainThreads(cfg.trainThreads ?? 0) };
}

/** Trains a copy of `params` for cfg.steps SGD steps on `data`. */
export function trainSgd(arch: Architecture, params: ModelParams, data: ImageSet, cfg: SgdConfig, seed: number | string, opts: TrainOptions = {}): TrainResult {
  checkSgdConfig(cfg);
  const t0 = Date.now();
  const trainer = new Trainer(arch, cloneParams(params), data, {
    sgd: cfg,
    shuffleSeed: `train:${seed}`,
    ...(opts.masks ? { held: opts.masks } : {}),
    ...(opts.loss ? { loss: opts.loss } : {}),
    ...(opts.extraVariables ? { extraVariables: opts.extraVariables } : {}),
    ...(opts.shards !== undefined ? { shards: opts.shards, threads: opts.threads ?? 1 } : {}),
  });
  const logEvery = opts.logEvery ?? 50;
  const losses: number[] = [];
  try {
    let acc = 0;
    let accN = 0;
    for (let step = 0; step < cfg.steps; step++) {
      const lr = trainer.lr(step);
      acc += trainer.step().loss;
      accN++;
      if (accN === logEvery || step === cfg.steps - 1) {
        losses.push(acc / accN);
        opts.onLog?.(step + 1, acc / accN, lr);
        acc = 0;
        accN = 0;
      }
    }
    return { params: trainer.getParams(), losses, steps: cfg.steps, wallMs: Date.now() - t0 };
  } finally {
    trainer.dispose();
  }
}
