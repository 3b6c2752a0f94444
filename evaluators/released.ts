/**
 * Reads the released OLMP LeNet fixtures (../shared/fixtures/olmp-released, see its README) into prunus's tfjs
 * layouts, for the evaluator benchmark and tests: dense kernels transposed to [in,out], conv kernels permuted to
 * [kh,kw,in,out], LeNet-5 ip1's input permuted from Caffe's C,H,W flatten to NHWC's H,W,C. Masks (compressed
 * models) get the same permutations; reference models get all-ones masks.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getArchitecture, prunableOps, type Architecture } from '../models/architectures.js';
import { onesMasks, type LayerMasks, type ModelParams } from '../models/params.js';
import { UsageError } from '../foundation/errors.js';

export const RELEASED_FOLDERS = ['lenet300100-reference', 'lenet300100-compressed', 'lenet5-reference', 'lenet5-compressed'] as const;
export type ReleasedFolder = (typeof RELEASED_FOLDERS)[number];

interface TensorEntry {
  layer: string;
  role: 'weight' | 'bias' | 'weight_mask' | 'bias_mask';
  shape: number[];
  dtype: 'float32' | 'uint8';
  byteOffset: number;
  count: number;
}

export interface ReleasedModel {
  arch: Architecture;
  params: ModelParams;
  masks: LayerMasks[];
  /** Figures the fixture's manifest records (correct test images, non-zeros...). */
  verified: Record<string, unknown>;
}

/** Index map from prunus layout to Caffe layout for one prunable layer's weight: out[i] = caffe[map[i]]. */
function caffeIndex(arch: Architecture, k: number): Int32Array {
  const op = prunableOps(arch)[k]!;
  if (op.type === 'conv2d') {
    const K = op.kernel;
    const C = op.inChannels;
    const O = op.outChannels;
    const map = new Int32Array(K * K * C * O);
    for (let y = 0; y < K; y++)
      for (let x = 0; x < K; x++)
        for (let c = 0; c < C; c++)
          for (let o = 0; o < O; o++) map[((y * K + x) * C + c) * O + o] = ((o * C + c) * K + y) * K + x;
    return map;
  }
  const I = op.inUnits;
  const O = op.outUnits;
  const map = new Int32Array(I * O);
  // LeNet-5 ip1 reads the 4x4x50 pool output: NHWC index (h*4+w)*50+c ← Caffe c*16+h*4+w.
  const prev = arch.ops[arch.ops.indexOf(op) - 1];
  const afterConvFlatten = prev?.type === 'flatten' && arch.ops.slice(0, arch.ops.indexOf(op)).some((o) => o.type === 'conv2d');
  let perm: Int32Array | null = null;
  if (afterConvFlatten) {
    const lastConv = [...arch.ops.slice(0, arch.ops.indexOf(op))].reverse().find((o) => o.type === 'conv2d')!;
    const C = lastConv.type === 'conv2d' ? lastConv.outChannels : 1;
    const HW = I / C;
    perm = new Int32Array(I);
    for (let hw = 0; hw < HW; hw++) for (let c = 0; c < C; c++) perm[hw * C + c] = c * HW + hw;
  }
  for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) map[i * O + o] = o * I + (perm ? perm[i]! : i);
  return map;
}

export function defaultFixturesDir(repoRoot: string): string {
  return join(repoRoot, '..', 'shared', 'fixtures', 'olmp-released');
}

/** Loads one released model folder (e.g. lenet5-compressed) from the fixtures directory. */
export function loadReleasedModel(fixturesDir: string, folder: ReleasedFolder): ReleasedModel {
  const dir = join(fixturesDir, folder);
  if (!existsSync(join(dir, 'manifest.json'))) throw new UsageError(`released OLMP fixture ${dir} not found`);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { tensors: TensorEntry[]; verified: Record<string, unknown> };
  const bin = readFileSync(join(dir, 'weights.bin'));
  const buf = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const arch = getArchitecture(folder.startsWith('lenet5') ? 'lenet-5' : 'lenet-300-100');
  const ops = prunableOps(arch);
  const find = (layer: string, role: TensorEntry['role']) => manifest.tensors.find((t) => t.layer === layer && t.role === role);
  const masks = onesMasks(arch);
  const layers = ops.map((op, k) => {
    const we = find(op.name, 'weight');
    const be = find(op.name, 'bias');
    if (!we || !be) throw new UsageError(`${dir}: no weight/bias for ${op.name}`);
    const map = caffeIndex(arch, k);
    const cw = new Float32Array(buf, we.byteOffset, we.count);
    if (cw.length !== map.length) throw new UsageError(`${dir}: ${op.name} has ${cw.length} weights, expected ${map.length}`);
    const weight = new Float32Array(map.length);
    for (let i = 0; i < map.length; i++) weight[i] = cw[map[i]!]!;
    const bias = new Float32Array(buf, be.byteOffset, be.count).slice();
    const wm = find(op.name, 'weight_mask');
    const bm = find(op.name, 'bias_mask');
    if (wm && bm) {
      const cm = new Uint8Array(buf, wm.byteOffset, wm.count);
      for (let i = 0; i < map.length; i++) masks[k]!.weight[i] = cm[map[i]!]!;
      masks[k]!.bias.set(new Uint8Array(buf, bm.byteOffset, bm.count));
    }
    return { weight, bias };
  });
  return { arch, params: { layers, batchNorms: [] }, masks, verified: manifest.verified };
}
