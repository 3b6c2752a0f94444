/**
 * BatchNorm recalibration of a pruned candidate ("adaptive BN"): its moving statistics re-estimated on a few
 * training-side batches before it is evaluated without finetuning.
 */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import { toTensors, runGraph, disposeModelTensors } from '../../models/forward.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { Rng } from '../../foundation/rng.js';
import { BatchSampler } from '../train/batches.js';
import { batchOf } from './data.js';

export interface RecalibrationOptions {
  /** Mini-batches to average (0 = no recalibration). */
  batches: number;
  batchSize: number;
  /** Images the batches are drawn from (a training-side split) and the seed of the draw. */
  set: ImageSet;
  seed: number | string;
}

/**
 * Re-estimates every BatchNorm's moving mean/variance of a (pruned) model: the average of the batch statistics of
 * `batches` mini-batches, forward in training mode; no weight changes ("adaptive BN" candidate evaluation). Returns
 * a copy; models without BatchNorm are returned as they are.
 */
export function recalibrateBatchNorm(arch: Architecture, params: ModelParams, r: RecalibrationOptions): ModelParams {
  if (params.batchNorms.length === 0 || r.batches <= 0) return params;
  const rng = new Rng(`bn-recalibration:${r.seed}`);
  const sums = params.batchNorms.map((b) => ({ mean: new Float64Array(b.gamma.length), variance: new Float64Array(b.gamma.length) }));
  const t = toTensors(arch, params);
  try {
    const sampler = new BatchSampler(r.set.count, r.batchSize, rng);
    for (let i = 0; i < r.batches; i++) {
      const { x } = batchOf(r.set, sampler.next());
      tf.tidy(() => {
        runGraph(arch, t, x, {
          mode: 'train',
          dropoutSeed: null,
          onBatchNormStats: (k, mean, variance) => {
            const m = mean.dataSync();
            const v = variance.dataSync();
            for (let c = 0; c < m.length; c++) {
              sums[k]!.mean[c] += m[c]! / r.batches;
              sums[k]!.variance[c] += v[c]! / r.batches;
            }
          },
        });
      });
      x.dispose();
    }
  } finally {
    disposeModelTensors(t);
  }
  return {
    layers: params.layers,
    batchNorms: params.batchNorms.map((b, k) => ({ ...b, movingMean: Float32Array.from(sums[k]!.mean), movingVariance: Float32Array.from(sums[k]!.variance) })),
  };
}
