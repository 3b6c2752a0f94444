/**
 * Reads a Caffe-layout weights manifest (the format of the OLMP released-model fixtures: manifest.json beside a
 * raw weights.bin) and turns it into a prunus model. Every field is checked against the file and the architecture;
 * anything that does not fit is refused with a one-line UsageError naming the file and the problem.
 *
 * Manifest: { file?, byteLength?, sha256?, endianness?, tensors: [{ layer, type?, role, shape, dtype, byteOffset,
 * byteLength, count?, nonzeroInArray?, file? }] } with role weight | bias | weight_mask | bias_mask, dtype float32
 * (masks also uint8), arrays in Caffe's row-major layouts (InnerProduct [out,in], Convolution [out,in,kh,kw]).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { getArchitecture } from '../architectures.js';
import { prunableOps, biasLength, type Architecture } from '../graph.js';
import type { PrunableModel } from '../params.js';
import { magnitudeStats, type MagnitudeStats } from '../masks.js';
import { UsageError } from '../../foundation/errors.js';
import { readJsonObject } from '../../foundation/json.js';
import { caffeToTfjsParams, caffeWeightShape, type CaffeLayerArrays, type CaffeToTfjsOptions } from './layout.js';

export const ROLES = ['weight', 'bias', 'weight_mask', 'bias_mask'] as const;
export type Role = (typeof ROLES)[number];

export interface ManifestTensor {
  layer: string;
  type?: string;
  role: Role;
  shape: number[];
  dtype: 'float32' | 'uint8';
  byteOffset: number;
  byteLength: number;
  count?: number;
  nonzeroInArray?: number;
  file?: string;
}

export interface CaffeManifest {
  model?: string;
  source?: unknown;
  file?: string;
  byteLength?: number;
  sha256?: string;
  endianness?: string;
  tensors: ManifestTensor[];
  verified?: unknown;
  [key: string]: unknown;
}

const CAFFE_TYPES: Record<string, 'dense' | 'conv2d'> = {
  InnerProduct: 'dense',
  CInnerProduct: 'dense',
  Convolution: 'conv2d',
  CConvolution: 'conv2d',
};

const isNonNegInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
const fmt = (s: readonly number[]): string => `[${s.join(',')}]`;

/** Finds manifest.json: `path` is the folder holding it or the file itself. */
export function manifestPath(path: string): string {
  const p = resolve(path);
  if (!existsSync(p)) throw new UsageError(`--manifest ${path} does not exist`);
  if (statSync(p).isDirectory()) {
    const m = join(p, 'manifest.json');
    if (!existsSync(m)) throw new UsageError(`${m}: no manifest.json in ${path}`);
    return m;
  }
  return p;
}

