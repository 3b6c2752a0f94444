/**
 * The small VGG-style CNN with BatchNorm used for channel pruning on Fashion-MNIST (channel-pruning spec §4,
 * "small VGG with BN"): conv16-conv16-pool-conv32-conv32-pool-conv64-pool-fc10, each conv 3×3 'same' followed by
 * BatchNorm + ReLU. ≈5.5 M MACs, ≈41 k parameters (weights, biases, BN γ/β). Importing this module registers it as 'vgg-bn'.
 */
import { type Architecture, type Op } from './graph.js';
import { registerArchitecture } from './architectures.js';

export const VGG_BN = 'vgg-bn';

function convBn(name: string, inChannels: number, outChannels: number): Op[] {
  return [
    { type: 'conv2d', name, kernel: 3, inChannels, outChannels, stride: 1, padding: 'same', activation: 'linear' },
    { type: 'batchnorm', name: `${name}_bn`, channels: outChannels, epsilon: 1e-3, activation: 'relu' },
  ];
}

export function vggBn(): Architecture {
  return {
    name: VGG_BN,
    inputShape: [28, 28, 1],
    numClasses: 10,
    ops: [
      ...convBn('conv1', 1, 16),
      ...convBn('conv2', 16, 16),
      { type: 'maxpool', size: 2, stride: 2 },
      ...convBn('conv3', 16, 32),
      ...convBn('conv4', 32, 32),
      { type: 'maxpool', size: 2, stride: 2 },
      ...convBn('conv5', 32, 64),
      { type: 'maxpool', size: 2, stride: 2 },
      { type: 'flatten' },
      { type: 'dense', name: 'fc', inUnits: 3 * 3 * 64, outUnits: 10, activation: 'linear' },
    ],
    // Not used by channel pruning; OLMP-style per-layer mask gamma for completeness.
    maskGamma: [2e-5, 2e-5, 2e-5, 2e-5, 2e-5, 2e-4],
  };
}

registerArchitecture(VGG_BN, vggBn);

/** The dataset each channel-pruning model is trained on. */
export const CHANNEL_MODELS: Record<string, { dataset: 'mnist' | 'fashion-mnist' }> = {
  'lenet-5': { dataset: 'mnist' },
  [VGG_BN]: { dataset: 'fashion-mnist' },
};
