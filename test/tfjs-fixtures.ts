/**
 * Users' models for the tests, built with plain tfjs `tf.layers` as a user would, trained a few steps and saved in
 * the TensorFlow.js LayersModel format (model.json + weight shards) exactly as `model.save()` writes it — here with a
 * save handler writing files, since @tensorflow/tfjs in Node has no file:// handler without tfjs-node.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const FASHION = '/usr/share/datasets/fashion-mnist';
export const SCALE_255 = 0.00392156862745098;

/** The first n images (pixels / 255, NHWC) and labels of a Fashion-MNIST file pair. */
export function fashion(split: 'train' | 't10k', n: number): { x: Float32Array; y: Uint8Array } {
  const img = gunzipSync(readFileSync(join(FASHION, `${split}-images-idx3-ubyte.gz`))).subarray(16, 16 + n * 784);
  const lbl = gunzipSync(readFileSync(join(FASHION, `${split}-labels-idx1-ubyte.gz`))).subarray(8, 8 + n);
  return { x: Float32Array.from(img, (p) => p * SCALE_255), y: Uint8Array.from(lbl) };
}

/** Seeded Glorot-uniform kernels (tfjs's default initializer draws an unseeded seed): the fixtures train the same way every run. */
let seedCounter = 0;
const seeded = () => ({ kernelInitializer: tf.initializers.glorotUniform({ seed: 1000 + seedCounter++ }) });

/** A Sequential MLP with Dropout and a softmax output. */
export function buildMlp(): tf.Sequential {
  seedCounter = 0;
  const m = tf.sequential({ name: 'user_mlp' });
  m.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  m.add(tf.layers.dense({ ...seeded(), units: 48, activation: 'relu' }));
  m.add(tf.layers.dropout({ rate: 0.2 }));
  m.add(tf.layers.dense({ ...seeded(), units: 24, activation: 'relu' }));
  m.add(tf.layers.dense({ ...seeded(), units: 10, activation: 'softmax' }));
  return m;
}

/**
 * A functional residual CNN: a stem conv, an identity block (conv, BN, ReLU, conv, BN, Add), a strided block with a
 * 1×1 projection shortcut, global average pooling and a softmax dense output. BatchNorm momentum 0.9 so that a few
 * training steps leave usable moving statistics.
 */
export function buildResidualCnn(): tf.LayersModel {
  seedCounter = 300;
  const inp = tf.input({ shape: [28, 28, 1], name: 'image' });
  const bn = (name: string) => tf.layers.batchNormalization({ momentum: 0.9, name });
  const stem = tf.layers.conv2d({ ...seeded(), filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'stem' }).apply(inp) as tf.SymbolicTensor;
  let b = tf.layers.conv2d({ ...seeded(), filters: 6, kernelSize: 3, padding: 'same', useBias: false, name: 'b1_conv1' }).apply(stem) as tf.SymbolicTensor;
  b = bn('b1_bn1').apply(b) as tf.SymbolicTensor;
  b = tf.layers.activation({ activation: 'relu', name: 'b1_relu1' }).apply(b) as tf.SymbolicTensor;
  b = tf.layers.conv2d({ ...seeded(), filters: 6, kernelSize: 3, padding: 'same', name: 'b1_conv2' }).apply(b) as tf.SymbolicTensor;
  b = bn('b1_bn2').apply(b) as tf.SymbolicTensor;
  let h = tf.layers.add({ name: 'b1_add' }).apply([stem, b]) as tf.SymbolicTensor;
  h = tf.layers.activation({ activation: 'relu', name: 'b1_out' }).apply(h) as tf.SymbolicTensor;
  let s = tf.layers.conv2d({ ...seeded(), filters: 12, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'b2_conv1' }).apply(h) as tf.SymbolicTensor;
  s = tf.layers.conv2d({ ...seeded(), filters: 12, kernelSize: 3, padding: 'same', name: 'b2_conv2' }).apply(s) as tf.SymbolicTensor;
  s = bn('b2_bn2').apply(s) as tf.SymbolicTensor;
  const proj = tf.layers.conv2d({ ...seeded(), filters: 12, kernelSize: 1, strides: 2, padding: 'same', name: 'b2_proj' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.add({ name: 'b2_add' }).apply([s, proj]) as tf.SymbolicTensor;
  h = tf.layers.activation({ activation: 'relu', name: 'b2_out' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ ...seeded(), units: 10, activation: 'softmax', name: 'classes' }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: inp, outputs: out, name: 'user_resnet' });
}

/** A few epochs of Adam on n Fashion-MNIST training images (a user's "trained" model). */
export async function trainBriefly(model: tf.LayersModel, n: number, epochs: number): Promise<void> {
  const { x, y } = fashion('train', n);
  const xt = tf.tensor4d(x, [n, 28, 28, 1]);
  const yt = tf.oneHot(tf.tensor1d(Array.from(y), 'int32'), 10);
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  await model.fit(xt, yt, { epochs, batchSize: 64, verbose: 0, shuffle: false });
  tf.dispose([xt, yt]);
}

export interface SaveOptions {
  /** Split the weights into this many shard files (group1-shard1ofK.bin ...). */
  shards?: number;
}

/** Saves as model.save() writes a LayersModel: model.json + weight shards. */
export async function saveUserModel(model: tf.LayersModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = new Uint8Array(Array.isArray(a.weightData) ? tf.io.concatenateArrayBuffers(a.weightData) : (a.weightData as ArrayBuffer));
      const k = opts.shards ?? 1;
      const paths: string[] = [];
      const per = Math.ceil(data.length / k);
      for (let i = 0; i < k; i++) {
        const name = k === 1 ? 'weights.bin' : `group1-shard${i + 1}of${k}.bin`;
        writeFileSync(join(dir, name), data.subarray(i * per, Math.min(data.length, (i + 1) * per)));
        paths.push(name);
      }
      const json = { modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy, weightsManifest: [{ paths, weights: a.weightSpecs }] };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

/** Loads a LayersModel folder with plain tfjs (model.json + its shards), as a user without prunus would. */
export async function loadWithTfjs(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
  const bufs = json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p))));
  const all = Buffer.concat(bufs);
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
      weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length) as ArrayBuffer,
    }),
  );
}

/** Argmax predictions of a tfjs model on NHWC images. */
export function predictClasses(model: tf.LayersModel, x: Float32Array, n: number): Int32Array {
  return tf.tidy(() => (model.predict(tf.tensor4d(x, [n, 28, 28, 1])) as tf.Tensor).argMax(-1).dataSync() as Int32Array);
}