/** Parses manifest.json and checks its structure (not yet its contents against the file or a model). */
export function readManifest(path: string): { path: string; manifest: CaffeManifest } {
  const mp = manifestPath(path);
  const m = readJsonObject(mp) as CaffeManifest;
  if (!Array.isArray(m.tensors) || m.tensors.length === 0) throw new UsageError(`${mp}: no 'tensors' array`);
  if (m.file !== undefined && typeof m.file !== 'string') throw new UsageError(`${mp}: 'file' must be a string`);
  if (m.byteLength !== undefined && !isNonNegInt(m.byteLength)) throw new UsageError(`${mp}: 'byteLength' must be a non-negative integer`);
  if (m.sha256 !== undefined && (typeof m.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(m.sha256))) throw new UsageError(`${mp}: 'sha256' must be 64 hex digits`);
  if ((m.byteLength !== undefined || m.sha256 !== undefined) && m.file === undefined) throw new UsageError(`${mp}: 'byteLength'/'sha256' given without the 'file' they describe`);
  if (m.endianness !== undefined && m.endianness !== 'little' && m.endianness !== 'big') throw new UsageError(`${mp}: endianness '${String(m.endianness)}' (expected little or big)`);
  m.tensors.forEach((t, i) => {
    const where = `${mp}: tensor ${i}`;
    if (typeof t !== 'object' || t === null) throw new UsageError(`${where}: not an object`);
    if (typeof t.layer !== 'string' || t.layer === '') throw new UsageError(`${where}: missing 'layer'`);
    const what = `${where} (${t.layer} ${String(t.role)})`;
    if (!(ROLES as readonly string[]).includes(t.role)) throw new UsageError(`${what}: role must be one of ${ROLES.join(', ')}`);
    if (t.type !== undefined && !(t.type in CAFFE_TYPES)) throw new UsageError(`${what}: unknown Caffe layer type '${String(t.type)}' (known: ${Object.keys(CAFFE_TYPES).join(', ')})`);
    if (!Array.isArray(t.shape) || t.shape.length === 0 || !t.shape.every((d) => isNonNegInt(d) && d > 0)) throw new UsageError(`${what}: 'shape' must be a list of positive integers`);
    if (t.dtype !== 'float32' && t.dtype !== 'uint8') throw new UsageError(`${what}: dtype '${String(t.dtype)}' (expected float32 or uint8)`);
    if (!isNonNegInt(t.byteOffset)) throw new UsageError(`${what}: 'byteOffset' must be a non-negative integer`);
    if (!isNonNegInt(t.byteLength)) throw new UsageError(`${what}: 'byteLength' must be a non-negative integer`);
    if (t.count !== undefined && !isNonNegInt(t.count)) throw new UsageError(`${what}: 'count' must be a non-negative integer`);
    if (t.nonzeroInArray !== undefined && !isNonNegInt(t.nonzeroInArray)) throw new UsageError(`${what}: 'nonzeroInArray' must be a non-negative integer`);
    if (t.file !== undefined && typeof t.file !== 'string') throw new UsageError(`${what}: 'file' must be a string`);
  });
  return { path: mp, manifest: m };
}

export interface DataFileRecord {
  file: string;
  byteLength: number;
  sha256: string;
}

/** A manifest read and checked against its data file(s) and an architecture; arrays still in Caffe layout. */
export interface CaffeArrays {
  arch: Architecture;
  manifestPath: string;
  manifest: CaffeManifest;
  layers: CaffeLayerArrays[];
  /** Whether the manifest carries masks (for at least one layer). */
  hasMasks: boolean;
  files: DataFileRecord[];
}

function resolveDataFile(mp: string, name: string): string {
  if (isAbsolute(name) || name.split(/[\\/]/).includes('..')) throw new UsageError(`${mp}: data file '${name}' must be a plain name inside the manifest's folder`);
  return join(dirname(mp), name);
}

/**
 * Reads the arrays of a Caffe manifest for model `modelName` (getArchitecture), checking: layer names and Caffe types
 * against the architecture, shapes, dtypes, count/byteLength/byteOffset against the file's length, overlaps, the
 * file's byteLength and sha256 when the manifest gives them, nonzeroInArray when given, finite weights and 0/1 masks.
 */
