/**
 * The channel-pruning methods: each is a scorer (ranks channels within each group, for the search) plus a pruner /
 * finetuner that takes the searched keep counts k_g to a finetuned model, masks held during finetuning.
 *
 *   di     : T rounds (default 5); each scales every group's pruned fraction toward its target, re-scores with DI on
 *            the current masked model (pruned channels stay pruned), and finetunes briefly; then a final finetune.
 *   dcp    : heads, stage-wise finetune of network + heads (a quarter of the finetune steps); layer-wise greedy
 *            selection with consumer reconstruction (dcp.ts); final finetune on L_f (the rest of the steps).
 *   gfbs   : one-shot by GFBS scores, then finetune.
 *   l1     : one-shot by producer-filter L1 norm, then finetune.
 *   random : one-shot by random scores, then finetune.
 *
 * Every method gets the same number of finetuning SGD steps (`finetune.steps`); DCP's selection iterations (on the
 * consumer weights only) are extra and reported.
 */
import type { Architecture } from '../../models/graph.js';
import type { ModelParams } from '../../models/params.js';
import {
  type ChannelGroup,
  type ChannelMasks,
  applyChannelMasks,
  checkKeep,
  fullChannelMasks,
  masksFromScores,
  paramMasksFromChannels,
  topK,
} from '../../models/channels.js';
import type { ChannelData } from './data.js';
import type { ChannelsConfig, MethodName } from './config.js';
import { shardedTraining, trainSgd } from '../train/sgd.js';
import type { SgdConfig } from '../train/solver.js';
import { diScores, gfbsScores, l1Scores, randomScores } from './scorers.js';
import { dcpPrune, dcpScores, jointFinetune, trainHeads, type DcpHead } from './dcp.js';

export interface MethodContext {
  arch: Architecture;
  groups: ChannelGroup[];
  baseline: ModelParams;
  data: ChannelData;
  seed: number;
  cfg: ChannelsConfig;
  log?: (line: string) => void;
}

export interface PruneOutcome {
  masks: ChannelMasks;
  /** After the pruning phase, before the final finetune (masked, full size). */
  pruned: ModelParams;
  /** After finetuning (masked, full size). */
  finetuned: ModelParams;
  /** SGD steps of finetuning actually run. */
  finetuneSteps: number;
  /** Method-specific details for the report (hyper-parameters, per-round/per-group records). */
  details: Record<string, unknown>;
}

export interface ChannelMethod {
  readonly name: MethodName;
  /** The network the scores rank and the search evaluates (the baseline; DCP: the baseline after stage-wise finetuning). */
  reference(): ModelParams;
  /** Channel scores on reference() (higher = keep), one per group. */
  score(): Float32Array[];
  /** Prunes to `keep` channels per group and finetunes. */
  prune(keep: number[], scores: Float32Array[]): PruneOutcome;
}

/** Finetuning optimisers per method (original recipes, scaled to a few hundred/thousand steps). */
export function finetuneSgd(method: MethodName, steps: number, batchSize: number, phase: 'round' | 'final' = 'final'): SgdConfig {
  switch (method) {
    case 'di':
      // DI code: momentum 0.875, wd 3.05e-5; constant LR while pruning, cosine in the final finetune.
      return { steps, batchSize, lr: 0.01, momentum: 0.875, nesterov: false, weightDecay: 3.05e-5, schedule: phase === 'round' ? { kind: 'constant' } : { kind: 'cosine' }, bnMomentum: 0.9 };
    case 'dcp':
      // DCP (SCUT): Nesterov, momentum 0.9, wd 1e-4, ÷10 at 40 % and 60 % (epochs 160/240 of 400).
      return { steps, batchSize, lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4, schedule: { kind: 'step', at: [0.4, 0.6], factor: 0.1 }, bnMomentum: 0.9 };
    default:
      // GFBS after pruning: lr 0.01, momentum 0.9, wd 5e-4, ×0.2 at 37.5 % and 75 % (epochs 60/120 of 160). L1/random alike.
      return { steps, batchSize, lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 5e-4, schedule: { kind: 'step', at: [0.375, 0.75], factor: 0.2 }, bnMomentum: 0.9 };
  }
}

