/**
 * The networks of `bench train`: the zoo's LeNets and a residual CNN with BatchNorm (mirrored in
 * bench/crosscheck/torch_train.py): stem conv+BN, two identity blocks (conv+BN+ReLU, conv+BN, Add, ReLU) with a
 * max-pool between, global average pool, dense.
 */
import type { Architecture, Op } from '../../models/graph.js';
import { getArchitecture } from '../../models/architectures.js';

function block(prefix: string, input: string, c: number): Op[] {
  return [
    { type: 'conv2d', name: `${prefix}_c1`, kernel: 3, inChannels: c, outChannels: c, stride: 1, padding: 'same', activation: 'linear', inputs: [input] },
    { type: 'batchnorm', name: `${prefix}_bn1`, channels: c, epsilon: 1e-3, activation: 'relu' },
    { type: 'conv2d', name: `${prefix}_c2`, kernel: 3, inChannels: c, outChannels: c, stride: 1, padding: 'same', activation: 'linear' },
    { type: 'batchnorm', name: `${prefix}_bn2`, channels: c, epsilon: 1e-3, activation: 'linear' },
    { type: 'add', name: `${prefix}_add`, inputs: [input, `${prefix}_bn2`] },
    { type: 'activation', name: `${prefix}_out`, activation: 'relu' },
  ];
}

export function residualBench(c = 16): Architecture {
  return {
    name: 'resnet-bn',
    inputShape: [28, 28, 1],
    numClasses: 10,
    ops: [
      { type: 'conv2d', name: 'stem', kernel: 3, inChannels: 1, outChannels: c, stride: 1, padding: 'same', activation: 'linear' },
      { type: 'batchnorm', name: 'stem_bn', channels: c, epsilon: 1e-3, activation: 'relu' },
      ...block('b1', 'stem_bn', c),
      { type: 'maxpool', name: 'pool', size: 2, stride: 2 },
      ...block('b2', 'pool', c),
      { type: 'gap', name: 'gap' },
      { type: 'dense', name: 'fc', inUnits: c, outUnits: 10, activation: 'linear' },
    ],
    maskGamma: [1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4],
  };
}

export function benchArchitecture(name: string): Architecture {
  return name === 'resnet-bn' ? residualBench() : getArchitecture(name);
}
