/**
 * Where a model comes from: a zoo name (an architecture prunus trains itself) or a path to a TensorFlow.js
 * LayersModel (a user's trained network: architecture and weights; a prunus model folder reads the same way).
 * A file source carries the sha256 of its bytes so that a run can find the same model again, and a model that
 * takes flat vectors adopts the image shape of the data it is given.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../foundation/errors.js';
import { readJsonObject } from '../foundation/json.js';
import { getArchitecture, modelNames } from './architectures.js';
import type { Architecture } from './graph.js';
import type { LayerMasks, ModelParams } from './params.js';
import { loadModel } from './io.js';
import { modelSha256, modelJsonPath } from './tfjs/read.js';

export type ModelSource = { kind: 'zoo'; name: string } | { kind: 'file'; path: string; sha256: string };

export interface ResolvedModel {
  arch: Architecture;
  /** The file's weights (and masks); null for a zoo model, which prunus trains itself. */
  params: ModelParams | null;
  masks: LayerMasks[] | null;
  source: ModelSource;
}

/** True when `spec` names a model file or folder rather than a zoo model. */
export function isModelPath(spec: string): boolean {
  return !modelNames().includes(spec) && (spec.includes('/') || spec.includes('\\') || spec.endsWith('.json') || existsSync(spec));
}

/**
 * A zoo name or a path to a model.json (or the folder holding it). `expectSha256`, when given, must match the
 * file's current bytes (a run resuming on its model).
 */
export function resolveModel(spec: string, expectSha256?: string): ResolvedModel {
  if (!isModelPath(spec)) {
    if (!modelNames().includes(spec)) throw new UsageError(`unknown model '${spec}' (known: ${modelNames().join(', ')}; or a path to a TensorFlow.js model.json)`);
    return { arch: getArchitecture(spec), params: null, masks: null, source: { kind: 'zoo', name: spec } };
  }
  if (!existsSync(spec)) throw new UsageError(`model ${spec} does not exist`);
  const path = modelJsonPath(spec);
  const sha256 = modelSha256(path, readJsonObject(path));
  if (expectSha256 !== undefined && sha256 !== expectSha256) {
    throw new UsageError(`model ${path} has changed since the run started (sha256 ${sha256.slice(0, 12)}…, the run recorded ${expectSha256.slice(0, 12)}…)`);
  }
  const { model } = loadModel(path);
  return { arch: model.arch, params: model.params, masks: model.masks, source: { kind: 'file', path: resolve(path), sha256 } };
}

export interface ImageData {
  /** Per-image shape H, W, C. */
  shape: [number, number, number];
  numClasses: number;
  name: string;
}

/**
 * The architecture fitted to a dataset: the same shape (a flat-input model takes the images flattened, NHWC order,
 * and adopts their shape) and as many classes. Otherwise one line naming both.
 */
export function fitToData(arch: Architecture, data: ImageData, modelLabel = arch.name): Architecture {
  const [h, w, c] = arch.inputShape;
  const [H, W, C] = data.shape;
  const fits = arch.flatInput ? h * w * c === H * W * C : h === H && w === W && c === C;
  const takes = arch.flatInput ? `vectors of ${h * w * c}` : `${h}x${w}x${c} images`;
  if (!fits || arch.numClasses !== data.numClasses) {
    throw new UsageError(`model ${modelLabel} takes ${takes} and predicts ${arch.numClasses} classes; dataset ${data.name} has ${H}x${W}x${C} images and ${data.numClasses} classes`);
  }
  if (arch.flatInput && (h !== H || w !== W || c !== C)) return { ...arch, inputShape: [H, W, C] };
  return arch;
}
