/**
 * Physical slimming: a smaller architecture and parameters holding only the kept channels. Its outputs equal the
 * masked model's (models/channels applyChannelMasks). The slim model runs through models/forward.ts, and can be
 * built as a real tfjs LayersModel (tf.sequential) and exported in the tfjs LayersModel format.
 */
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Architecture, type Op, prunableOps, weightShape } from './architectures.js';
import type { ModelParams, LayerParams } from './params.js';
import { type ChannelGroup, type ChannelMasks, checkChannelMasks, keptIndices } from './channels.js';

export interface SlimModel {
  arch: Architecture;
  params: ModelParams;
}

/** Keeps output channels `keep` (last axis) of a [rows, out] weight. */
function takeColumns(w: Float32Array, out: number, keep: number[]): Float32Array {
  const rows = w.length / out;
  const r = new Float32Array(rows * keep.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < keep.length; j++) r[i * keep.length + j] = w[i * out + keep[j]!]!;
  return r;
}

function take(a: Float32Array, keep: number[]): Float32Array {
  return Float32Array.from(keep, (i) => a[i]!);
}

/**
 * Slims (arch, params) to the kept channels. Consumer conv kernels lose their in-slices; a dense consumer after a
 * flatten keeps rows s·C + c for each position s and kept channel c, in NHWC order of the slim tensor.
 */
export function slimModel(arch: Architecture, groups: ChannelGroup[], params: ModelParams, masks: ChannelMasks): SlimModel {
  checkChannelMasks(groups, masks);
  const ops = prunableOps(arch);
  const outKeep: (number[] | null)[] = ops.map(() => null);
  const inKeep: ({ keep: number[]; channels: number; spatial: number } | null)[] = ops.map(() => null);
  const bnKeep = new Map<number, number[]>();
  groups.forEach((g, gi) => {
    const keep = keptIndices(masks[gi]!);
    outKeep[g.producer] = keep;
    if (g.batchNorm !== null) bnKeep.set(g.batchNorm, keep);
    for (const c of g.consumers) inKeep[c.layer] = { keep, channels: g.channels, spatial: c.spatial };
  });

  const layers: LayerParams[] = ops.map((op, l) => {
    let w = params.layers[l]!.weight;
    let bias = params.layers[l]!.bias;
    const shape = weightShape(op);
    let out = shape[shape.length - 1]!;
    const ik = inKeep[l];
    if (ik) {
      // Select input rows: conv [kh,kw,in,out] → rows (a, c); dense [in,out] → rows (s, c).
      const blocks = op.type === 'conv2d' ? op.kernel * op.kernel : ik.spatial;
      const inPer = op.type === 'conv2d' ? op.inChannels : ik.channels;
      const r = new Float32Array(blocks * ik.keep.length * out);
      for (let a = 0; a < blocks; a++) {
        for (let j = 0; j < ik.keep.length; j++) {
          const src = (a * inPer + ik.keep[j]!) * out;
          r.set(w.subarray(src, src + out), (a * ik.keep.length + j) * out);
        }
      }
      w = r;
    }
    const ok = outKeep[l];
    if (ok) {
      w = takeColumns(w, out, ok);
      bias = take(bias, ok);
      out = ok.length;
    }
    return { weight: ik || ok ? w : w.slice(), bias: ok ? bias : bias.slice() };
  });

  const batchNorms = params.batchNorms.map((b, i) => {
    const keep = bnKeep.get(i);
    return keep
      ? { gamma: take(b.gamma, keep), beta: take(b.beta, keep), movingMean: take(b.movingMean, keep), movingVariance: take(b.movingVariance, keep) }
      : { gamma: b.gamma.slice(), beta: b.beta.slice(), movingMean: b.movingMean.slice(), movingVariance: b.movingVariance.slice() };
  });

  let layer = 0;
  let bn = 0;
  const newOps: Op[] = arch.ops.map((op) => {
    switch (op.type) {
      case 'conv2d': {
        const l = layer++;
        return { ...op, inChannels: inKeep[l]?.keep.length ?? op.inChannels, outChannels: outKeep[l]?.length ?? op.outChannels };
      }
      case 'dense': {
        const l = layer++;
        const ik = inKeep[l];
        return { ...op, inUnits: ik ? ik.keep.length * ik.spatial : op.inUnits, outUnits: outKeep[l]?.length ?? op.outUnits };
      }
      case 'batchnorm': {
        const keep = bnKeep.get(bn++);
        return { ...op, channels: keep?.length ?? op.channels };
      }
      default:
        return { ...op };
    }
  });
  const slimArch: Architecture = {
    name: arch.name.endsWith('-slim') ? arch.name : `${arch.name}-slim`,
    inputShape: [...arch.inputShape] as [number, number, number],
    numClasses: arch.numClasses,
    ops: newOps,
    maskGamma: arch.maskGamma.slice(),
  };
  return { arch: slimArch, params: { layers, batchNorms } };
}

