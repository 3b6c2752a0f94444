/**
 * TensorFlow.js weight manifests: reading the weights of a model.json (groups of shards, float32 or quantised to
 * uint8 / uint16 / float16 and dequantised as tfjs does) and writing them (float32, or quantised the same ways).
 * Quantisation is affine per tensor with the range nudged so that 0 is a quantised value: pruned weights stay
 * exactly zero.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { UsageError } from '../../foundation/errors.js';

export type Quantization = 'uint8' | 'uint16' | 'float16';
export const QUANTIZATIONS: readonly (Quantization | 'none')[] = ['none', 'float16', 'uint16', 'uint8'];

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: Quantization; scale?: number; min?: number; original_dtype?: string };
}
export interface WeightGroup {
  paths: string[];
  weights: WeightSpec[];
}

export interface NamedWeight {
  shape: number[];
  values: Float32Array;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2 };

/** IEEE half → float (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** float → IEEE half, round to nearest even (as numpy's float16 cast). */
export function floatToHalf(v: number): number {
  const f32 = new Float32Array([v]);
  const x = new Uint32Array(f32.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkSpec(w: unknown, where: string): WeightSpec {
  const s = w as WeightSpec;
  if (typeof s !== 'object' || s === null || typeof s.name !== 'string') throw new UsageError(`${where}: a weight entry without a name`);
  if (!Array.isArray(s.shape) || !s.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new UsageError(`${where}: weight ${s.name} has no valid shape`);
  const q = s.quantization;
  if (q !== undefined) {
    if (!['uint8', 'uint16', 'float16'].includes(q.dtype)) throw new UsageError(`${where}: weight ${s.name} has quantization dtype '${String(q.dtype)}' (uint8, uint16 or float16)`);
    if (q.dtype !== 'float16' && (typeof q.scale !== 'number' || typeof q.min !== 'number')) throw new UsageError(`${where}: weight ${s.name} is ${q.dtype}-quantised without scale and min`);
  } else if (s.dtype !== 'float32') {
    throw new UsageError(`${where}: weight ${s.name} has dtype '${String(s.dtype)}' (float32 only)`);
  }
  return s;
}

/**
 * Reads every weight of a manifest from the shard files in `dir`. Throws one line naming the file for a missing or
 * short shard, and the weight for a malformed entry.
 */
export function readWeights(dir: string, manifest: unknown, manifestFile: string): Map<string, NamedWeight> {
  if (!Array.isArray(manifest) || manifest.length === 0) throw new UsageError(`${manifestFile}: no weightsManifest`);
  const out = new Map<string, NamedWeight>();
  for (const g of manifest as WeightGroup[]) {
    if (!g || !Array.isArray(g.paths) || !Array.isArray(g.weights)) throw new UsageError(`${manifestFile}: a weightsManifest group without paths or weights`);
    const parts: Buffer[] = [];
    for (const p of g.paths) {
      if (typeof p !== 'string' || isAbsolute(p) || p.split(/[\\/]/).includes('..')) throw new UsageError(`${manifestFile}: weight file '${String(p)}' must be a plain name beside it`);
      const file = join(dir, p);
      if (!existsSync(file)) throw new UsageError(`${file}: missing (a weight shard named by ${manifestFile})`);
      parts.push(readFileSync(file));
    }
    const bytes = Buffer.concat(parts);
    let off = 0;
    for (const raw of g.weights) {
      const spec = checkSpec(raw, manifestFile);
      const n = size(spec.shape);
      const dt = spec.quantization?.dtype ?? spec.dtype;
      const len = n * BYTES[dt]!;
      if (off + len > bytes.length) {
        throw new UsageError(`${join(dir, g.paths[g.paths.length - 1] ?? '')}: the shards hold ${bytes.length} bytes, weight ${spec.name} needs bytes ${off}..${off + len} (missing or short shard)`);
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset + off, len);
      const values = new Float32Array(n);
      const q = spec.quantization;
      if (!q) for (let i = 0; i < n; i++) values[i] = view.getFloat32(4 * i, true);
      else if (q.dtype === 'float16') for (let i = 0; i < n; i++) values[i] = halfToFloat(view.getUint16(2 * i, true));
      else if (q.dtype === 'uint8') for (let i = 0; i < n; i++) values[i] = view.getUint8(i) * q.scale! + q.min!;
      else for (let i = 0; i < n; i++) values[i] = view.getUint16(2 * i, true) * q.scale! + q.min!;
      out.set(spec.name, { shape: spec.shape, values });
      off += len;
    }
  }
  return out;
}

/** Affine uint8/uint16 quantisation of one tensor with 0 exactly representable: the codes, scale and min. */
export function quantizeAffine(values: Float32Array, dtype: 'uint8' | 'uint16'): { codes: Uint8Array | Uint16Array; scale: number; min: number } {
  const qmax = dtype === 'uint8' ? 255 : 65535;
  let lo = 0;
  let hi = 0;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  let scale = (hi - lo) / qmax;
  if (!(scale > 0)) scale = 1;
  const zero = Math.round(-lo / scale);
  const min = -zero * scale;
  const codes = dtype === 'uint8' ? new Uint8Array(values.length) : new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) codes[i] = Math.min(qmax, Math.max(0, Math.round((values[i]! - min) / scale)));
  return { codes, scale, min };
}

/** Encodes named float32 tensors as one weights file (float32, or quantised) and its manifest entries. */
export function encodeWeights(tensors: { name: string; shape: number[]; values: Float32Array }[], quantize: Quantization | 'none' = 'none'): { specs: WeightSpec[]; bytes: Uint8Array } {
  const specs: WeightSpec[] = [];
  const chunks: Uint8Array[] = [];
  for (const t of tensors) {
    if (quantize === 'none') {
      const b = new Uint8Array(t.values.length * 4);
      const dv = new DataView(b.buffer);
      t.values.forEach((v, i) => dv.setFloat32(4 * i, v, true));
      chunks.push(b);
      specs.push({ name: t.name, shape: t.shape, dtype: 'float32' });
    } else if (quantize === 'float16') {
      const b = new Uint8Array(t.values.length * 2);
      const dv = new DataView(b.buffer);
      t.values.forEach((v, i) => dv.setUint16(2 * i, floatToHalf(v), true));
      chunks.push(b);
      specs.push({ name: t.name, shape: t.shape, dtype: 'float32', quantization: { dtype: 'float16', original_dtype: 'float32' } });
    } else {
      const q = quantizeAffine(t.values, quantize);
      const b = new Uint8Array(q.codes.length * q.codes.BYTES_PER_ELEMENT);
      const dv = new DataView(b.buffer);
      if (quantize === 'uint8') b.set(q.codes as Uint8Array);
      else (q.codes as Uint16Array).forEach((c, i) => dv.setUint16(2 * i, c, true));
      chunks.push(b);
      specs.push({ name: t.name, shape: t.shape, dtype: 'float32', quantization: { dtype: quantize, scale: q.scale, min: q.min, original_dtype: 'float32' } });
    }
  }
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  return { specs, bytes };
}
