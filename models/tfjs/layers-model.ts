/** An architecture and its parameters as a live tfjs LayersModel (in memory, through the exported topology and weights). */
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../graph.js';
import type { ModelParams } from '../params.js';
import { layersModelFiles, type LayersModelFiles } from './write.js';

/** Loads exported model files with tfjs itself, without touching the disk. Caller disposes the model. */
export async function loadLayersModelFiles(files: Pick<LayersModelFiles, 'modelJson' | 'weights' | 'specs'>): Promise<tf.LayersModel> {
  const weightData = files.weights.buffer.slice(files.weights.byteOffset, files.weights.byteOffset + files.weights.byteLength) as ArrayBuffer;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: files.modelJson.modelTopology as object, weightSpecs: files.specs as tf.io.WeightsManifestEntry[], weightData }));
}

/** A tfjs LayersModel with the architecture's layers and these weights. Caller disposes it. */
export async function toLayersModel(arch: Architecture, params: ModelParams): Promise<tf.LayersModel> {
  return loadLayersModelFiles(layersModelFiles(arch, params));
}
