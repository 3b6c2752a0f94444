/**
 * The model zoo: the networks prunus knows by name, as plain data (graph.ts). A user's own network comes in through
 * the TensorFlow.js LayersModel reader (models/tfjs/) instead.
 */
import { UsageError } from '../foundation/errors.js';
import type { Architecture } from './graph.js';

export const MODEL_NAMES = ['lenet-300-100', 'lenet-5'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** LeNet-300-100 (spec §1): 784 → 300 ReLU → 100 ReLU → 10. */
export function lenet300100(): Architecture {
  return {
    name: 'lenet-300-100',
    inputShape: [28, 28, 1],
    numClasses: 10,
    ops: [
      { type: 'flatten' },
      { type: 'dense', name: 'ip1', inUnits: 784, outUnits: 300, activation: 'relu' },
      { type: 'dense', name: 'ip2', inUnits: 300, outUnits: 100, activation: 'relu' },
      { type: 'dense', name: 'ip3', inUnits: 100, outUnits: 10, activation: 'linear' },
    ],
    maskGamma: [2e-4, 2e-4, 2e-4],
  };
}

/** Caffe's LeNet-5 (spec §1): conv1 20@5x5 → max 2/2 → conv2 50@5x5 → max 2/2 → ip1 500 ReLU → ip2 10. No ReLU after the convs. */
export function lenet5(): Architecture {
  return {
    name: 'lenet-5',
    inputShape: [28, 28, 1],
    numClasses: 10,
    ops: [
      { type: 'conv2d', name: 'conv1', kernel: 5, inChannels: 1, outChannels: 20, stride: 1, padding: 'valid', activation: 'linear' },
      { type: 'maxpool', size: 2, stride: 2 },
      { type: 'conv2d', name: 'conv2', kernel: 5, inChannels: 20, outChannels: 50, stride: 1, padding: 'valid', activation: 'linear' },
      { type: 'maxpool', size: 2, stride: 2 },
      { type: 'flatten' },
      { type: 'dense', name: 'ip1', inUnits: 800, outUnits: 500, activation: 'relu' },
      { type: 'dense', name: 'ip2', inUnits: 500, outUnits: 10, activation: 'linear' },
    ],
    maskGamma: [2e-5, 2e-5, 2e-4, 2e-4],
  };
}

const ZOO: Record<string, () => Architecture> = {
  'lenet-300-100': lenet300100,
  'lenet-5': lenet5,
};

/** Registers an extra architecture (e.g. the channel-pruning CNNs) under a name. */
export function registerArchitecture(name: string, factory: () => Architecture): void {
  ZOO[name] = factory;
}

export function modelNames(): string[] {
  return Object.keys(ZOO);
}

export function getArchitecture(name: string): Architecture {
  const f = ZOO[name];
  if (!f) throw new UsageError(`unknown model '${name}' (known: ${modelNames().join(', ')})`);
  return f();
}
