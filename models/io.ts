/**
 * The one model folder format: a TensorFlow.js LayersModel (`model.json` + `weights.bin`, loadable with plain
 * `tf.loadLayersModel`; pruned weights stored as zeros) whose model.json also carries a `prunus` section (the exact
 * architecture, DNS magnitude statistics, provenance) beside `masks.bin` (the masks as bits: a kept weight may be
 * exactly zero, and compression counts mask entries). Writes are atomic: the folder is built aside and renamed.
 *
 * loadModel also reads a plain TensorFlow.js LayersModel (all masks one) and the first prunus format
 * (`format: prunus-model`, dense weights.bin + byte masks).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Architecture } from './graph.js';
import { prunableOps, weightShape, biasLength, batchNormOps } from './graph.js';
import { maskedParams, type PrunableModel, type ModelParams, type LayerMasks } from './params.js';
import type { MagnitudeStats } from './masks.js';
import { UsageError } from '../foundation/errors.js';
import { readJsonObject } from '../foundation/json.js';
import { writeDirAtomic, recoverDir, writeFile } from '../foundation/atomic.js';
import { layersModelFiles, writeLayersModelFiles } from './tfjs/write.js';
import { modelSha256, paramsFromWeights, readLayersModel } from './tfjs/read.js';
import { readWeights } from './tfjs/weights.js';

export const MODEL_FORMAT = 'prunus-model';
export const MODEL_FORMAT_VERSION = 2;

/** What model.json's `prunus` section holds. */
export interface PrunusSection {
  format: typeof MODEL_FORMAT;
  version: number;
  arch: Architecture;
  /** masks.bin: every prunable layer's weight then bias mask, one bit per entry, least significant bit first. */
  masks: { path: string; encoding: 'bits' };
  magnitudeStats?: MagnitudeStats[];
  meta?: Record<string, unknown>;
}

/** What a loaded model folder says about itself. */
export interface ModelFile {
  arch: Architecture;
  /** 'prunus': this format; 'tfjs': a plain LayersModel; 'prunus-v1': the first prunus format. */
  kind: 'prunus' | 'tfjs' | 'prunus-v1';
  /** Absolute path of model.json. */
  path: string;
  /** Frozen DNS magnitude statistics, when the model comes from a pruning run. */
  magnitudeStats?: MagnitudeStats[];
  /** Free-form provenance (seed, backend, source manifest...). */
  meta?: Record<string, unknown>;
}

export interface SaveExtra {
  magnitudeStats?: MagnitudeStats[];
  meta?: Record<string, unknown>;
}

/** Masks as bits, least significant first, every layer's weight then bias. */
export function packMasks(masks: readonly LayerMasks[]): Uint8Array {
  const total = masks.reduce((s, m) => s + m.weight.length + m.bias.length, 0);
  const out = new Uint8Array(Math.ceil(total / 8));
  let i = 0;
  for (const m of masks) {
    for (const a of [m.weight, m.bias]) {
      for (let j = 0; j < a.length; j++, i++) if (a[j]) out[i >> 3] |= 1 << (i & 7);
    }
  }
  return out;
}

export function unpackMasks(arch: Architecture, bytes: Uint8Array, file: string): LayerMasks[] {
  const ops = prunableOps(arch);
  const total = ops.reduce((s, op) => s + weightShape(op).reduce((a, b) => a * b, 1) + biasLength(op), 0);
  if (bytes.length !== Math.ceil(total / 8)) throw new UsageError(`${file}: ${bytes.length} bytes, the architecture's ${total} mask bits need ${Math.ceil(total / 8)}`);
  let i = 0;
  const take = (n: number): Uint8Array => {
    const a = new Uint8Array(n);
    for (let j = 0; j < n; j++, i++) a[j] = (bytes[i >> 3]! >> (i & 7)) & 1;
    return a;
  };
  return ops.map((op) => ({ weight: take(weightShape(op).reduce((a, b) => a * b, 1)), bias: take(biasLength(op)) }));
}

/** Writes the model into `dir` (replaced atomically). */
export function saveModel(dir: string, model: PrunableModel, extra: SaveExtra = {}): void {
  writeDirAtomic(dir, (tmp) => writeModelFiles(tmp, model, extra));
}

/** Writes model files into an existing folder (callers that build a larger folder atomically use this). */
export function writeModelFiles(dir: string, model: PrunableModel, extra: SaveExtra = {}): void {
  const prunus: PrunusSection = {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    arch: model.arch,
    masks: { path: 'masks.bin', encoding: 'bits' },
    ...(extra.magnitudeStats ? { magnitudeStats: extra.magnitudeStats } : {}),
    ...(extra.meta ? { meta: extra.meta } : {}),
  };
  const files = layersModelFiles(model.arch, maskedParams(model.params, model.masks), { extra: { prunus } });
  writeLayersModelFiles(dir, files);
  writeFile(join(dir, 'masks.bin'), packMasks(model.masks));
}

export interface LoadedModel {
  model: PrunableModel;
  file: ModelFile;
}

