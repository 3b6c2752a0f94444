/**
 * The networks of `bench train`: the zoo's LeNets and its residual CNN with BatchNorm, resnet-bn (mirrored in
 * bench/crosscheck/torch_train.py): stem conv+BN, two identity blocks (conv+BN+ReLU, conv+BN, Add, ReLU) with a
 * max-pool between, global average pool, dense.
 */
import type { Architecture } from '../../models/graph.js';
import { getArchitecture } from '../../models/architectures.js';
import '../../models/zoo-cnn.js';

export function benchArchitecture(name: string): Architecture {
  return getArchitecture(name);
}
