/**
 * The sparse export of a pruned model: a folder with `model.json` (the same tfjs `modelTopology` the tfjs export
 * writes, plus a `sparseWeights` section naming and shaping every weight tensor in Keras order; no
 * `weightsManifest`, so plain tfjs does not mistake it for a LayersModel) and one binary file `weights.sparse`.
 * loadSparseModel decodes it to dense float32 weights and builds the tfjs LayersModel in memory.
 *
 * The kernels and biases of prunable layers (conv2d, depthwise, dense) keep only the non-zero entries of their
 * masked values: the gaps between consecutive non-zero flat indices, Golomb–Rice coded with the parameter k that
 * makes that tensor's code shortest, then the kept values. At the densities pruning reaches (around 1%) a gap code
 * costs about log2(1/density) + 2 bits per kept weight, far below a bitmap's 1 bit per weight. A zero of either sign
 * is not kept (it decodes as +0). The other tensors (BatchNorm) are stored dense.
 *
 * weights.sparse, all numbers little-endian:
 *   'PRSP', version (u8), tensor count (LEB128);
 *   per tensor, in the order of sparseWeights.weights:
 *     mode (u8): bit 0 set = sparse; bits 1..2 = value type (0 float32, 1 float16, 2 uint16, 3 uint8);
 *     sparse only: non-zero count n (LEB128), Rice parameter k (u8), the n gap codes bit-packed least significant
 *       bit first and padded to a byte (gap = index − previous index − 1, the first gap = the first index; each is
 *       ⌊gap/2^k⌋ one bits, a zero bit, then the k low bits of gap, least significant first);
 *     uint8/uint16 only: scale, min (float64); a value is code·scale + min, rounded to float32 (as tfjs dequantises);
 *     the values: n of them (sparse) or the tensor's size (dense).
 * Quantised sparse values use the kept values' own min..max (the zeros are not stored, so 0 need not be a code);
 * quantised dense tensors use quantizeAffine, whose range keeps 0 exact, as the tfjs export does.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from '../../foundation/atomic.js';
import { dirname, isAbsolute, join } from 'node:path';
import type { Architecture } from '../graph.js';
import { maskedParams, type LayerMasks, type ModelParams } from '../params.js';
import { UsageError } from '../../foundation/errors.js';
import { kerasLayers, kerasTopology } from './write.js';
import { floatToHalf, halfToFloat, quantizeAffine, type Quantization, type WeightSpec } from './weights.js';

export const SPARSE_FORMAT = 'prunus-sparse';
export const SPARSE_VERSION = 1;
export const SPARSE_FILE = 'weights.sparse';
/** Rice parameters tried per tensor. */
export const MAX_RICE_K = 20;
const MAGIC = 'PRSP';

export type SparseQuantization = Quantization | 'none';
/** Value types by their code in the mode byte. */
const VALUE_TYPES: readonly SparseQuantization[] = ['none', 'float16', 'uint16', 'uint8'];
const VALUE_BYTES = [4, 2, 2, 1];

export interface SparseOptions {
  quantize?: SparseQuantization;
}
export interface SparseModel {
  /** The model.json object (written minified). */
  modelJson: Record<string, unknown>;
  /** The bytes of weights.sparse. */
  bytes: Uint8Array;
}
/** What model.json's `sparseWeights` holds. */
export interface SparseSection {
  path: string;
  format: typeof SPARSE_FORMAT;
  version: number;
  /** How positions are coded, and the value type the encoder was asked for (each tensor's mode byte decides). */
  index: 'rice-gaps';
  quantize: SparseQuantization;
  /** Every weight tensor in Keras order, as tfjs's weight specs name and shape them. */
  weights: { name: string; shape: number[] }[];
}

// ---------------------------------------------------------------- encoding

/** Gaps between consecutive non-zero flat indices (the first gap is the first index), and the kept values. */
function nonZeros(values: Float32Array): { gaps: number[]; kept: Float32Array } {
  const gaps: number[] = [];
  const kept: number[] = [];
  let prev = -1;
  for (let i = 0; i < values.length; i++) {
    if (values[i] !== 0) {
      gaps.push(i - prev - 1);
      kept.push(values[i]!);
      prev = i;
    }
  }
  return { gaps, kept: Float32Array.from(kept) };
}

/** Bits of the Rice code of every gap with parameter k. */
export function riceBits(gaps: readonly number[], k: number): number {
  const p = 2 ** k;
  let bits = gaps.length * (k + 1);
  for (const g of gaps) bits += Math.floor(g / p);
  return bits;
}

/** The k in 0..MAX_RICE_K with the shortest code (the smallest such k on ties). */
export function bestRiceK(gaps: readonly number[]): { k: number; bits: number } {
  let best = { k: 0, bits: riceBits(gaps, 0) };
  for (let k = 1; k <= MAX_RICE_K; k++) {
    const bits = riceBits(gaps, k);
    if (bits < best.bits) best = { k, bits };
  }
  return best;
}