/** model.json of a model folder, a run folder holding model/, or the file itself. */
function findModelJson(path: string): string {
  if (path.endsWith('.json') && existsSync(path)) return path;
  for (const p of [join(path, 'model.json'), join(path, 'model', 'model.json')]) if (existsSync(p)) return p;
  throw new UsageError(`no model at ${path} (expected ${join(path, 'model.json')})`);
}

/** Loads a model folder (or a run folder holding `model/`, or a model.json), checking every size and value. */
export function loadModel(path: string): LoadedModel {
  recoverDir(path);
  if (existsSync(join(path, 'model'))) recoverDir(join(path, 'model'));
  const jsonPath = findModelJson(path);
  const dir = dirname(jsonPath);
  const json = readJsonObject(jsonPath);
  if (json.format === MODEL_FORMAT) return loadV1(dir, jsonPath, json);
  const section = json.prunus as PrunusSection | undefined;
  if (section && section.format === MODEL_FORMAT) {
    const arch = section.arch;
    const params = paramsFromWeights(arch, readWeights(dir, json.weightsManifest, jsonPath), jsonPath);
    const mPath = join(dir, section.masks?.path ?? 'masks.bin');
    if (!existsSync(mPath)) throw new UsageError(`missing ${mPath}`);
    const masks = unpackMasks(arch, readFileSync(mPath), mPath);
    return {
      model: { arch, params, masks },
      file: { arch, kind: 'prunus', path: jsonPath, ...(section.magnitudeStats ? { magnitudeStats: section.magnitudeStats } : {}), ...(section.meta ? { meta: section.meta } : {}) },
    };
  }
  const m = readLayersModel(jsonPath);
  const masks = m.params.layers.map((l) => ({ weight: new Uint8Array(l.weight.length).fill(1), bias: new Uint8Array(l.bias.length).fill(1) }));
  return { model: { arch: m.arch, params: m.params, masks }, file: { arch: m.arch, kind: 'tfjs', path: jsonPath, meta: { sha256: modelSha256(jsonPath, json) } } };
}

/** The first prunus format: model.json (arch + manifests), dense float32 weights.bin, one byte per mask entry. */
function loadV1(dir: string, jsonPath: string, file: Record<string, unknown>): LoadedModel {
  const arch = file.arch as Architecture;
  const wPath = join(dir, 'weights.bin');
  const mPath = join(dir, 'masks.bin');
  if (!existsSync(wPath)) throw new UsageError(`missing ${wPath}`);
  const ops = prunableOps(arch);
  const bns = batchNormOps(arch);
  const count = (op: (typeof ops)[number]) => weightShape(op).reduce((a, b) => a * b, 1);
  const wBytes = readFileSync(wPath);
  const need = 4 * (ops.reduce((s, op) => s + count(op) + biasLength(op), 0) + bns.reduce((s, op) => s + 4 * op.channels, 0));
  if (wBytes.length !== need) throw new UsageError(`${wPath}: ${wBytes.length} bytes, the architecture needs ${need}`);
  const floats = new Float32Array(wBytes.buffer.slice(wBytes.byteOffset, wBytes.byteOffset + wBytes.length));
  for (let i = 0; i < floats.length; i++) if (!Number.isFinite(floats[i]!)) throw new UsageError(`${wPath}: value ${floats[i]} at index ${i} (NaN or infinite weights are refused)`);
  let off = 0;
  const take = (n: number): Float32Array => floats.slice(off, (off += n));
  const params: ModelParams = {
    layers: ops.map((op) => ({ weight: take(count(op)), bias: take(biasLength(op)) })),
    batchNorms: bns.map((op) => ({ gamma: take(op.channels), beta: take(op.channels), movingMean: take(op.channels), movingVariance: take(op.channels) })),
  };
  let masks: LayerMasks[];
  if (existsSync(mPath)) {
    const mBytes = readFileSync(mPath);
    const mNeed = ops.reduce((s, op) => s + count(op) + biasLength(op), 0);
    if (mBytes.length !== mNeed) throw new UsageError(`${mPath}: ${mBytes.length} bytes, the architecture needs ${mNeed}`);
    let mo = 0;
    masks = ops.map((op) => {
      const weight = new Uint8Array(mBytes.subarray(mo, (mo += count(op))));
      const bias = new Uint8Array(mBytes.subarray(mo, (mo += biasLength(op))));
      for (const a of [weight, bias]) for (let i = 0; i < a.length; i++) if (a[i]! > 1) throw new UsageError(`${mPath}: mask values must be 0 or 1`);
      return { weight, bias };
    });
  } else {
    masks = ops.map((op) => ({ weight: new Uint8Array(count(op)).fill(1), bias: new Uint8Array(biasLength(op)).fill(1) }));
  }
  return {
    model: { arch, params, masks },
    file: { arch, kind: 'prunus-v1', path: jsonPath, ...(file.magnitudeStats ? { magnitudeStats: file.magnitudeStats as MagnitudeStats[] } : {}), ...(file.meta ? { meta: file.meta as Record<string, unknown> } : {}) },
  };
}
