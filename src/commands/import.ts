import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseFlags, COMMON_FLAGS } from '../cli-args.js';
import { parseBackendName } from '../../backends/backend.js';
import { UsageError } from '../../foundation/errors.js';
import { saveModel } from '../../models/io.js';
import { sizeReport } from '../../models/params.js';
import { importCaffeManifest } from '../../models/caffe/manifest.js';

export const summary = 'prunus import: convert a Caffe-layout weights manifest (OLMP / DNS / Caffe LeNets) into a prunus model';
export const usage = `usage: prunus import --manifest <dir|manifest.json> --model lenet-300-100|lenet-5 --out <dir> [--json]

Reads manifest.json and its raw little-endian data file (float32 weights and biases in Caffe layouts:
InnerProduct [out,in], Convolution [out,in,kh,kw]; optional weight_mask / bias_mask as uint8 or float32 0/1),
checks every shape, dtype, offset and length against the file and the architecture, and the file's byteLength and
sha256 when the manifest gives them. Maps the arrays to tfjs layouts (dense [in,out], conv [kh,kw,in,out], and the
C,H,W→H,W,C flatten order of the first dense layer after the convs) and writes a prunus model to --out (model.json,
weights.bin, masks.bin), with the DNS magnitude statistics of the dense weights. A manifest without masks gives
all-ones masks. Anything that does not fit is refused (exit 2) and nothing is written.
Example: prunus import --manifest ../shared/fixtures/olmp-released/lenet5-compressed --model lenet-5 --out results/olmp-lenet5`;

const FLAGS = {
  ...COMMON_FLAGS,
  manifest: { type: 'string' },
  model: { type: 'string' },
  out: { type: 'string' },
} as const;

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS, 'import');
  parseBackendName(v.backend); // accepted like every command's; import itself runs no tensors
  if (positionals.length > 0) throw new UsageError(`import: unexpected argument '${positionals[0]}'`);
  if (!v.manifest) throw new UsageError('import: --manifest <dir> is required');
  if (!v.model) throw new UsageError('import: --model is required (lenet-300-100 or lenet-5)');
  if (!v.out) throw new UsageError('import: --out <dir> is required');
  const out = resolve(v.out);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new UsageError(`import: --out ${v.out} exists and is not a folder`);
    if (readdirSync(out).length > 0 && !existsSync(join(out, 'model.json'))) {
      throw new UsageError(`import: --out ${v.out} exists and is not a prunus model folder; refusing to replace it`);
    }
  }
  const imported = importCaffeManifest(v.manifest, v.model);
  saveModel(out, imported.model, { magnitudeStats: imported.magnitudeStats, meta: imported.meta });
  const size = sizeReport(imported.model.arch, imported.model.masks);
  const report = {
    out,
    model: imported.model.arch.name,
    manifest: imported.meta.manifest,
    sha256: imported.meta.sha256,
    masks: imported.meta.masks,
    nonZero: size.nonZero,
    params: size.params,
    compression: size.compression,
    layers: size.layers.map((l) => ({ name: l.name, nonZeroWeights: l.nonZeroWeights, nonZeroBiases: l.nonZeroBiases, nonZero: l.nonZero, params: l.params })),
    magnitudeStats: imported.magnitudeStats,
  };
  if (v.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else {
    const lines = [
      `imported ${report.model} from ${String(report.manifest)} (sha256 ${String(report.sha256)})`,
      `masks: ${String(report.masks)}; ${report.nonZero} / ${report.params} non-zero, ${report.compression.toFixed(2)}x`,
      ...report.layers.map((l, k) => {
        const s = imported.magnitudeStats[k]!;
        return `  ${l.name.padEnd(6)} ${String(l.nonZero).padStart(7)} / ${String(l.params).padEnd(7)} mu ${s.mu.toFixed(6)} sigma ${s.sigma.toFixed(6)}`;
      }),
      `wrote ${out}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  return 0;
}
