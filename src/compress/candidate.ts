/**
 * The joint candidate of `prunus compress`: kept channel indices per group ⊕ one crate per prunable layer. Its masks
 * are the conjunction of the channel masks (producer filters and consumer input slices of removed channels) and
 * the DNS magnitude masks at the crates (thresholds from the context's frozen magnitude statistics, updated from
 * the context's masks): a weight survives only if its channels are kept and its magnitude passes. A crate of exactly
 * 0 or null leaves a layer to its channel masks alone (spec olmp.md §2).
 *
 * Evaluated by the shared masked-model evaluators like the other kinds (stateless, cached by an exact key, built in
 * the pool workers, which import this module by `workerModule`). Importing it registers the builder.
 */
import type { LayerMasks } from '../../models/params.js';
import { masksForCrates } from '../../models/masks.js';
import { cratesBuilder, registerMaskBuilder, type EvaluationContext, type MaskBuilder } from '../../evaluators/index.js';
import { UsageError } from '../../foundation/errors.js';
import { channelsBuilder } from '../channels/evaluator.js';

export interface JointCandidate {
  kind: 'joint';
  /** Kept channel indices per channel group (channelGroups(ctx.arch) order); each group keeps at least one. */
  kept: number[][];
  /** One crate per prunable layer (threshold max(μ + c·σ, 0)); exactly 0 or null = no magnitude pruning of that layer. */
  crates: (number | null)[];
}

declare module '../../evaluators/types.js' {
  interface CandidateKinds {
    joint: JointCandidate;
  }
}

/** Entry-wise AND of two mask sets of the same shapes. */
export function conjunction(a: readonly LayerMasks[], b: readonly LayerMasks[]): LayerMasks[] {
  return a.map((m, k) => {
    const o = b[k]!;
    const weight = new Uint8Array(m.weight.length);
    for (let i = 0; i < weight.length; i++) weight[i] = m.weight[i]! & o.weight[i]!;
    const bias = new Uint8Array(m.bias.length);
    for (let i = 0; i < bias.length; i++) bias[i] = m.bias[i]! & o.bias[i]!;
    return { weight, bias };
  });
}

/** The joint candidate's masks: channel masks ∧ magnitude masks at the crates (see the module comment). */
export function jointMasks(ctx: EvaluationContext, cand: Pick<JointCandidate, 'kept' | 'crates'>): LayerMasks[] {
  const channel = channelsBuilder.build(ctx, { kind: 'channels', kept: cand.kept });
  const magnitude = masksForCrates(ctx.params.layers, ctx.masks, ctx.stats, cand.crates.map((c) => (c === 0 ? null : c)));
  return conjunction(channel, magnitude);
}

export const jointBuilder: MaskBuilder<JointCandidate> = {
  kind: 'joint',
  validate(ctx, cand) {
    channelsBuilder.validate!(ctx, { kind: 'channels', kept: cand.kept });
    if (!Array.isArray(cand.crates)) throw new UsageError('joint candidate: no crates');
    cratesBuilder.validate!(ctx, { kind: 'crates', crates: cand.crates });
  },
  build: (ctx, cand) => jointMasks(ctx, cand),
  // Exact: the channel key names the kept channels, the crates key the magnitude masks; both fix the conjunction.
  key: (prep, cand) => `${channelsBuilder.key!(prep, { kind: 'channels', kept: cand.kept })}#${cratesBuilder.key!(prep, { kind: 'crates', crates: cand.crates })}`,
  workerModule: import.meta.url,
};

registerMaskBuilder(jointBuilder);
