/**
 * Where a trainer's batches come from:
 *  - sequential: read in the train set's stored order, cycling like Caffe's data layer (a batch may wrap around the
 *    end); the position is a cursor, saved in checkpoints;
 *  - shuffled: epoch-wise seeded permutations (a new one when the next batch would not fit), as the channel-pruning
 *    recipes train.
 */
import { subset, type ImageSet } from '../../foundation/data/datasets.js';
import { Rng } from '../../foundation/rng.js';
import { UsageError } from '../../foundation/errors.js';

export interface Batch {
  images: Float32Array;
  labels: Uint8Array;
}

/** `size` images from `start`, wrapping around the end (views when contiguous). */
export function sequentialBatch(set: ImageSet, start: number, size: number): Batch {
  const n = set.count;
  const per = set.shape[0] * set.shape[1] * set.shape[2];
  if (start + size <= n) return { images: set.images.subarray(start * per, (start + size) * per), labels: set.labels.subarray(start, start + size) };
  const images = new Float32Array(size * per);
  const labels = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const j = (start + i) % n;
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = set.labels[j]!;
  }
  return { images, labels };
}

/** Epoch-wise shuffled mini-batch indices from one Rng. */
export class BatchSampler {
  private perm: Int32Array;
  private pos = 0;
  constructor(
    private readonly count: number,
    private readonly batchSize: number,
    private readonly rng: Rng,
  ) {
    if (count < 1) throw new UsageError('no training images');
    this.perm = rng.permutation(count);
  }
  next(): Int32Array {
    const n = Math.min(this.batchSize, this.count);
    if (this.pos + n > this.count) {
      this.perm = this.rng.permutation(this.count);
      this.pos = 0;
    }
    const b = this.perm.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

/** The images at `indices`, in that order. */
export function gatherBatch(set: ImageSet, indices: ArrayLike<number>): Batch {
  const { images, labels } = subset(set, indices);
  return { images, labels };
}