function finetune(ctx: MethodContext, method: MethodName, params: ModelParams, masks: ChannelMasks, sgd: SgdConfig, tag: string): ModelParams {
  if (sgd.steps === 0) return params;
  const r = trainSgd(ctx.arch, params, ctx.data.train, sgd, `${ctx.seed}:${method}:${tag}`, {
    masks: paramMasksFromChannels(ctx.arch, ctx.groups, masks),
    ...shardedTraining(ctx.cfg),
    logEvery: Math.max(1, Math.floor(sgd.steps / 4)),
    onLog: (s, l) => ctx.log?.(`  ${method} ${tag}: step ${s}/${sgd.steps} loss ${l.toFixed(4)}`),
  });
  // Masks held: re-apply exactly (training already keeps them at zero).
  return applyChannelMasks(ctx.arch, ctx.groups, r.params, masks);
}

function oneShot(ctx: MethodContext, method: MethodName, scoreFn: () => Float32Array[]): ChannelMethod {
  return {
    name: method,
    reference: () => ctx.baseline,
    score: scoreFn,
    prune(keep, scores) {
      checkKeep(ctx.groups, keep);
      const masks = masksFromScores(ctx.groups, scores, keep);
      const pruned = applyChannelMasks(ctx.arch, ctx.groups, ctx.baseline, masks);
      const sgd = finetuneSgd(method, ctx.cfg.finetune.steps, ctx.cfg.finetune.batchSize);
      const finetuned = finetune(ctx, method, pruned, masks, sgd, 'finetune');
      return { masks, pruned, finetuned, finetuneSteps: sgd.steps, details: { procedure: 'one-shot, then finetune', finetune: sgd } };
    },
  };
}

/** Keep counts of DI round t of T: every group's pruned fraction scaled toward its target, t/T of the way. */
export function diRoundKeep(groups: ChannelGroup[], keep: readonly number[], t: number, T: number): number[] {
  return groups.map((g, i) => {
    const target = keep[i]!;
    return Math.max(target, Math.min(g.channels, g.channels - Math.round(((g.channels - target) * t) / T)));
  });
}

function diMethod(ctx: MethodContext): ChannelMethod {
  const score = (params: ModelParams, tag: string) => diScores(ctx.arch, ctx.groups, params, ctx.data.score, `${ctx.seed}:${tag}`, ctx.cfg.di);
  return {
    name: 'di',
    reference: () => ctx.baseline,
    score: () => score(ctx.baseline, 'search'),
    prune(keep) {
      checkKeep(ctx.groups, keep);
      const T = ctx.cfg.di.rounds;
      const total = ctx.cfg.finetune.steps;
      const roundSteps = Math.floor(total / (2 * T));
      const finalSteps = total - T * roundSteps;
      let masks = fullChannelMasks(ctx.groups);
      let params = ctx.baseline;
      const rounds: { round: number; keep: number[]; steps: number }[] = [];
      for (let t = 1; t <= T; t++) {
        const kt = diRoundKeep(ctx.groups, keep, t, T);
        const scores = score(applyChannelMasks(ctx.arch, ctx.groups, params, masks), `round${t}`);
        // Pruned channels stay pruned: rank only the channels still kept.
        masks = ctx.groups.map((g, gi) => {
          const s = Float64Array.from(scores[gi]!, (v, c) => (masks[gi]![c] ? v : -Infinity));
          const m = new Uint8Array(g.channels);
          for (const c of topK(s, kt[gi]!)) m[c] = 1;
          return m;
        });
        params = applyChannelMasks(ctx.arch, ctx.groups, params, masks);
        ctx.log?.(`  di round ${t}/${T}: keep ${kt.join(',')}`);
        params = finetune(ctx, 'di', params, masks, finetuneSgd('di', roundSteps, ctx.cfg.finetune.batchSize, 'round'), `round${t}`);
        rounds.push({ round: t, keep: kt, steps: roundSteps });
      }
      const pruned = params;
      const finalSgd = finetuneSgd('di', finalSteps, ctx.cfg.finetune.batchSize, 'final');
      const finetuned = finetune(ctx, 'di', pruned, masks, finalSgd, 'final');
      return {
        masks,
        pruned,
        finetuned,
        finetuneSteps: T * roundSteps + finalSteps,
        details: { procedure: `${T} DI rounds (re-score, prune toward target, finetune ${roundSteps} steps), then a final finetune of ${finalSteps} steps`, rounds, roundSgd: finetuneSgd('di', roundSteps, ctx.cfg.finetune.batchSize, 'round'), finalSgd, di: ctx.cfg.di },
      };
    },
  };
}

