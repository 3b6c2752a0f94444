/**
 * One channel-pruning run: baseline (cached) → scores → NCS search over keep ratios under the FLOPs budget →
 * the method's pruner/finetuner on the best configuration → physical slimming → report. The run directory
 * (config.json, report.json, search.json, and model/: the slimmed model as a tfjs LayersModel) is written
 * atomically at the end.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { acquireLease } from '../../foundation/lease.js';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { resolveModel, fitToData } from '../../models/source.js';
import '../../models/zoo-cnn.js';
import { channelGroups, configCost, denseCost, keptIndices, masksFromScores, applyChannelMasks, type ChannelMasks } from '../../models/channels.js';
import { slimModel } from '../../models/slim.js';
import { onesMasks } from '../../models/params.js';
import { writeModelFiles } from '../../models/io.js';
import { toTensors, forward, disposeModelTensors } from '../../models/forward.js';
import { initBackend, backendRecord, describeBackend, type BackendName } from '../../backends/backend.js';
import { writeDirAtomic, writeFile } from '../../foundation/atomic.js';
import { mergeOneLevel } from '../../foundation/json.js';
import { runVersions, utcStamp } from '../run-dir.js';
import { UsageError } from '../../foundation/errors.js';
import { defaultChannelsConfig, validateChannelsConfig, type ChannelsConfig, type MethodName, type Objective } from './config.js';
import { loadChannelData } from './data.js';
import { getBaseline } from './baseline.js';
import { createMethod } from './methods.js';
import { inProcessEvaluator, searchKeepRatios, type ChannelEvaluator, type SearchOutcome } from './search.js';
import { recalibrateBatchNorm } from './recalibrate.js';
import { evaluateAccuracy } from '../train/evaluate.js';
import { sharedEvaluatorAdapter } from './evaluator.js';
import { createPoolEvaluator } from '../../evaluators/index.js';

export interface ChannelsOptions {
  model: string;
  /** With the backend line: why the backends before the chosen one were skipped. */
  verbose?: boolean;
  method: MethodName;
  quick?: boolean;
  flopsBudget?: number;
  maxAccDrop?: number;
  objective?: Objective;
  seed?: number;
  backend?: BackendName;
  /** Overrides applied on top of the defaults/quick preset (deep-merged one level). */
  overrides?: Partial<ChannelsConfig>;
  /** Run directory (default <resultsRoot>/channels-<model>-<method>-b<budget>-s<seed>-<time>). */
  out?: string;
  resultsRoot?: string;
  log?: (line: string) => void;
  /**
   * Search evaluation: 0 (default) evaluates slimmed candidates in this thread; N >= 1 uses the shared Piscina pool
   * of evaluators/ with N workers (masked candidates, 'channels' kind).
   */
  workers?: number;
  /** Replaces the candidate evaluator altogether. */
  makeEvaluator?: (ctx: { cfg: ChannelsConfig; scores: Float32Array[] }) => ChannelEvaluator | Promise<ChannelEvaluator>;
}

export interface GroupRecord {
  name: string;
  channels: number;
  kept: number;
  keepRatio: number;
  keptIndices: number[];
}

export interface ChannelsReport {
  status: 'finished';
  command: 'channels';
  model: string;
  dataset: string;
  method: MethodName;
  objective: Objective;
  seed: number;
  backend: Record<string, unknown>;
  flopsBudget: number;
  maxAccDrop: number;
  macs: { before: number; after: number; reduction: number; withinBudget: boolean };
  params: { before: number; after: number; reduction: number };
  accuracy: {
    /** Test accuracy of the unpruned baseline. */
    baseline: number;
    /**
     * Test accuracy of the searched configuration applied one-shot (top-k by score, no finetuning) to the network the
     * scores rank (the baseline; DCP: after its stage-wise finetune); BN models with their BN statistics re-estimated.
     */
    pruned: number;
    /** Test accuracy after the method's pruning phase, before the final finetune (DI rounds, DCP reconstruction); BN statistics re-estimated as for `pruned`. */
    afterPruningPhase: number;
    /** Test accuracy of the finetuned, physically slimmed model. */
    finetuned: number;
    validation: { baseline: number; pruned: number; finetuned: number };
  };
  groups: GroupRecord[];
  search: {
    evaluations: number;
    distinct: number;
    generations: number;
    feasible: boolean;
    bestRatios: number[];
    startRatio: number;
    validationAccuracy: number;
    evaluator: string;
    wallMs: number;
  };
  method_details: Record<string, unknown>;
  budgets: {
    data: ChannelsConfig['data'];
    baseline: ChannelsConfig['baseline'];
    search: ChannelsConfig['search'];
    finetuneSteps: number;
    finetuneBatch: number;
    scorer: Record<string, unknown>;
  };
  baseline: { dir: string; cached: boolean; trainWallMs: number };
  slim: { arch: string; maxAbsDiffVsMasked: number };
  wallTimeMs: number;
  phasesMs: Record<string, number>;
  versions: Record<string, string>;
  runDir: string;
}