export function readCaffeArrays(manifestDirOrFile: string, modelName: string): CaffeArrays {
  const arch = getArchitecture(modelName);
  const foreign = arch.ops.find((op) => !['conv2d', 'dense', 'maxpool', 'flatten'].includes(op.type));
  if (foreign) throw new UsageError(`${modelName}: models with ${foreign.type} layers cannot be imported from a Caffe manifest`);
  const { path: mp, manifest: m } = readManifest(manifestDirOrFile);
  const ops = prunableOps(arch);
  const opIndex = new Map(ops.map((op, k) => [op.name, k]));

  // Layer names first: a manifest for another network is reported as such, not as a shape mismatch.
  const manifestLayers = [...new Set(m.tensors.map((t) => t.layer))];
  const unknown = manifestLayers.filter((l) => !opIndex.has(l));
  if (unknown.length > 0) {
    throw new UsageError(
      `${mp}: layer${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} not in ${arch.name} (its layers: ${ops.map((o) => o.name).join(', ')}; manifest has ${manifestLayers.join(', ')}${m.model ? `, model '${m.model}'` : ''}) — is this a manifest for another model?`,
    );
  }

  // Data files: read once each, length and (for the manifest's own file) byteLength/sha256 checked.
  const endian = m.endianness ?? 'little';
  const fileBytes = new Map<string, Buffer>();
  const files: DataFileRecord[] = [];
  const dataFile = (name: string): Buffer => {
    let b = fileBytes.get(name);
    if (b) return b;
    const p = resolveDataFile(mp, name);
    if (!existsSync(p)) throw new UsageError(`${p}: missing (named by ${mp})`);
    b = readFileSync(p);
    const sha = createHash('sha256').update(b).digest('hex');
    if (name === m.file) {
      if (m.byteLength !== undefined && b.length !== m.byteLength) {
        throw new UsageError(`${p}: ${b.length} bytes, the manifest says ${m.byteLength} (${b.length < m.byteLength ? 'truncated' : 'extra bytes'})`);
      }
      if (m.sha256 !== undefined && sha !== m.sha256.toLowerCase()) throw new UsageError(`${p}: sha256 ${sha} does not match the manifest's ${m.sha256}`);
    }
    fileBytes.set(name, b);
    files.push({ file: name, byteLength: b.length, sha256: sha });
    return b;
  };
  if (m.file !== undefined) dataFile(m.file);

  const seen = new Map<string, ManifestTensor>();
  const ranges: { file: string; start: number; end: number; what: string }[] = [];
  const slots: Partial<Record<Role, Float32Array | Uint8Array>>[] = ops.map(() => ({}));
  m.tensors.forEach((t, i) => {
    const k = opIndex.get(t.layer)!;
    const op = ops[k]!;
    const what = `${mp}: tensor ${i} (${t.layer} ${t.role})`;
    const key = `${t.layer}/${t.role}`;
    if (seen.has(key)) throw new UsageError(`${what}: ${t.layer} has two '${t.role}' entries`);
    seen.set(key, t);
    if (t.type !== undefined && CAFFE_TYPES[t.type] !== op.type) {
      throw new UsageError(`${what}: Caffe type ${t.type} but ${arch.name}'s ${op.name} is ${op.type === 'dense' ? 'an InnerProduct' : 'a Convolution'} layer`);
    }
    const expected = t.role === 'weight' || t.role === 'weight_mask' ? caffeWeightShape(op) : [biasLength(op)];
    if (t.shape.length !== expected.length || t.shape.some((d, j) => d !== expected[j])) {
      throw new UsageError(`${what}: shape ${fmt(t.shape)} does not match ${arch.name}'s ${op.name} (expected ${fmt(expected)} in Caffe layout)`);
    }
    const isMask = t.role === 'weight_mask' || t.role === 'bias_mask';
    if (!isMask && t.dtype !== 'float32') throw new UsageError(`${what}: dtype ${t.dtype}, weights and biases must be float32`);
    const count = expected.reduce((a, b) => a * b, 1);
    if (t.count !== undefined && t.count !== count) throw new UsageError(`${what}: count ${t.count} does not match shape ${fmt(t.shape)} (${count})`);
    const bpe = t.dtype === 'float32' ? 4 : 1;
    if (t.byteLength !== count * bpe) throw new UsageError(`${what}: byteLength ${t.byteLength}, ${count} ${t.dtype} values take ${count * bpe}`);
    const fileName = t.file ?? m.file;
    if (fileName === undefined) throw new UsageError(`${what}: no data file named (neither the tensor's 'file' nor the manifest's)`);
    const bytes = dataFile(fileName);
    const end = t.byteOffset + t.byteLength;
    if (end > bytes.length) {
      throw new UsageError(`${resolveDataFile(mp, fileName)}: ${bytes.length} bytes, too short for ${t.layer} ${t.role} at bytes ${t.byteOffset}..${end} (truncated?)`);
    }
    ranges.push({ file: fileName, start: t.byteOffset, end, what: `${t.layer} ${t.role}` });

    const view = new DataView(bytes.buffer, bytes.byteOffset + t.byteOffset, t.byteLength);
    let nonzero = 0;
    let arr: Float32Array | Uint8Array;
    if (isMask) {
      const mask = new Uint8Array(count);
      for (let j = 0; j < count; j++) {
        const v = t.dtype === 'uint8' ? view.getUint8(j) : view.getFloat32(4 * j, endian === 'little');
        if (v !== 0 && v !== 1) throw new UsageError(`${what}: mask value ${v} at index ${j} (masks must be 0 or 1)`);
        mask[j] = v;
        nonzero += v;
      }
      arr = mask;
    } else {
      const f = new Float32Array(count);
      for (let j = 0; j < count; j++) {
        const v = view.getFloat32(4 * j, endian === 'little');
        if (!Number.isFinite(v)) throw new UsageError(`${what}: non-finite value ${v} at index ${j}`);
        f[j] = v;
        if (v !== 0) nonzero++;
      }
      arr = f;
    }
    if (t.nonzeroInArray !== undefined && t.nonzeroInArray !== nonzero) {
      throw new UsageError(`${what}: ${nonzero} non-zero values in the file, the manifest says ${t.nonzeroInArray} (corrupt file?)`);
    }
    slots[k]![t.role] = arr;
  });

  ranges.sort((a, b) => (a.file === b.file ? a.start - b.start : a.file < b.file ? -1 : 1));
  for (let i = 1; i < ranges.length; i++) {
    const a = ranges[i - 1]!;
    const b = ranges[i]!;
    if (a.file === b.file && b.start < a.end) throw new UsageError(`${mp}: ${a.what} (bytes ${a.start}..${a.end}) overlaps ${b.what} (from byte ${b.start})`);
  }

  let hasMasks = false;
  const layers: CaffeLayerArrays[] = ops.map((op, k) => {
    const s = slots[k]!;
    for (const role of ['weight', 'bias'] as const) if (!s[role]) throw new UsageError(`${mp}: no '${role}' entry for layer ${op.name}`);
    if (Boolean(s.weight_mask) !== Boolean(s.bias_mask)) {
      throw new UsageError(`${mp}: layer ${op.name} has a ${s.weight_mask ? 'weight_mask but no bias_mask' : 'bias_mask but no weight_mask'}`);
    }
    if (s.weight_mask) hasMasks = true;
    return {
      weight: s.weight as Float32Array,
      bias: s.bias as Float32Array,
      ...(s.weight_mask ? { weightMask: s.weight_mask as Uint8Array, biasMask: s.bias_mask as Uint8Array } : {}),
    };
  });
  return { arch, manifestPath: mp, manifest: m, layers, hasMasks, files };
}

