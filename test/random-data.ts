/** Random images and labels for trainer tests (uniform pixels in [0, 1), uniform labels). */
import type { ImageSet } from '../foundation/data/datasets.js';
import type { Rng } from '../foundation/rng.js';

export function randomSet(rng: Rng, count: number, shape: [number, number, number], classes: number): ImageSet {
  const per = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(count * per);
  for (let i = 0; i < images.length; i++) images[i] = rng.uniform();
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = rng.int(classes);
  return { images, labels, count, shape };
}
