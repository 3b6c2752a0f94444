/**
 * From arrays as read (IDX, NPY) to what training consumes: images as NHWC float32 after the pixel transform
 * raw × scale + offset, labels as a Uint8Array of class indices (from integer labels or one-hot rows).
 * Every refusal is a one-line UsageError naming the file (or archive[entry]) and what is wrong.
 */
import { UsageError } from '../errors.js';
import { describeShape, type RawArray } from './npy.js';

const FLOAT32_MAX = 3.4028234663852886e38;

export interface Images {
  images: Float32Array;
  count: number;
  shape: [number, number, number];
}

/** The most classes a dataset may have: labels are stored as bytes. */
export const MAX_CLASSES = 256;

/** Per-image [H, W, C] of an image array: [N,H,W] has C = 1, [N,H,W,C] is channels-last, [N,D] is [1, 1, D]. */
export function imageShape(raw: RawArray): [number, number, number] {
  const s = raw.shape;
  let shape: [number, number, number];
  if (s.length === 2) shape = [1, 1, s[1]!];
  else if (s.length === 3) shape = [s[1]!, s[2]!, 1];
  else if (s.length === 4) shape = [s[1]!, s[2]!, s[3]!];
  else throw new UsageError(`${raw.name}: images must have shape [N,H,W], [N,H,W,C] or [N,D], got ${describeShape(s)}`);
  if (s[0] === 0) throw new UsageError(`${raw.name}: no images (shape ${describeShape(s)})`);
  if (shape.some((d) => d === 0)) throw new UsageError(`${raw.name}: empty images (shape ${describeShape(s)})`);
  return shape;
}

/**
 * Images as float32, value = raw × scale + offset. The offset is only added when it is non-zero, so that with the
 * default scale (1/256) and offset (0) the result is bit-identical to raw × 1/256. Float sources are checked for
 * NaN/Inf (and for values that overflow float32 once transformed); integer sources cannot hold them.
 */
export function toImages(raw: RawArray, scale: number, offset: number): Images {
  const shape = imageShape(raw);
  const src = raw.data;
  const images = new Float32Array(src.length);
  if (offset === 0) {
    for (let i = 0; i < images.length; i++) images[i] = src[i]! * scale;
  } else {
    for (let i = 0; i < images.length; i++) images[i] = src[i]! * scale + offset;
  }
  // Integer sources hold at most 2^64 in magnitude, so they can only overflow float32 under a huge scale or offset.
  if (raw.float || Math.abs(scale) * 2 ** 64 + Math.abs(offset) > FLOAT32_MAX) {
    const per = shape[0] * shape[1] * shape[2];
    for (let i = 0; i < images.length; i++) {
      if (Number.isFinite(images[i]!)) continue;
      const v = src[i]!;
      const what = Number.isFinite(v) ? `${v} overflows float32 after scaling` : `${v}`;
      throw new UsageError(`${raw.name}: pixel at index ${i} (image ${Math.floor(i / per)}) is ${what}; pixels must be finite`);
    }
  }
  return { images, count: raw.shape[0]!, shape };
}

export interface Labels {
  labels: Uint8Array;
  /** The column count of one-hot labels (it declares the number of classes); undefined for integer labels. */
  oneHotWidth?: number;
}

/**
 * Class indices from [N] integer labels or [N, K] one-hot rows (each row exactly one 1, the rest 0).
 * Labels must be integers in 0..255 (stored as bytes), or in 0..fixedClasses-1 when the dataset has a fixed class
 * count (MNIST and Fashion-MNIST: 10, refused as they always were, "label 12 at index 3 is out of range 0..9").
 */
export function toLabels(raw: RawArray, fixedClasses?: number): Labels {
  const s = raw.shape;
  const src = raw.data;
  const maxLabel = (fixedClasses ?? MAX_CLASSES) - 1;
  let labels: Uint8Array;
  let oneHotWidth: number | undefined;
  const check = (v: number, i: number): void => {
    if (Number.isInteger(v) && v >= 0 && v <= maxLabel) return;
    if (fixedClasses !== undefined) throw new UsageError(`${raw.name}: label ${v} at index ${i} is out of range 0..${maxLabel}`);
    throw new UsageError(`${raw.name}: label ${v} at index ${i} is not an integer in 0..${maxLabel} (at most ${MAX_CLASSES} classes)`);
  };
  if (s.length === 1) {
    labels = new Uint8Array(s[0]!);
    for (let i = 0; i < labels.length; i++) {
      const v = src[i]!;
      check(v, i);
      labels[i] = v;
    }
  } else if (s.length === 2) {
    const [n, k] = s as [number, number];
    if (k > maxLabel + 1) throw new UsageError(`${raw.name}: ${k} one-hot columns, at most ${maxLabel + 1} classes are supported`);
    labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      let hot = -1;
      for (let j = 0; j < k; j++) {
        const v = src[i * k + j]!;
        if (v === 0) continue;
        if (v !== 1 || hot >= 0) {
          hot = -2;
          break;
        }
        hot = j;
      }
      if (hot < 0) throw new UsageError(`${raw.name}: row ${i} is not one-hot (expected exactly one 1 and the rest 0)`);
      labels[i] = hot;
    }
    oneHotWidth = k;
  } else {
    throw new UsageError(`${raw.name}: labels must have shape [N] or [N,K] (one-hot), got ${describeShape(s)}`);
  }
  return oneHotWidth === undefined ? { labels } : { labels, oneHotWidth };
}