export interface ImportedModel {
  model: PrunableModel;
  /** DNS magnitude statistics of the dense (unmasked) weights and biases, per prunable layer. */
  magnitudeStats: MagnitudeStats[];
  /** Provenance stored in model.json's meta. */
  meta: Record<string, unknown>;
}

/** Reads, checks and maps a Caffe manifest to a prunus model (tfjs layouts, masks all ones when the manifest has none). */
export function importCaffeManifest(manifestDirOrFile: string, modelName: string, opts: CaffeToTfjsOptions = {}): ImportedModel {
  const a = readCaffeArrays(manifestDirOrFile, modelName);
  const { params, masks } = caffeToTfjsParams(a.arch, a.layers, opts);
  const stats = params.layers.map((l) => magnitudeStats(l));
  const main = a.files.find((f) => f.file === a.manifest.file) ?? a.files[0]!;
  const meta: Record<string, unknown> = {
    importedFrom: 'caffe-manifest',
    manifest: a.manifestPath,
    ...(a.manifest.model !== undefined ? { manifestModel: a.manifest.model } : {}),
    ...(a.manifest.source !== undefined ? { source: a.manifest.source } : {}),
    file: main.file,
    sha256: main.sha256,
    byteLength: main.byteLength,
    ...(a.files.length > 1 ? { files: a.files } : {}),
    masks: a.hasMasks ? 'from the manifest' : 'none in the manifest: all ones',
    layout: opts.skipFlattenPermutation
      ? 'Caffe→tfjs WITHOUT the C,H,W→H,W,C flatten permutation (regression test only)'
      : 'Caffe→tfjs: dense [out,in]→[in,out]; conv [out,in,kh,kw]→[kh,kw,in,out]; flattened input C,H,W→H,W,C',
    ...(a.manifest.verified !== undefined ? { manifestVerified: a.manifest.verified } : {}),
  };
  return { model: { arch: a.arch, params, masks }, magnitudeStats: stats, meta };
}