/** A tfjs LayersModel (tf.sequential) with the architecture's layers and these weights. Caller disposes it. */
export function toLayersModel(arch: Architecture, params: ModelParams): tf.Sequential {
  const model = tf.sequential({ name: arch.name.replace(/[^A-Za-z0-9_]/g, '_') });
  const inputShape = [...arch.inputShape];
  let first = true;
  const withInput = <T extends object>(cfg: T): T => {
    if (!first) return cfg;
    first = false;
    return { ...cfg, inputShape };
  };
  // Weights per layer (model.setWeights would expect all trainable weights before the BN moving statistics).
  const perLayer: [tf.layers.Layer, tf.Tensor[]][] = [];
  let layer = 0;
  let bn = 0;
  for (const op of arch.ops) {
    switch (op.type) {
      case 'conv2d': {
        const l = tf.layers.conv2d(
          withInput({ name: op.name, filters: op.outChannels, kernelSize: op.kernel, strides: op.stride, padding: op.padding, activation: op.activation, useBias: true }),
        );
        model.add(l);
        const p = params.layers[layer++]!;
        perLayer.push([l, [tf.tensor(p.weight, weightShape(op)), tf.tensor1d(p.bias)]]);
        break;
      }
      case 'dense': {
        const l = tf.layers.dense(withInput({ name: op.name, units: op.outUnits, activation: op.activation, useBias: true }));
        model.add(l);
        const p = params.layers[layer++]!;
        perLayer.push([l, [tf.tensor(p.weight, weightShape(op)), tf.tensor1d(p.bias)]]);
        break;
      }
      case 'maxpool':
        model.add(tf.layers.maxPooling2d(withInput({ poolSize: op.size, strides: op.stride, padding: 'valid' as const })));
        break;
      case 'flatten':
        model.add(tf.layers.flatten(withInput({})));
        break;
      case 'batchnorm': {
        const l = tf.layers.batchNormalization(withInput({ name: op.name, axis: -1, epsilon: op.epsilon }));
        model.add(l);
        const b = params.batchNorms[bn++]!;
        perLayer.push([l, [tf.tensor1d(b.gamma), tf.tensor1d(b.beta), tf.tensor1d(b.movingMean), tf.tensor1d(b.movingVariance)]]);
        if (op.activation === 'relu') model.add(tf.layers.activation({ activation: 'relu' }));
        break;
      }
    }
  }
  for (const [l, w] of perLayer) {
    l.setWeights(w);
    tf.dispose(w);
  }
  return model;
}

/** The files of a tfjs LayersModel save (model.json + weights.bin), ready to be written. */
export async function layersModelArtifacts(model: tf.LayersModel): Promise<{ modelJson: string; weights: Uint8Array }> {
  let captured: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const a = captured as tf.io.ModelArtifacts | null;
  if (!a || !a.weightData || !a.weightSpecs) throw new Error('tfjs save produced no weights');
  const data = a.weightData;
  const buf = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : (data as ArrayBuffer);
  const modelJson = JSON.stringify({
    format: a.format ?? 'layers-model',
    generatedBy: a.generatedBy,
    convertedBy: a.convertedBy ?? null,
    modelTopology: a.modelTopology,
    weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
  });
  return { modelJson, weights: new Uint8Array(buf) };
}

/** Writes a tfjs LayersModel (loadable with tf.loadLayersModel) into an existing folder. */
export function writeLayersModelFiles(dir: string, files: { modelJson: string; weights: Uint8Array }): void {
  writeFileSync(join(dir, 'weights.bin'), files.weights);
  writeFileSync(join(dir, 'model.json'), files.modelJson + '\n');
}
