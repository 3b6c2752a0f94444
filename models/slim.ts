/**
 * Physical slimming: a smaller architecture and parameters holding only the kept channels. Its outputs equal the
 * masked model's (models/channels applyChannelMasks). Every layer keeps the rows of the input channels its input
 * value still has and the columns of the output channels its output value still has (channels.ts valueKeeps), so
 * tied, concatenated and flattened channels all follow from the graph.
 */
import type { Architecture, Op } from './graph.js';
import { walkGraph } from './walk.js';
import type { ModelParams, LayerParams, BatchNormParams } from './params.js';
import { type ChannelGroup, type ChannelMasks, keptIndices, valueKeeps } from './channels.js';

export interface SlimModel {
  arch: Architecture;
  params: ModelParams;
}

/** Rows `rows` and columns `cols` of a [*, out] row-major weight. */
function takeRowsColumns(w: Float32Array, out: number, rows: readonly number[], cols: readonly number[]): Float32Array {
  const r = new Float32Array(rows.length * cols.length);
  rows.forEach((row, i) => {
    const base = row * out;
    for (let j = 0; j < cols.length; j++) r[i * cols.length + j] = w[base + cols[j]!]!;
  });
  return r;
}

function take(a: Float32Array, keep: readonly number[]): Float32Array {
  return Float32Array.from(keep, (i) => a[i]!);
}

/** Weight rows of a conv [kh, kw, in, out] or dense [in, out] kernel that read the kept inputs. */
function inputRows(blocks: number, inPer: number, kept: readonly number[]): number[] {
  const rows: number[] = [];
  for (let a = 0; a < blocks; a++) for (const c of kept) rows.push(a * inPer + c);
  return rows;
}

/** Slims (arch, params) to the kept channels. */
export function slimModel(arch: Architecture, groups: ChannelGroup[], params: ModelParams, masks: ChannelMasks): SlimModel {
  const walk = walkGraph(arch);
  const keeps = valueKeeps(arch, groups, masks);
  const keepOf = (j: number) => keeps[j < 0 ? walk.nodes.length : j]!;
  const layers: LayerParams[] = [];
  const batchNorms: BatchNormParams[] = [];
  const ops: Op[] = arch.ops.map((op, i) => {
    const n = walk.nodes[i]!;
    const inK = keepOf(n.inputs[0]!);
    const ik = keptIndices(inK.keep);
    const ok = keptIndices(keeps[i]!.keep);
    switch (op.type) {
      case 'conv2d': {
        const p = params.layers[n.layer]!;
        const weight = takeRowsColumns(p.weight, op.outChannels, inputRows(op.kernel * op.kernel, op.inChannels, ik), ok);
        layers.push({ weight, bias: op.useBias === false ? new Float32Array(0) : take(p.bias, ok) });
        return { ...op, inChannels: ik.length, outChannels: ok.length };
      }
      case 'dense': {
        const p = params.layers[n.layer]!;
        const weight = takeRowsColumns(p.weight, op.outUnits, inputRows(inK.spatial, inK.keep.length, ik), ok);
        layers.push({ weight, bias: op.useBias === false ? new Float32Array(0) : take(p.bias, ok) });
        return { ...op, inUnits: ik.length * inK.spatial, outUnits: ok.length };
      }
      case 'depthwise': {
        const p = params.layers[n.layer]!;
        const m = op.depthMultiplier;
        const outs = ik.flatMap((c) => Array.from({ length: m }, (_, j) => c * m + j));
        // [kh, kw, C, m] as rows (a, c) of m columns: keep rows of kept channels, every column.
        const weight = takeRowsColumns(p.weight, m, inputRows(op.kernel * op.kernel, op.channels, ik), Array.from({ length: m }, (_, j) => j));
        layers.push({ weight, bias: op.useBias === false ? new Float32Array(0) : take(p.bias, outs) });
        return { ...op, channels: ik.length };
      }
      case 'batchnorm': {
        const b = params.batchNorms[n.bn]!;
        const keep = inK.spatial > 1 ? Array.from({ length: op.channels }, (_, c) => c) : ik;
        batchNorms.push({ gamma: take(b.gamma, keep), beta: take(b.beta, keep), movingMean: take(b.movingMean, keep), movingVariance: take(b.movingVariance, keep) });
        return { ...op, channels: keep.length };
      }
      default:
        return { ...op };
    }
  });
  const slimArch: Architecture = {
    ...arch,
    name: arch.name.endsWith('-slim') ? arch.name : `${arch.name}-slim`,
    inputShape: [...arch.inputShape] as [number, number, number],
    ops,
    maskGamma: arch.maskGamma.slice(),
  };
  return { arch: slimArch, params: { layers, batchNorms } };
}
