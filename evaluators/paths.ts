/**
 * Which path (sparse JS kernels or dense tfjs) each prunable layer of a candidate runs on, and why.
 */
import { type Architecture, type Op, type PrunableOp } from '../models/graph.js';
import { layerStats, walkGraph } from '../models/walk.js';
import type { LayerMasks } from '../models/params.js';
import { UsageError } from '../foundation/errors.js';
import type { EvaluationContext, PathMode } from './types.js';
import { imageDensity } from './image-encoding.js';

/**
 * Per-layer path rule under 'auto':
 *  - a layer runs sparse when its weight density (kept mask entries / weights) is at most
 *    SPARSE_CROSSOVER[kind].base × inputDensity^−exponent, where inputDensity is the fraction of non-zero values it
 *    reads: measured on the evaluation images for a layer that reads the network input, 1 for hidden layers (the
 *    sparse kernels skip zero inputs, so a sparse input moves the crossover up);
 *  - a small hidden layer (≤ SMALL_LAYER_MACS multiply-adds per image) stays on the path of the layer before it:
 *    it costs a few ms either way, and switching paths costs a transfer.
 *
 * The constants come from `npm run bench -- eval --crossover-layers` (each layer alone on its real input activations)
 * and `--crossover` (whole networks), sparse against dense CPU time per candidate; the measurements are in
 * evaluators/README.md. Fully-connected: 0.02 / inputDensity. Conv: 0.15 / inputDensity, a little below the
 * crossovers measured with the batched conv column kernels (columns.ts), where the two paths are close.
 * Depthwise convolutions and ops without sparse kernels always run dense.
 */
export const SPARSE_CROSSOVER: Readonly<Record<SparseKind, { base: number; exponent: number }>> = {
  dense: { base: 0.02, exponent: 1 },
  conv2d: { base: 0.15, exponent: 1 },
};

/** The prunable ops with sparse kernels. */
export type SparseKind = 'dense' | 'conv2d';

/** Hidden layers at or below this many dense multiply-adds per image follow the previous layer's path. */
export const SMALL_LAYER_MACS = 50_000;

/** Weight density at or below which a layer of this kind, reading inputs of this density, runs sparse under 'auto'. */
export function crossoverDensity(kind: PrunableOp['type'], inputDensity = 1): number {
  if (kind === 'depthwise') return 0;
  const c = SPARSE_CROSSOVER[kind];
  return Math.min(1, c.base * Math.pow(Math.min(1, Math.max(inputDensity, 1e-3)), -c.exponent));
}

export type LayerPath = 'sparse' | 'dense';

/**
 * Why the sparse path cannot run this network, or null when it can: it runs plain chains of dense and conv2d layers
 * (linear or ReLU), valid max pooling, flatten, batchnorm (linear or ReLU) and dropout (identity); anything else
 * (merges, other activations and ops) runs on the dense path.
 */
export function sparseUnsupported(arch: Architecture): string | null {
  const w = walkGraph(arch);
  if (!w.chain) return 'the network is not a plain chain of ops';
  const bad = w.nodes.find((n) => !sparseStep(n.op));
  return bad ? `${bad.label} has no sparse kernel` : null;
}

function sparseStep(op: Op): boolean {
  switch (op.type) {
    case 'dense':
    case 'conv2d':
    case 'batchnorm':
      return op.activation === 'linear' || op.activation === 'relu';
    case 'maxpool':
      return (op.padding ?? 'valid') === 'valid';
    case 'flatten':
    case 'dropout':
      return true;
    default:
      return false;
  }
}

/** Per-prunable-layer path for these masks. */
export function choosePaths(
  arch: Architecture,
  masks: readonly LayerMasks[],
  mode: PathMode | readonly LayerPath[],
  nonZeroWeights?: readonly number[],
  /** Fraction of non-zero input pixels (default 1); applies to a first prunable layer that reads the input. */
  inputDensity = 1,
): LayerPath[] {
  const stats = layerStats(arch);
  const unsupported = sparseUnsupported(arch);
  if (unsupported !== null) {
    if (mode === 'sparse' || (typeof mode !== 'string' && mode.includes('sparse'))) throw new UsageError(`evaluator: the sparse path cannot run ${arch.name}: ${unsupported}`);
    return stats.map(() => 'dense');
  }
  const firstOp = arch.ops.findIndex((o) => o.type === 'conv2d' || o.type === 'dense');
  const readsInput = arch.ops.slice(0, firstOp).every((o) => o.type === 'flatten' || o.type === 'dropout');
  const out: LayerPath[] = [];
  stats.forEach((s, k) => {
    out.push(pick(s, k));
  });
  return out;
  function pick(s: (typeof stats)[number], k: number): LayerPath {
    if (typeof mode !== 'string') return mode[k]!;
    if (mode !== 'auto') return mode;
    if (k > 0 && s.macs <= SMALL_LAYER_MACS) return out[k - 1]!;
    let n = nonZeroWeights?.[k];
    if (n === undefined) {
      const m = masks[k]!.weight;
      n = 0;
      for (let i = 0; i < m.length; i++) n += m[i]!;
    }
    return n / s.weights <= crossoverDensity(s.kind, k === 0 && readsInput ? inputDensity : 1) ? 'sparse' : 'dense';
  }
}

/** The per-layer paths evaluateMasks would use for these masks on this context. */
export function pathsFor(ctx: EvaluationContext, masks: readonly LayerMasks[], mode: PathMode | readonly LayerPath[]): LayerPath[] {
  return choosePaths(ctx.arch, masks, mode, undefined, mode === 'auto' ? imageDensity(ctx.data.images) : 1);
}
