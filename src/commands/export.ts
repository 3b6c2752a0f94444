/**
 * `prunus export`: a run's (or any model folder's) final model as files a user loads without prunus:
 *   tfjs    a TensorFlow.js LayersModel (model.json + weights.bin) for plain `tf.loadLayersModel`: removed channels
 *           physically gone, pruned weights stored as zeros, a softmax output restored;
 *   sparse  the same topology plus one compact weight file (positions of the kept weights Rice-coded, then their
 *           values), rebuilt by `import { loadSparseModel } from 'prunus'`.
 * Weights may be quantised (float16, uint16, uint8) as tfjs does. Written atomically; the sizes on disk, raw and
 * gzipped, are printed beside the dense float32 original.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseFlags, COMMON_FLAGS } from '../cli-args.js';
import { parseBackendName } from '../../backends/backend.js';
import { UsageError } from '../../foundation/errors.js';
import { writeDirAtomic } from '../../foundation/atomic.js';
import { loadModel } from '../../models/io.js';
import { maskedParams, sizeReport, type ModelParams } from '../../models/params.js';
import { layersModelFiles, writeLayersModelFiles } from '../../models/tfjs/write.js';
import { encodeSparseModel, writeSparseModelFiles } from '../../models/tfjs/sparse.js';
import { QUANTIZATIONS, type Quantization } from '../../models/tfjs/weights.js';
import { prunusVersion } from '../run-dir.js';

export const summary = "prunus export: write a run's final model as a TensorFlow.js LayersModel or a compact sparse model";
export const usage = `usage: prunus export <run-dir | model folder | model.json> --out DIR [options]

  --format F      tfjs: a LayersModel for plain tf.loadLayersModel (default) | sparse: the topology and one compact
                  weight file (kept weights' positions and values), loaded with loadSparseModel from 'prunus'
  --quantize Q    none (default) | float16 | uint16 | uint8: weights quantised as tfjs does (0 stays exactly 0)
  --out DIR       the export folder (must not exist, or be empty)
  --json          the sizes as one JSON object

Prints the bytes on disk, raw and gzipped, of the export and of the dense float32 original.`;

const FLAGS = {
  ...COMMON_FLAGS,
  out: { type: 'string' },
  format: { type: 'string', default: 'tfjs' },
  quantize: { type: 'string', default: 'none' },
} as const;

export const EXPORT_FORMATS = ['tfjs', 'sparse'] as const;

export interface ExportReport {
  source: string;
  out: string;
  format: (typeof EXPORT_FORMATS)[number];
  quantize: Quantization | 'none';
  model: string;
  nonZero: number;
  params: number;
  compression: number;
  files: { name: string; bytes: number; gzipBytes: number }[];
  bytes: number;
  gzipBytes: number;
  dense: { bytes: number; gzipBytes: number };
}

function folderSizes(dir: string): { name: string; bytes: number; gzipBytes: number }[] {
  return readdirSync(dir)
    .sort()
    .map((name) => {
      const b = readFileSync(join(dir, name));
      return { name, bytes: b.length, gzipBytes: gzipSync(b, { level: 9 }).length };
    });
}

/** float32 bytes of every parameter, in order. */
function denseBytes(p: ModelParams): Uint8Array {
  const arrays = [...p.layers.flatMap((l) => [l.weight, l.bias]), ...p.batchNorms.flatMap((b) => [b.gamma, b.beta, b.movingMean, b.movingVariance])];
  const out = new Uint8Array(arrays.reduce((s, a) => s + a.byteLength, 0));
  let off = 0;
  for (const a of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
    off += a.byteLength;
  }
  return out;
}

/**
 * The dense original's float32 weights: the reference a run pruned (its report names it), else the model's own
 * weights as stored.
 */
function originalWeights(source: string, params: ModelParams): Uint8Array {
  const report = join(source, 'report.json');
  if (existsSync(report)) {
    try {
      const ref = (JSON.parse(readFileSync(report, 'utf8')) as { reference?: { source?: unknown } }).reference?.source;
      if (typeof ref === 'string' && existsSync(ref)) return denseBytes(loadModel(ref).model.params);
    } catch {
      // An unreadable reference falls back to the model's own weights.
    }
  }
  return denseBytes(params);
}

function kb(n: number): string {
  return n < 10_000 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;
}

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'export');
  parseBackendName(v.backend); // accepted like every command's; exporting runs no tensors
  if (positionals.length !== 1) throw new UsageError(`export: give one run or model folder${positionals.length > 1 ? ` (got ${positionals.length} arguments)` : ''}`);
  if (!v.out) throw new UsageError('export: --out DIR is required');
  const format = v.format as (typeof EXPORT_FORMATS)[number];
  if (!EXPORT_FORMATS.includes(format)) throw new UsageError(`export: unknown format '${v.format}' (known: ${EXPORT_FORMATS.join(', ')})`);
  const quantize = v.quantize as Quantization | 'none';
  if (!QUANTIZATIONS.includes(quantize)) throw new UsageError(`export: unknown quantisation '${v.quantize}' (known: ${QUANTIZATIONS.join(', ')})`);
  const out = resolve(v.out);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new UsageError(`export: --out ${v.out} exists and is not a folder`);
    if (readdirSync(out).length > 0) throw new UsageError(`export: --out ${v.out} exists and is not empty`);
  }
  const source = resolve(positionals[0]!);
  const { model } = loadModel(source);
  const generatedBy = `prunus ${prunusVersion()}`;
  writeDirAtomic(out, (tmp) => {
    if (format === 'tfjs') writeLayersModelFiles(tmp, layersModelFiles(model.arch, maskedParams(model.params, model.masks), { quantize, generatedBy }));
    else writeSparseModelFiles(tmp, encodeSparseModel(model.arch, model.params, model.masks, { quantize }));
  });
  const files = folderSizes(out);
  const original = originalWeights(source, model.params);
  const size = sizeReport(model.arch, model.masks);
  const report: ExportReport = {
    source,
    out,
    format,
    quantize,
    model: model.arch.name,
    nonZero: size.nonZero,
    params: size.params,
    compression: size.compression,
    files,
    bytes: files.reduce((s, f) => s + f.bytes, 0),
    gzipBytes: files.reduce((s, f) => s + f.gzipBytes, 0),
    dense: { bytes: original.length, gzipBytes: gzipSync(original, { level: 9 }).length },
  };
  if (v.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
    return 0;
  }
  const lines = [
    `exported ${report.model} (${report.nonZero} / ${report.params} non-zero, ${report.compression.toFixed(1)}x) as ${format}${quantize !== 'none' ? ` (${quantize})` : ''} to ${out}`,
    ...files.map((f) => `  ${f.name.padEnd(16)} ${kb(f.bytes).padStart(10)}  gzip ${kb(f.gzipBytes).padStart(10)}`),
    `  ${'total'.padEnd(16)} ${kb(report.bytes).padStart(10)}  gzip ${kb(report.gzipBytes).padStart(10)}`,
    `  ${'dense original'.padEnd(16)} ${kb(report.dense.bytes).padStart(10)}  gzip ${kb(report.dense.gzipBytes).padStart(10)}  (float32 weights; ${(report.dense.bytes / report.bytes).toFixed(1)}x the export raw, ${(report.dense.gzipBytes / report.gzipBytes).toFixed(1)}x gzipped)`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