function riceEncode(gaps: readonly number[], k: number, bits: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(bits / 8));
  const p = 2 ** k;
  let pos = 0;
  for (const g of gaps) {
    const q = Math.floor(g / p);
    for (let j = 0; j < q; j++, pos++) out[pos >>> 3] |= 1 << (pos & 7);
    pos++; // the terminating zero
    const r = g - q * p;
    for (let j = 0; j < k; j++, pos++) if ((r >>> j) & 1) out[pos >>> 3] |= 1 << (pos & 7);
  }
  return out;
}

function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n % 128;
    n = Math.floor(n / 128);
    out.push(n > 0 ? b | 0x80 : b);
  } while (n > 0);
  return out;
}

/** Values as float32/float16 bytes, or uint8/uint16 codes preceded by scale and min (float64). */
function encodeValues(values: Float32Array, type: SparseQuantization, sparse: boolean): Uint8Array {
  const n = values.length;
  if (type === 'none' || type === 'float16') {
    const w = VALUE_BYTES[VALUE_TYPES.indexOf(type)]!;
    const out = new Uint8Array(n * w);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) {
      if (type === 'none') dv.setFloat32(4 * i, values[i]!, true);
      else dv.setUint16(2 * i, floatToHalf(values[i]!), true);
    }
    return out;
  }
  const qmax = type === 'uint8' ? 255 : 65535;
  let scale: number;
  let min: number;
  let codes: ArrayLike<number>;
  if (sparse) {
    // The kept values' own range: no code is spent on the pruned zeros.
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    min = n > 0 ? lo : 0;
    scale = (hi - lo) / qmax;
    if (!(scale > 0)) scale = 1;
    const c = new Uint16Array(n);
    for (let i = 0; i < n; i++) c[i] = Math.min(qmax, Math.max(0, Math.round((values[i]! - min) / scale)));
    codes = c;
  } else {
    ({ codes, scale, min } = quantizeAffine(values, type));
  }
  const w = type === 'uint8' ? 1 : 2;
  const out = new Uint8Array(16 + n * w);
  const dv = new DataView(out.buffer);
  dv.setFloat64(0, scale, true);
  dv.setFloat64(8, min, true);
  for (let i = 0; i < n; i++) {
    if (w === 1) out[16 + i] = codes[i]!;
    else dv.setUint16(16 + 2 * i, codes[i]!, true);
  }
  return out;
}

/** A weight tensor to encode: `sparse` ones keep only their non-zero entries. */
export interface SparseTensorInput {
  name: string;
  shape: number[];
  values: Float32Array;
  sparse: boolean;
}

/** The bytes of weights.sparse for these tensors (in this order), and the sparseWeights section describing them. */
export function encodeSparseTensors(tensors: readonly SparseTensorInput[], quantize: SparseQuantization = 'none'): { section: SparseSection; bytes: Uint8Array } {
  const typeCode = VALUE_TYPES.indexOf(quantize);
  if (typeCode < 0) throw new UsageError(`sparse export: quantize '${String(quantize)}' (expected ${VALUE_TYPES.join(', ')})`);
  const chunks: Uint8Array[] = [Uint8Array.from([...MAGIC].map((c) => c.charCodeAt(0))), Uint8Array.of(SPARSE_VERSION), Uint8Array.from(leb128(tensors.length))];
  for (const t of tensors) {
    chunks.push(Uint8Array.of((typeCode << 1) | (t.sparse ? 1 : 0)));
    if (t.sparse) {
      const { gaps, kept } = nonZeros(t.values);
      const { k, bits } = bestRiceK(gaps);
      chunks.push(Uint8Array.from([...leb128(gaps.length), k]), riceEncode(gaps, k, bits), encodeValues(kept, quantize, true));
    } else {
      chunks.push(encodeValues(t.values, quantize, false));
    }
  }
  const bytes = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  const section: SparseSection = {
    path: SPARSE_FILE,
    format: SPARSE_FORMAT,
    version: SPARSE_VERSION,
    index: 'rice-gaps',
    quantize,
    weights: tensors.map((t) => ({ name: t.name, shape: t.shape })),
  };
  return { section, bytes };
}

/**
 * A pruned model in the sparse format: the masked kernels and biases of prunable layers keep only their non-zeros
 * (Rice-coded positions, then values), the other tensors are dense; values float32 or quantised per tensor.
 */
