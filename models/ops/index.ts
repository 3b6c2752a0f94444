/** The op registry: every op type's shape rule, MACs, forward modes and Keras mapping (see spec.ts). */
import { UsageError } from '../../foundation/errors.js';
import type { Op } from '../graph.js';
import type { OpRegistry, OpSpec } from './spec.js';
import { batchnorm, conv2d, dense, depthwise } from './layers.js';
import { activation, add, avgpool, concat, dropout, flatten, gap, maxpool } from './structure.js';

export const OPS: OpRegistry = { conv2d, depthwise, dense, batchnorm, maxpool, avgpool, gap, flatten, dropout, activation, add, concat };

export function opSpec<O extends Op>(op: O): OpSpec<O> {
  const spec = (OPS as Record<string, OpSpec<Op> | undefined>)[op.type];
  if (!spec) throw new UsageError(`unknown op type '${String(op.type)}' (known: ${Object.keys(OPS).join(', ')})`);
  return spec as unknown as OpSpec<O>;
}

/** The op type reading each Keras class name. */
export const KERAS_CLASSES: ReadonlyMap<string, Op['type']> = new Map(
  (Object.entries(OPS) as [Op['type'], OpSpec<Op>][]).flatMap(([type, spec]) => spec.kerasClasses.map((c) => [c, type] as const)),
);

export type { OpSpec, OpRun, Value, Shape3, LayerTensors, BatchNormTensors, ForwardMode, KerasLayer, KerasWeight } from './spec.js';
