/**
 * Save and load a prunable model: `model.json` (architecture + a tfjs-style weightsManifest) beside
 * `weights.bin` (float32, little-endian, tfjs layouts) and `masks.bin` (uint8 0/1, same layouts).
 * Writes are atomic: the folder is built aside and renamed into place.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Architecture } from './architectures.js';
import { prunableOps, weightShape, biasLength } from './architectures.js';
import { batchNormOps, type PrunableModel, type ModelParams, type LayerMasks } from './params.js';
import type { MagnitudeStats } from './masks.js';
import { UsageError } from '../foundation/errors.js';
import { writeDirAtomic, recoverDir } from '../foundation/atomic.js';

export const MODEL_FORMAT = 'prunus-model';
export const MODEL_FORMAT_VERSION = 1;

interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'uint8';
}

export interface ModelFile {
  format: typeof MODEL_FORMAT;
  version: number;
  arch: Architecture;
  weightsManifest: { paths: string[]; weights: WeightEntry[] }[];
  masksManifest: { paths: string[]; weights: WeightEntry[] };
  /** Frozen DNS magnitude statistics, when the model comes from a pruning run. */
  magnitudeStats?: MagnitudeStats[];
  /** Free-form provenance (seed, backend, source manifest...). */
  meta?: Record<string, unknown>;
}

function paramEntries(arch: Architecture): { entries: WeightEntry[]; arrays: (p: ModelParams) => Float32Array[] } {
  const entries: WeightEntry[] = [];
  for (const op of prunableOps(arch)) {
    entries.push({ name: `${op.name}/kernel`, shape: weightShape(op), dtype: 'float32' });
    entries.push({ name: `${op.name}/bias`, shape: [biasLength(op)], dtype: 'float32' });
  }
  for (const op of batchNormOps(arch)) {
    for (const k of ['gamma', 'beta', 'moving_mean', 'moving_variance']) entries.push({ name: `${op.name}/${k}`, shape: [op.channels], dtype: 'float32' });
  }
  return {
    entries,
    arrays: (p) => [
      ...p.layers.flatMap((l) => [l.weight, l.bias]),
      ...p.batchNorms.flatMap((b) => [b.gamma, b.beta, b.movingMean, b.movingVariance]),
    ],
  };
}

function concatBytes(arrays: ArrayBufferView[]): Uint8Array {
  const total = arrays.reduce((s, a) => s + a.byteLength, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const a of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
    off += a.byteLength;
  }
  return out;
}

/** Writes the model into `dir` (replaced atomically). */
export function saveModel(dir: string, model: PrunableModel, extra: { magnitudeStats?: MagnitudeStats[]; meta?: Record<string, unknown> } = {}): void {
  writeDirAtomic(dir, (tmp) => writeModelFiles(tmp, model, extra));
}

/** Writes model files into an existing folder (callers that build a larger folder atomically use this). */
export function writeModelFiles(dir: string, model: PrunableModel, extra: { magnitudeStats?: MagnitudeStats[]; meta?: Record<string, unknown> } = {}): void {
  const { entries, arrays } = paramEntries(model.arch);
  const maskEntries: WeightEntry[] = prunableOps(model.arch).flatMap((op) => [
    { name: `${op.name}/kernel_mask`, shape: weightShape(op), dtype: 'uint8' as const },
    { name: `${op.name}/bias_mask`, shape: [biasLength(op)], dtype: 'uint8' as const },
  ]);
  const file: ModelFile = {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    arch: model.arch,
    weightsManifest: [{ paths: ['weights.bin'], weights: entries }],
    masksManifest: { paths: ['masks.bin'], weights: maskEntries },
    ...(extra.magnitudeStats ? { magnitudeStats: extra.magnitudeStats } : {}),
    ...(extra.meta ? { meta: extra.meta } : {}),
  };
  writeFileSync(join(dir, 'weights.bin'), concatBytes(arrays(model.params)));
  writeFileSync(join(dir, 'masks.bin'), concatBytes(model.masks.flatMap((m) => [m.weight, m.bias])));
  writeFileSync(join(dir, 'model.json'), JSON.stringify(file, null, 1) + '\n');
}

export interface LoadedModel {
  model: PrunableModel;
  file: ModelFile;
}

/** Loads a model folder (or a run folder holding `model/`), checking every size. */
export function loadModel(path: string): LoadedModel {
  recoverDir(path);
  let dir = path;
  if (!existsSync(join(dir, 'model.json')) && existsSync(join(dir, 'model', 'model.json'))) dir = join(dir, 'model');
  const jsonPath = join(dir, 'model.json');
  if (!existsSync(jsonPath)) throw new UsageError(`no model at ${path} (expected ${jsonPath})`);
  let file: ModelFile;
  try {
    file = JSON.parse(readFileSync(jsonPath, 'utf8')) as ModelFile;
  } catch (e) {
    throw new UsageError(`${jsonPath}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (file.format !== MODEL_FORMAT) throw new UsageError(`${jsonPath}: not a prunus model (format '${String(file.format)}')`);
  const arch = file.arch;
  const { entries } = paramEntries(arch);
  const wPath = join(dir, 'weights.bin');
  const mPath = join(dir, 'masks.bin');
  if (!existsSync(wPath)) throw new UsageError(`missing ${wPath}`);
  const wBytes = readFileSync(wPath);
  const need = entries.reduce((s, e) => s + 4 * e.shape.reduce((a, b) => a * b, 1), 0);
  if (wBytes.length !== need) throw new UsageError(`${wPath}: ${wBytes.length} bytes, the architecture needs ${need}`);
  const floats = new Float32Array(wBytes.buffer.slice(wBytes.byteOffset, wBytes.byteOffset + wBytes.length));
  let off = 0;
  const take = (n: number): Float32Array => {
    const a = floats.slice(off, off + n);
    off += n;
    return a;
  };
  const ops = prunableOps(arch);
  const params: ModelParams = {
    layers: ops.map((op) => ({ weight: take(weightShape(op).reduce((a, b) => a * b, 1)), bias: take(biasLength(op)) })),
    batchNorms: batchNormOps(arch).map((op) => ({
      gamma: take(op.channels),
      beta: take(op.channels),
      movingMean: take(op.channels),
      movingVariance: take(op.channels),
    })),
  };
  let masks: LayerMasks[];
  if (existsSync(mPath)) {
    const mBytes = readFileSync(mPath);
    const mNeed = ops.reduce((s, op) => s + weightShape(op).reduce((a, b) => a * b, 1) + biasLength(op), 0);
    if (mBytes.length !== mNeed) throw new UsageError(`${mPath}: ${mBytes.length} bytes, the architecture needs ${mNeed}`);
    let mo = 0;
    masks = ops.map((op) => {
      const nw = weightShape(op).reduce((a, b) => a * b, 1);
      const nb = biasLength(op);
      const weight = new Uint8Array(mBytes.subarray(mo, mo + nw));
      const bias = new Uint8Array(mBytes.subarray(mo + nw, mo + nw + nb));
      mo += nw + nb;
      for (const a of [weight, bias]) for (let i = 0; i < a.length; i++) if (a[i]! > 1) throw new UsageError(`${mPath}: mask values must be 0 or 1`);
      return { weight, bias };
    });
  } else {
    masks = ops.map((op) => ({ weight: new Uint8Array(weightShape(op).reduce((a, b) => a * b, 1)).fill(1), bias: new Uint8Array(biasLength(op)).fill(1) }));
  }
  return { model: { arch, params, masks }, file };
}