export function encodeSparseModel(arch: Architecture, params: ModelParams, masks: LayerMasks[], opts: SparseOptions = {}): SparseModel {
  const masked = maskedParams(params, masks);
  const { layers, tensors, output } = kerasLayers(arch, masked);
  // kerasLayers hands out the very arrays it was given, so the prunable tensors are known by identity.
  const prunable = new Set<Float32Array>(masked.layers.flatMap((l) => [l.weight, l.bias]));
  const { section, bytes } = encodeSparseTensors(
    tensors.map((t) => ({ ...t, sparse: prunable.has(t.values) })),
    opts.quantize ?? 'none',
  );
  const modelJson = { format: SPARSE_FORMAT, generatedBy: 'prunus', modelTopology: kerasTopology(arch, layers, output), sparseWeights: section };
  return { modelJson, bytes };
}

/** Writes model.json (minified) and weights.sparse into an existing folder. */
export function writeSparseModelFiles(dir: string, encoded: SparseModel): void {
  const section = encoded.modelJson.sparseWeights as SparseSection;
  writeFile(join(dir, section.path ?? SPARSE_FILE), encoded.bytes);
  writeFile(join(dir, 'model.json'), JSON.stringify(encoded.modelJson));
}

// ---------------------------------------------------------------- decoding

/** Reads weights.sparse front to back; every read past the end is a one-line UsageError naming the file. */
class Reader {
  pos = 0;
  private readonly dv: DataView;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly file: string,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): number {
    if (this.pos + n > this.bytes.length) throw new UsageError(`${this.file}: truncated (${what} needs bytes ${this.pos}..${this.pos + n}, the file has ${this.bytes.length})`);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8(what: string): number {
    return this.bytes[this.need(1, what)]!;
  }
  f64(what: string): number {
    return this.dv.getFloat64(this.need(8, what), true);
  }
  leb128(what: string): number {
    let n = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = this.u8(what);
      n += (b & 0x7f) * shift;
      if (!(b & 0x80)) return n;
      if (shift > 2 ** 42) throw new UsageError(`${this.file}: corrupt (${what} is not a valid count)`);
    }
  }
  /** The n Rice-coded gaps at the current position as flat indices below `size`; moves to the next whole byte. */
  indices(n: number, k: number, size: number, what: string): Int32Array {
    const out = new Int32Array(n);
    const end = this.bytes.length * 8;
    let pos = this.pos * 8;
    const bit = (): number => {
      if (pos >= end) throw new UsageError(`${this.file}: truncated (the index code of ${what} runs past the end at byte ${this.bytes.length})`);
      const b = (this.bytes[pos >>> 3]! >>> (pos & 7)) & 1;
      pos++;
      return b;
    };
    const p = 2 ** k;
    let prev = -1;
    for (let i = 0; i < n; i++) {
      let q = 0;
      while (bit()) if (++q > size) throw new UsageError(`${this.file}: corrupt (index code of ${what} exceeds its ${size} entries)`);
      let r = 0;
      for (let j = 0; j < k; j++) r += bit() * 2 ** j;
      const index = prev + 1 + q * p + r;
      if (index >= size) throw new UsageError(`${this.file}: corrupt (${what} has a non-zero at index ${index} of ${size})`);
      out[i] = prev = index;
    }
    this.pos = Math.ceil(pos / 8);
    return out;
  }
  /** n values of the given type, dequantised to float32. */
  values(n: number, type: SparseQuantization, what: string): Float32Array {
    const out = new Float32Array(n);
    if (type === 'uint8' || type === 'uint16') {
      const scale = this.f64(`the scale of ${what}`);
      const min = this.f64(`the min of ${what}`);
      if (!Number.isFinite(scale) || !Number.isFinite(min)) throw new UsageError(`${this.file}: corrupt (${what} has scale ${scale}, min ${min})`);
      const at = this.need(n * (type === 'uint8' ? 1 : 2), `the values of ${what}`);
      for (let i = 0; i < n; i++) out[i] = (type === 'uint8' ? this.bytes[at + i]! : this.dv.getUint16(at + 2 * i, true)) * scale + min;
    } else if (type === 'float16') {
      const at = this.need(2 * n, `the values of ${what}`);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(this.dv.getUint16(at + 2 * i, true));
    } else {
      const at = this.need(4 * n, `the values of ${what}`);
      for (let i = 0; i < n; i++) out[i] = this.dv.getFloat32(at + 4 * i, true);
    }
    return out;
  }
}