/** Defaults(model) < quick preset < explicit options < overrides. Validated; bad input throws a UsageError. */
export function resolveChannelsConfig(opts: ChannelsOptions): ChannelsConfig {
  const base = defaultChannelsConfig(opts.model, opts.method, Boolean(opts.quick));
  const c: ChannelsConfig = { ...base };
  const { flopsBudget, maxAccDrop, objective, seed } = opts;
  mergeOneLevel(c, { flopsBudget, maxAccDrop, objective, seed });
  mergeOneLevel(c, opts.overrides ?? {});
  return validateChannelsConfig(c);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Runs channel pruning end to end and writes the run directory. */
export async function pruneChannels(opts: ChannelsOptions): Promise<ChannelsReport> {
  const t0 = Date.now();
  const cfg = resolveChannelsConfig(opts);
  const log = opts.log ?? (() => {});
  const resultsRoot = resolve(opts.resultsRoot ?? process.env.PRUNUS_RESULTS ?? 'results');
  const given = resolveModel(cfg.model, cfg.modelSha256 ?? undefined);
  const slug = given.source.kind === 'zoo' ? cfg.model : given.arch.name.replace(/[^A-Za-z0-9_.-]/g, '_');
  const runDir = resolve(opts.out ?? join(resultsRoot, `channels-${slug}-${cfg.method}-b${cfg.flopsBudget}-s${cfg.seed}-${utcStamp()}`));
  if (existsSync(join(runDir, 'report.json'))) throw new UsageError(`${runDir} already holds a finished run`);
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw new UsageError(`--out ${runDir} exists and is not a folder`);
  const lease = acquireLease(runDir, 'prunus channels');
  try {
    return await pruneLeased(opts, cfg, runDir, resultsRoot, log, given, t0);
  } finally {
    lease.release();
  }
}

async function pruneLeased(
  opts: ChannelsOptions,
  cfg: ChannelsConfig,
  runDir: string,
  resultsRoot: string,
  log: (line: string) => void,
  given: ReturnType<typeof resolveModel>,
  t0: number,
): Promise<ChannelsReport> {
  const hasBn = given.arch.ops.some((o) => o.type === 'batchnorm');
  if (hasBn && cfg.bnRecalibration > 0 && opts.workers && opts.workers > 0) {
    throw new UsageError('--workers evaluates masked candidates with the baseline BatchNorm statistics; on BatchNorm models use it with --bn-recalibration 0');
  }
  const backend = await initBackend(opts.backend ?? 'auto');
  log(describeBackend(backend, opts.verbose));
  const phases: Record<string, number> = {};
  const phase = <T>(name: string, f: () => T): T => {
    const s = Date.now();
    const r = f();
    phases[name] = (phases[name] ?? 0) + Date.now() - s;
    return r;
  };

  const data = phase('data', () => loadChannelData(cfg.dataset, cfg.data, { dataDir: cfg.dataDir, splitSeed: cfg.splitSeed, inputScale: cfg.inputScale, inputOffset: cfg.inputOffset }));
  const arch = fitToData(given.arch, { shape: data.train.shape, numClasses: data.numClasses, name: data.dataset }, cfg.model);
  const groups = channelGroups(arch);
  if (groups.length === 0) throw new UsageError(`${cfg.model}: no channels can be pruned (every channel reaches the output or is tied to the input)`);
  const baseline = phase('baseline', () => getBaseline(resultsRoot, cfg, arch, given.params, data, log));
  log(`baseline: validation ${(baseline.validationAccuracy * 100).toFixed(2)}%, test ${(baseline.testAccuracy * 100).toFixed(2)}%`);

  const method = createMethod(cfg.method, { arch, groups, baseline: baseline.params, data, seed: cfg.seed, cfg, log });
  const scores = phase('score', () => method.score());
  const reference = method.reference();
  log(`${cfg.method}: scored ${groups.length} groups`);

  const recalibration = hasBn && cfg.bnRecalibration > 0 ? { batches: cfg.bnRecalibration, batchSize: 64, set: data.score, seed: cfg.seed } : undefined;
  let evaluator: ChannelEvaluator;
  let evaluatorName = 'in-process (slimmed candidates)';
  if (opts.makeEvaluator) {
    evaluator = await opts.makeEvaluator({ cfg, scores });
    evaluatorName = 'custom';
  } else if (opts.workers && opts.workers > 0) {
    evaluatorName = `evaluators/ pool, ${opts.workers} workers (masked candidates)`;
    const pool = await createPoolEvaluator({ workers: opts.workers, backend: backend.name === 'cpu' ? 'cpu' : 'wasm', batchSize: cfg.evalBatch });
    const adapter = sharedEvaluatorAdapter(pool, arch, reference, scores, data.validation);
    await adapter.ready();
    evaluator = adapter;
  } else {
    evaluator = inProcessEvaluator(arch, groups, reference, scores, data.validation, cfg.evalBatch, recalibration);
    if (recalibration) evaluatorName += `, BN statistics re-estimated on ${recalibration.batches}×64 scoring images`;
  }
  const s0 = Date.now();
  let search: SearchOutcome;
  try {
    search = await searchKeepRatios(
      arch,
      groups,
      evaluator,
      {
        objective: cfg.objective,
        flopsBudget: cfg.flopsBudget,
        maxAccDrop: cfg.maxAccDrop,
        baselineAccuracy: baseline.validationAccuracy,
        popSize: cfg.search.popSize,
        budget: cfg.search.budget,
        sigma0: cfg.search.sigma0,
        lower: cfg.search.lower,
        upper: cfg.search.upper,
        seed: cfg.seed,
      },
      log,
    );
  } finally {
    await evaluator.dispose?.();
  }
  phases.search = Date.now() - s0;
  const keep = search.best.keep;
  log(`search: keep ${keep.join(',')} (${search.best.result.feasible ? 'feasible' : 'infeasible'}), MACs ${(search.best.macs / denseCost(arch, groups).macs * 100).toFixed(1)}% of dense`);

  const oneShotMasks = masksFromScores(groups, scores, keep);
  const oneShotMasked = applyChannelMasks(arch, groups, reference, oneShotMasks);
  const oneShotParams = recalibration ? recalibrateBatchNorm(arch, oneShotMasked, recalibration) : oneShotMasked;
  const prunedTest = phase('evaluate', () => evaluateAccuracy(arch, oneShotParams, null, data.test, cfg.evalBatch).accuracy);

  const outcome = phase('prune+finetune', () => method.prune(keep, scores));
  const masks: ChannelMasks = outcome.masks;
  const afterPhaseParams = recalibration ? recalibrateBatchNorm(arch, outcome.pruned, recalibration) : outcome.pruned;
  const afterPhaseTest = phase('evaluate', () => evaluateAccuracy(arch, afterPhaseParams, null, data.test, cfg.evalBatch).accuracy);

  // Physical slimming; check it against the masked model on a batch.
  const slim = slimModel(arch, groups, outcome.finetuned, masks);
  const diff = phase('slim', () => {
    const [h, w, c] = arch.inputShape;
    const n = Math.min(64, data.test.count);
    const x = tf.tensor4d(data.test.images.subarray(0, n * h * w * c), [n, h, w, c]);
    const ta = toTensors(arch, outcome.finetuned);
    const tb = toTensors(slim.arch, slim.params);
    const a = tf.tidy(() => forward(arch, ta, x));
    const b = tf.tidy(() => forward(slim.arch, tb, x));
    const d = maxAbsDiff(a.dataSync() as Float32Array, b.dataSync() as Float32Array);
    tf.dispose([x, a, b]);
    disposeModelTensors(ta);
    disposeModelTensors(tb);
    return d;
  });
  const finetunedTest = phase('evaluate', () => evaluateAccuracy(slim.arch, slim.params, null, data.test, cfg.evalBatch).accuracy);
  const finetunedVal = phase('evaluate', () => evaluateAccuracy(slim.arch, slim.params, null, data.validation, cfg.evalBatch).accuracy);

  const dense = denseCost(arch, groups);
  const kept = masks.map((m) => keptIndices(m));
  const cost = configCost(arch, groups, kept.map((k) => k.length));

  const scorer: Record<string, unknown> =
    cfg.method === 'di' ? { ...cfg.di } : cfg.method === 'dcp' ? { ...cfg.dcp } : cfg.method === 'gfbs' ? { ...cfg.gfbs } : {};
  const report: ChannelsReport = {
    status: 'finished',
    command: 'channels',
    model: cfg.model,
    dataset: cfg.dataset,
    method: cfg.method,
    objective: cfg.objective,
    seed: cfg.seed,
    backend: backendRecord(backend),
    flopsBudget: cfg.flopsBudget,
    maxAccDrop: cfg.maxAccDrop,
    macs: { before: dense.macs, after: cost.macs, reduction: 1 - cost.macs / dense.macs, withinBudget: cost.macs <= cfg.flopsBudget * dense.macs },
    params: { before: dense.params, after: cost.params, reduction: 1 - cost.params / dense.params },
    accuracy: {
      baseline: baseline.testAccuracy,
      pruned: prunedTest,
      afterPruningPhase: afterPhaseTest,
      finetuned: finetunedTest,
      validation: { baseline: baseline.validationAccuracy, pruned: search.best.accuracy, finetuned: finetunedVal },
    },
    groups: groups.map((g, i) => ({ name: g.name, channels: g.channels, kept: kept[i]!.length, keepRatio: kept[i]!.length / g.channels, keptIndices: kept[i]! })),
    search: {
      evaluations: search.evaluations,
      distinct: search.distinct,
      generations: search.generations,
      feasible: search.best.result.feasible,
      bestRatios: search.best.ratios.map((r) => Number(r.toFixed(6))),
      startRatio: Number(search.start.ratios[0]!.toFixed(6)),
      validationAccuracy: search.best.accuracy,
      evaluator: evaluatorName,
      wallMs: search.wallMs,
    },
    method_details: outcome.details,
    budgets: { data: cfg.data, baseline: cfg.baseline, search: cfg.search, finetuneSteps: outcome.finetuneSteps, finetuneBatch: cfg.finetune.batchSize, scorer },
    baseline: { dir: baseline.dir, cached: baseline.cached, trainWallMs: baseline.trainWallMs },
    slim: { arch: slim.arch.name, maxAbsDiffVsMasked: diff },
    wallTimeMs: Date.now() - t0,
    phasesMs: phases,
    versions: runVersions(),
    runDir,
  };
  writeDirAtomic(runDir, (tmp) => {
    const w = (name: string, v: unknown) => writeFile(join(tmp, name), JSON.stringify(v, null, 2) + '\n');
    w('config.json', { ...cfg, backend: opts.backend ?? 'auto' });
    w('search.json', { start: search.start, best: search.best, history: search.history });
    w('report.json', report);
    const modelDir = join(tmp, 'model');
    mkdirSync(modelDir);
    writeModelFiles(modelDir, { arch: slim.arch, params: slim.params, masks: onesMasks(slim.arch) }, { meta: { source: 'prunus channels', method: cfg.method, seed: cfg.seed, keptIndices: kept } });
  });
  return report;
}

