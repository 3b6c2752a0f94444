/**
 * Channel candidates for the shared masked-model evaluators (evaluators/): a 'channels' candidate kind and its mask
 * builder (kept channel indices per group → weight/bias masks of producers and consumer slices), and an adapter
 * from an evaluators/ Evaluator (in-process or Piscina pool) to the search's ChannelEvaluator.
 *
 * Consumer input slices are masked together with the producer filters, so a pruned channel reaches nothing
 * downstream whatever its BatchNorm emits: the masked outputs equal the slimmed model's.
 * Importing this module registers the builder (pool workers import it by `workerModule`).
 */
import type { Architecture } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import { prunableOps } from '../../models/graph.js';
import { channelGroups, layerMasksFromChannels, masksFromScores, keptIndices, type ChannelGroup } from '../../models/channels.js';
import { registerMaskBuilder, type Evaluator, type EvaluationContext, type MaskBuilder } from '../../evaluators/index.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { UsageError } from '../../foundation/errors.js';
import type { ChannelEvaluator } from './search.js';

export interface ChannelsCandidate {
  kind: 'channels';
  /** Kept channel indices per group (channelGroups(ctx.arch) order). */
  kept: number[][];
}

declare module '../../evaluators/types.js' {
  interface CandidateKinds {
    channels: ChannelsCandidate;
  }
}

function groupsOf(ctx: EvaluationContext): ChannelGroup[] {
  return channelGroups(ctx.arch);
}

export const channelsBuilder: MaskBuilder<ChannelsCandidate> = {
  kind: 'channels',
  validate(ctx, cand) {
    const groups = groupsOf(ctx);
    if (!Array.isArray(cand.kept) || cand.kept.length !== groups.length) throw new UsageError(`channels candidate: ${Array.isArray(cand.kept) ? cand.kept.length : 'no'} groups for ${groups.length}`);
    groups.forEach((g, i) => {
      const k = cand.kept[i]!;
      if (!Array.isArray(k) || k.length < 1) throw new UsageError(`channels candidate: group ${g.name} keeps no channel (k_g = 0 is refused)`);
      for (const c of k) if (!Number.isInteger(c) || c < 0 || c >= g.channels) throw new UsageError(`channels candidate: channel ${String(c)} of ${g.name} is not in [0, ${g.channels})`);
    });
  },
  build(ctx, cand) {
    const groups = groupsOf(ctx);
    const masks = groups.map((g, i) => {
      const m = new Uint8Array(g.channels);
      for (const c of cand.kept[i]!) m[c] = 1;
      return m;
    });
    return layerMasksFromChannels(ctx.arch, groups, masks);
  },
  key(_ctx, cand) {
    return cand.kept.map((k) => [...k].sort((a, b) => a - b).join('.')).join('|');
  },
  workerModule: import.meta.url,
};

registerMaskBuilder(channelsBuilder);

/** An evaluation context for channel candidates: dense parameters, all-ones masks, no DNS statistics in use. */
export function channelsContext(arch: Architecture, params: ModelParams, data: ImageSet): EvaluationContext {
  const ops = prunableOps(arch);
  const masks = params.layers.map((l) => ({ weight: new Uint8Array(l.weight.length).fill(1), bias: new Uint8Array(l.bias.length).fill(1) }));
  return { arch, params, masks, stats: ops.map(() => ({ mu: 0, sigma: 0 })), data };
}

/**
 * Adapts a shared Evaluator to the search: keep counts → top-k channels by `scores` → 'channels' candidates.
 * Call `ready()` once (installs the context) before the search.
 */
export function sharedEvaluatorAdapter(ev: Evaluator, arch: Architecture, params: ModelParams, scores: Float32Array[], data: ImageSet, ownsEvaluator = true): ChannelEvaluator & { ready(): Promise<void> } {
  const groups = channelGroups(arch);
  return {
    ready: () => ev.setContext(channelsContext(arch, params, data)),
    async accuracy(keeps) {
      const cands: ChannelsCandidate[] = keeps.map((keep) => ({ kind: 'channels', kept: masksFromScores(groups, scores, keep).map(keptIndices) }));
      const r = await ev.evaluate(cands);
      return r.map((e) => e.accuracy);
    },
    async dispose() {
      if (ownsEvaluator) await ev.close();
    },
  };
}