function section(modelJson: Record<string, unknown>, jsonFile: string): SparseSection {
  const s = modelJson.sparseWeights as SparseSection | undefined;
  if (typeof s !== 'object' || s === null) throw new UsageError(`${jsonFile}: no sparseWeights section (not a prunus sparse model)`);
  if (s.format !== SPARSE_FORMAT || s.version !== SPARSE_VERSION) throw new UsageError(`${jsonFile}: sparseWeights format ${String(s.format)} version ${String(s.version)} (this prunus reads ${SPARSE_FORMAT} version ${SPARSE_VERSION})`);
  if (typeof s.path !== 'string' || s.path === '' || isAbsolute(s.path) || s.path.split(/[\\/]/).includes('..')) throw new UsageError(`${jsonFile}: sparseWeights.path '${String(s.path)}' must be a plain file name beside it`);
  if (!Array.isArray(s.weights)) throw new UsageError(`${jsonFile}: sparseWeights.weights is not a list`);
  for (const w of s.weights) {
    if (typeof w?.name !== 'string' || !Array.isArray(w.shape) || !w.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new UsageError(`${jsonFile}: sparseWeights.weights has an entry without a name and a valid shape`);
    }
  }
  return s;
}

/**
 * Dense float32 weights of a sparse model and their tfjs weight specs (ready for tf.io.fromMemory). `files` names
 * model.json and weights.sparse in error messages.
 */
export function decodeSparseWeights(modelJson: Record<string, unknown>, bytes: Uint8Array, files: { json?: string; weights?: string } = {}): { specs: WeightSpec[]; weights: Uint8Array } {
  const jsonFile = files.json ?? 'model.json';
  const file = files.weights ?? SPARSE_FILE;
  const s = section(modelJson, jsonFile);
  const r = new Reader(bytes, file);
  r.need(MAGIC.length + 1, 'the header');
  const magic = String.fromCharCode(...bytes.subarray(0, MAGIC.length));
  if (magic !== MAGIC) throw new UsageError(`${file}: bad magic ${JSON.stringify(magic)} (not a prunus sparse weights file, which starts with '${MAGIC}')`);
  const version = bytes[MAGIC.length]!;
  if (version !== SPARSE_VERSION) throw new UsageError(`${file}: version ${version} (this prunus reads version ${SPARSE_VERSION})`);
  const count = r.leb128('the tensor count');
  if (count !== s.weights.length) throw new UsageError(`${file}: ${count} tensors, ${jsonFile} lists ${s.weights.length}`);
  const sizes = s.weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const weights = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let off = 0;
  s.weights.forEach((w, t) => {
    const what = `tensor ${w.name}`;
    const size = sizes[t]!;
    const mode = r.u8(`the mode of ${what}`);
    const type = VALUE_TYPES[(mode >> 1) & 3]!;
    if (mode > 7) throw new UsageError(`${file}: corrupt (mode byte ${mode} of ${what})`);
    if (mode & 1) {
      const n = r.leb128(`the non-zero count of ${what}`);
      const k = r.u8(`the Rice parameter of ${what}`);
      if (n > size || k > MAX_RICE_K) throw new UsageError(`${file}: corrupt (${what} claims ${n} non-zeros of ${size} with Rice parameter ${k})`);
      const idx = r.indices(n, k, size, what);
      const vals = r.values(n, type, what);
      for (let i = 0; i < n; i++) weights[off + idx[i]!] = vals[i]!;
    } else {
      weights.set(r.values(size, type, what), off);
    }
    off += size;
  });
  if (r.pos !== bytes.length) throw new UsageError(`${file}: ${bytes.length - r.pos} bytes after the last tensor (corrupt, or not written for ${jsonFile})`);
  const specs: WeightSpec[] = s.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' }));
  return { specs, weights: new Uint8Array(weights.buffer) };
}

/** Reads a sparse model folder (or its model.json): the topology and the decoded dense weights. */
export function readSparseModelFiles(path: string): { modelJson: Record<string, unknown>; specs: WeightSpec[]; weights: Uint8Array } {
  const jsonPath = path.endsWith('.json') ? path : join(path, 'model.json');
  if (!existsSync(jsonPath)) throw new UsageError(`${jsonPath}: missing (a sparse model folder holds model.json and ${SPARSE_FILE})`);
  let modelJson: Record<string, unknown>;
  try {
    modelJson = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`${jsonPath}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof modelJson !== 'object' || modelJson === null || typeof modelJson.modelTopology !== 'object') throw new UsageError(`${jsonPath}: no modelTopology`);
  const bin = join(dirname(jsonPath), section(modelJson, jsonPath).path);
  if (!existsSync(bin)) throw new UsageError(`${bin}: missing (the sparse weights named by ${jsonPath})`);
  return { modelJson, ...decodeSparseWeights(modelJson, readFileSync(bin), { json: jsonPath, weights: bin }) };
}

/** Loads a sparse model folder (or its model.json) as a tfjs LayersModel. Caller disposes it. */
export async function loadSparseModel(path: string): Promise<tf.LayersModel> {
  const { modelJson, specs, weights } = readSparseModelFiles(path);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology as object, weightSpecs: specs as tf.io.WeightsManifestEntry[], weightData }));
}
