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

export const RESNET_BN = 'resnet-bn';

function residualBlock(prefix: string, input: string, c: number): Op[] {
  return [
    { type: 'conv2d', name: `${prefix}_c1`, kernel: 3, inChannels: c, outChannels: c, stride: 1, padding: 'same', activation: 'linear', inputs: [input] },
    { type: 'batchnorm', name: `${prefix}_bn1`, channels: c, epsilon: 1e-3, activation: 'relu' },
    { type: 'conv2d', name: `${prefix}_c2`, kernel: 3, inChannels: c, outChannels: c, stride: 1, padding: 'same', activation: 'linear' },
    { type: 'batchnorm', name: `${prefix}_bn2`, channels: c, epsilon: 1e-3, activation: 'linear' },
    { type: 'add', name: `${prefix}_add`, inputs: [input, `${prefix}_bn2`] },
    { type: 'activation', name: `${prefix}_out`, activation: 'relu' },
  ];
}

/**
 * A small residual CNN with BatchNorm (Fashion-MNIST): stem conv+BN, two identity blocks (conv+BN+ReLU, conv+BN,
 * Add, ReLU) with a max-pool between, global average pool, dense. The stem and both blocks' second convs feed the
 * Adds, so their channels form one group that is pruned together. ≈4.8 M MACs, ≈12 k parameters.
 */
export function resnetBn(c = 16): Architecture {
  return {
    name: RESNET_BN,
    inputShape: [28, 28, 1],
    numClasses: 10,
    ops: [
      { type: 'conv2d', name: 'stem', kernel: 3, inChannels: 1, outChannels: c, stride: 1, padding: 'same', activation: 'linear' },
      { type: 'batchnorm', name: 'stem_bn', channels: c, epsilon: 1e-3, activation: 'relu' },
      ...residualBlock('b1', 'stem_bn', c),
      { type: 'maxpool', name: 'pool', size: 2, stride: 2 },
      ...residualBlock('b2', 'pool', c),
      { type: 'gap', name: 'gap' },
      { type: 'dense', name: 'fc', inUnits: c, outUnits: 10, activation: 'linear' },
    ],
    maskGamma: [1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4],
  };
}

registerArchitecture(RESNET_BN, () => resnetBn());

/** The dataset each channel-pruning model is trained on. */
export const CHANNEL_MODELS: Record<string, { dataset: 'mnist' | 'fashion-mnist' }> = {
  'lenet-5': { dataset: 'mnist' },
  [VGG_BN]: { dataset: 'fashion-mnist' },
  [RESNET_BN]: { dataset: 'fashion-mnist' },
};

/** The models of `prunus channels --compare`. */
export const CHANNEL_COMPARE_MODELS = ['lenet-5', VGG_BN];