function dcpMethod(ctx: MethodContext): ChannelMethod {
  // Stage-wise finetuning takes a quarter of the finetune budget, the final L_f finetune the rest.
  const stageSteps = Math.floor(ctx.cfg.finetune.steps / 4);
  const stageSgd = finetuneSgd('dcp', stageSteps, ctx.cfg.finetune.batchSize);
  let prepared: { heads: DcpHead[]; params: ModelParams; frozenHeadAccuracy: number[]; jointLosses: number[] } | null = null;
  const prepare = () => {
    if (!prepared) {
      const heads0 = trainHeads(ctx.arch, ctx.baseline, ctx.data.train, ctx.seed, ctx.cfg.dcp);
      ctx.log?.(`  dcp heads after ops ${heads0.map((h) => h.point).join(', ') || '(none)'}; fitted on frozen features (train acc ${heads0.map((h) => (h.trainAccuracy * 100).toFixed(1) + '%').join(', ')})`);
      const j = jointFinetune(ctx.arch, ctx.baseline, heads0, ctx.data.train, stageSgd, ctx.seed, ctx.cfg.dcp);
      if (stageSteps > 0) ctx.log?.(`  dcp stage-wise finetune: ${stageSteps} steps on L_f + sum L_S (loss ${j.losses.map((l) => l.toFixed(3)).join(' → ')})`);
      prepared = { heads: j.heads, params: j.params, frozenHeadAccuracy: heads0.map((h) => h.trainAccuracy), jointLosses: j.losses };
    }
    return prepared;
  };
  return {
    name: 'dcp',
    reference: () => prepare().params,
    score: () => {
      const p = prepare();
      return dcpScores(ctx.arch, ctx.groups, p.params, p.heads, ctx.data.score, ctx.seed, ctx.cfg.dcp);
    },
    prune(keep) {
      checkKeep(ctx.groups, keep);
      const p = prepare();
      const r = dcpPrune(ctx.arch, ctx.groups, p.params, p.heads, ctx.data.score, keep, ctx.seed, ctx.cfg.dcp);
      const sgd = finetuneSgd('dcp', ctx.cfg.finetune.steps - stageSteps, ctx.cfg.finetune.batchSize);
      const finetuned = finetune(ctx, 'dcp', r.params, r.masks, sgd, 'finetune');
      return {
        masks: r.masks,
        pruned: r.params,
        finetuned,
        finetuneSteps: stageSteps + sgd.steps,
        details: {
          procedure: `heads fitted on frozen features; stage-wise finetune of network + heads (${stageSteps} steps, L_f + sum L_S); layer-wise greedy selection with consumer reconstruction; final finetune on L_f (${sgd.steps} steps)`,
          heads: p.heads.map((h, i) => ({ afterOp: h.point, channels: h.channels, frozenFitTrainAccuracy: p.frozenHeadAccuracy[i] })),
          stageSgd,
          stageLosses: p.jointLosses,
          selection: r.perGroup.map((g) => ({ ...g, losses: g.losses.map((l) => Number(l.toPrecision(5))) })),
          selectionIterations: r.perGroup.reduce((s, g) => s + g.iterations, 0),
          dcp: ctx.cfg.dcp,
          finetune: sgd,
        },
      };
    },
  };
}

export function createMethod(name: MethodName, ctx: MethodContext): ChannelMethod {
  switch (name) {
    case 'di':
      return diMethod(ctx);
    case 'dcp':
      return dcpMethod(ctx);
    case 'gfbs':
      return oneShot(ctx, 'gfbs', () => gfbsScores(ctx.arch, ctx.groups, ctx.baseline, ctx.data.score, ctx.seed, ctx.cfg.gfbs));
    case 'l1':
      return oneShot(ctx, 'l1', () => l1Scores(ctx.arch, ctx.groups, ctx.baseline));
    case 'random':
      return oneShot(ctx, 'random', () => randomScores(ctx.groups, ctx.seed));
  }
}
