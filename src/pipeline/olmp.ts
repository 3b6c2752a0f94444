/**
 * The OLMP "pruning and adjusting" pipeline (spec olmp.md §5), resumable.
 *
 *   phase reference : dense Caffe-SGD training from Xavier init (skipped with --reference or a cached reference)
 *   phase pruning   : t < pruneUntil — DNS masked training; each layer is selected with p = 1/(1+γ_k t) and its
 *                     masks are updated at its current crate; every searchPeriod iterations with ≥2 layers selected,
 *                     the optimiser searches the selected layers' crates under the accuracy constraint
 *   phase adjusting : masks frozen, training continues to `iterations`
 *
 * Deviations from the released code, on purpose: candidate evaluation is stateless (each candidate's masks come
 * from the masks at the start of the search), and the chosen crates are applied to that same state, not to the
 * state left by the last candidate (spec §7.6). The per-iteration update requests lost to Caffe's test pass at
 * t ≡ 499 (mod 500) are not replicated.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type OlmpConfig } from './config.js';
import { saveCheckpoint, readCheckpoint, truncateJsonl, removeCheckpoints } from './checkpoint.js';
import { acquireLease, type Lease } from '../../foundation/lease.js';
import { readJsonObject } from '../../foundation/json.js';
import { resolveModel, fitToData, type ModelSource } from '../../models/source.js';
import { prunableOps } from '../../models/graph.js';
import { onesMasks, sizeReport, cloneMasks, type ModelParams, type LayerMasks } from '../../models/params.js';
import { magnitudeStats, masksForCrates, type MagnitudeStats } from '../../models/masks.js';
import { saveModel, loadModel } from '../../models/io.js';
import { loadDataset, type Dataset, type ImageSet } from '../../foundation/data/datasets.js';
import { restoreStream, type StreamState } from '../../foundation/rng.js';
import { writeJsonAtomic, appendFile } from '../../foundation/atomic.js';
import { initBackend, backendRecord, type BackendName } from '../../backends/backend.js';
import { Trainer, evaluateAccuracy, learningRate, type TrainerState, type TrainerOptions } from '../train/index.js';
import { lrAt } from '../train/solver.js';
import { resolveTrainThreads } from '../train/shard-pool.js';

import { createInProcessEvaluator, createPoolEvaluator, type Evaluator } from '../../evaluators/index.js';
import { type EvalResult } from '../../search/index.js';
import { runStream, layersAt, searchesAt, searchOptimizer, generationRequests } from './schedule.js';
import { obtainReference, type Reference, type ReferenceContext } from './reference.js';
import { BackendMismatchError, StoppedError, UsageError } from '../../foundation/errors.js';

export type Phase = 'reference' | 'pruning' | 'adjusting' | 'done';

export interface LogEvent {
  type: 'log';
  iteration: number;
  phase: Phase;
  compression: number;
  /** Accuracy of the current masked net on the current 64-image training batch (what the released code logs). */
  accuracy: number;
  validationAccuracy: number;
  loss: number;
  lr: number;
  elapsedMs: number;
}
export interface SearchEvent {
  type: 'search';
  iteration: number;
  layers: string[];
  crates: number[];
  compression: number;
  accuracy: number;
  accuracyFloor: number;
  evaluations: number;
  feasible: boolean;
  improved: boolean;
  earlyExits: number;
  cacheHits: number;
  generations: { generation: number; evaluations: number; bestFitness: number }[];
  elapsedMs: number;
}
export interface PhaseEvent {
  type: 'phase';
  iteration: number;
  phase: Phase;
  reason?: string;
}
export type OlmpEvent = LogEvent | SearchEvent | PhaseEvent;

export interface OlmpReport {
  status: 'finished';
  command: 'search';
  model: string;
  dataset: string;
  seed: number;
  backend: Record<string, unknown>;
  optimizer: string;
  constraint: string;
  compression: number;
  nonZero: number;
  params: number;
  layers: { name: string; nonZero: number; params: number; density: number }[];
  crates: number[];
  validationAccuracy: number;
  testAccuracy: number;
  testError: number;
  reference: { validationAccuracy: number; testAccuracy: number; source: string };
  wallTimeMs: number;
  evaluations: number;
  searches: number;
  iterations: number;
  stoppedBy: 'iterations' | 'time-budget';
  runDir: string;
}

export interface RunFileConfig {
  command: 'search';
  model: string;
  /** Where the model comes from (absent in runs from before user models: a zoo name). */
  modelSource?: ModelSource;
  dataset: string;
  seed: number;
  backend: Record<string, unknown>;
  backendRequested: BackendName;
  versions: Record<string, string>;
  options: OlmpConfig;
  resultsRoot: string;
}

interface RunState {
  phase: Phase;
  /** Next iteration to run in the current phase. */
  iteration: number;
  rng: StreamState;
  eventsCount: number;
  elapsedMs: number;
  crates: number[];
  sigma0: number;
  pruningStopped: string | null;
  evaluations: number;
  searches: number;
  trainer: TrainerState | null;
  masks: LayerMasks[];
  reference: Reference | null;
  stats: MagnitudeStats[];
  best: { compression: number; validationAccuracy: number; iteration: number } | null;
  timeUp: boolean;
  /** Loss of the last SGD step (logged at the next log point). */
  lastLoss: number | null;
  /** First adjusting iteration (null before; absent in older checkpoints). */
  adjustStart?: number | null;
}

export interface PipelineHooks {
  onEvent?: (e: OlmpEvent) => void;
  /** Called often (every few iterations) for progress displays. */
  onProgress?: (p: { phase: Phase; iteration: number; total: number; compression: number; accuracy: number }) => void;
  /** Test hook: called after each checkpoint is written. */
  onCheckpoint?: (iteration: number, phase: Phase) => void;
  /** One line about something survived (a damaged checkpoint passed over), for stderr. */
  onNotice?: (line: string) => void;
  /**
   * Aborted with 'SIGINT' or 'SIGTERM' as its reason: the run checkpoints at the next iteration (a search under way
   * finishes first) and throws a StoppedError; `resume` continues it to the uninterrupted result.
   */
  stop?: AbortSignal;
  /** Threads of sharded training steps for this session, instead of the run's trainThreads (results do not change). */
  trainThreads?: number;
}

const nowMs = () => performance.now();

/**
 * Runs (or resumes) the OLMP pipeline in `runDir`, whose config.json was written by createRun, under the run's
 * lease (`lease`, or one taken here).
 */
export async function runOlmp(runDir: string, hooks: PipelineHooks = {}, lease?: Lease): Promise<OlmpReport> {
  const own = lease ? null : acquireLease(runDir, 'prunus resume');
  try {
    return await runLeased(runDir, hooks, (lease ?? own)!);
  } finally {
    own?.release();
  }
}

async function runLeased(runDir: string, hooks: PipelineHooks, lease: Lease): Promise<OlmpReport> {
  const reportPath = join(runDir, 'report.json');
  const runCfg = readJsonObject(join(runDir, 'config.json')) as unknown as RunFileConfig;
  const cfg = runCfg.options;
  if (!cfg || typeof cfg !== 'object' || typeof cfg.model !== 'string') throw new UsageError(`${join(runDir, 'config.json')}: not a prunus run config (no options.model)`);
  if (existsSync(reportPath)) {
    if (!cfg.keepCheckpoints) removeCheckpoints(runDir);
    return readJsonObject(reportPath) as unknown as OlmpReport;
  }
  const backend = await initBackend(runCfg.backendRequested);
  if (backend.name !== (runCfg.backend as { name: string }).name) {
    const needed = (runCfg.backend as { name: string }).name;
    throw new BackendMismatchError(`${runDir} was started on backend ${needed}; this machine resolves ${backend.name} (pass --backend ${needed})`, needed, backend.name);
  }
  const model = resolveModel(cfg.model, cfg.modelSha256 ?? undefined);
  const data = loadRunData(cfg);
  const arch = fitToData(model.arch, datasetInfo(data), cfg.model);
  const L = prunableOps(arch).length;
  const trainThreads = resolveTrainThreads(hooks.trainThreads ?? cfg.trainThreads ?? 0);
  const eventsPath = join(runDir, 'events.jsonl');
  const sessionStart = nowMs();

  const saved = readCheckpoint<RunState>(runDir);
  if (saved?.notice) hooks.onNotice?.(saved.notice);
  let st: RunState = saved?.state ?? {
    phase: 'reference',
    iteration: 0,
    rng: runStream(cfg).state(),
    eventsCount: 0,
    elapsedMs: 0,
    crates: cfg.initialCrates ? cfg.initialCrates.slice() : new Array<number>(L).fill(cfg.initialCrate),
    sigma0: cfg.sigma0,
    pruningStopped: null,
    evaluations: 0,
    searches: 0,
    trainer: null,
    masks: onesMasks(arch),
    reference: null,
    stats: [],
    best: null,
    timeUp: false,
    lastLoss: null,
    adjustStart: null,
  };
  truncateJsonl(eventsPath, st.eventsCount);
  const rng = restoreStream(st.rng);
  const elapsed = () => st.elapsedMs + (nowMs() - sessionStart);
  const emit = (e: OlmpEvent) => {
    appendFile(eventsPath, JSON.stringify(e) + '\n');
    st.eventsCount++;
    hooks.onEvent?.(e);
  };
  let trainer: Trainer | null = null;
  const checkpoint = () => {
    st.rng = rng.state();
    st.trainer = trainer ? trainer.state() : null;
    const saved = { ...st, elapsedMs: elapsed() };
    saveCheckpoint(runDir, saved);
    hooks.onCheckpoint?.(st.iteration, st.phase);
  };
  const timeBudgetMs = cfg.timeBudget !== null ? cfg.timeBudget * 1000 : Infinity;
  // Once per iteration: lets the lease refresh, and stops at an iteration boundary (the state is then exactly a
  // periodic checkpoint's) when asked to.
  const tick = async (): Promise<void> => {
    await lease.keepAlive();
    if (hooks.stop?.aborted) {
      checkpoint();
      const signal = hooks.stop.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
      throw new StoppedError(`${signal}: stopped at ${st.phase} iteration ${st.iteration}, checkpointed; continue with: prunus resume ${runDir}`, signal);
    }
  };

  const evaluator: Evaluator = cfg.workers > 0 ? await createPoolEvaluator({ workers: cfg.workers, backend: backend.name as 'wasm' }) : await createInProcessEvaluator({});
  try {
    // ---- reference -------------------------------------------------------------------------------------------
    if (st.phase === 'reference') {
      const ctx: ReferenceContext = { cfg, runCfg, arch, data, backend, st, getTrainer: () => trainer, setTrainer: (t) => (trainer = t), checkpoint, hooks, elapsed, timeBudgetMs, tick, trainThreads };
      const ref = await obtainReference(ctx, model.params);
      (trainer as Trainer | null)?.dispose();
      trainer = null;
      st.reference = ref;
      st.stats = ref.params.layers.map((l) => magnitudeStats(l));
      st.phase = 'pruning';
      st.iteration = 0;
      st.trainer = null;
      emit({ type: 'phase', iteration: 0, phase: 'pruning', reason: `reference ${ref.source}: validation ${ref.validationAccuracy.toFixed(4)}, test ${ref.testAccuracy.toFixed(4)}` });
      checkpoint();
    }
    const reference = st.reference!;

    // ---- pruning and adjusting --------------------------------------------------------------------------------
    const trainerOpts = retrainingOptions(cfg, st, reference, () => trainer!);
    trainer = st.trainer
      ? Trainer.restore(arch, st.trainer, data.train, { ...trainerOpts, threads: trainThreads })
      : new Trainer(arch, reference.params, data.train, { solver: { batchSize: cfg.batchSize }, ...trainerOpts, shards: cfg.trainShards ?? 1, threads: trainThreads });
    let masks = st.masks;
    trainer.setMasks(masks);
    const total = cfg.iterations;
    while (st.iteration < total && st.phase !== 'done') {
      await tick();
      const t = st.iteration;
      if (elapsed() > timeBudgetMs) {
        st.timeUp = true;
        emit({ type: 'phase', iteration: t, phase: 'done', reason: 'time budget spent' });
        break;
      }
      const pruning = t < cfg.pruneUntil && st.pruningStopped === null;
      if (st.phase === 'pruning' && !pruning) {
        if (cfg.finalSearch && st.pruningStopped === null) {
          masks = await searchCrates(t, new Array<boolean>(L).fill(true), trainer.getParams(), masks);
          trainer.setMasks(masks);
        }
        st.phase = 'adjusting';
        st.adjustStart = t;
        // Distillation acts while adjusting only: the trainer is rebuilt from its exact state with it.
        if ((cfg.distillAlpha ?? 0) > 0) {
          const s = trainer.state();
          trainer.dispose();
          trainer = Trainer.restore(arch, s, data.train, { ...retrainingOptions(cfg, st, reference, () => trainer!), threads: trainThreads });
        }
        emit({ type: 'phase', iteration: t, phase: 'adjusting', reason: st.pruningStopped ?? `t = ${cfg.pruneUntil}` });
      }
      let masksChanged = false;
      if (pruning) {
        const selected = layersAt(cfg, t, rng);
        if (cfg.sigmaDivideAt.includes(t)) st.sigma0 /= 10;
        if (t % cfg.logPeriod === 0) logNow(t);
        if (selected.some((s) => s)) {
          const params = trainer.getParams();
          masks = masksForCrates(params.layers, masks, st.stats, selected.map((s, k) => (s ? st.crates[k]! : null)));
          masksChanged = true;
          if (searchesAt(cfg, t, selected)) {
            masks = await searchCrates(t, selected, params, masks);
            const size = sizeReport(arch, masks);
            if (cfg.targetCompression !== null && size.compression >= cfg.targetCompression) st.pruningStopped = `target compression ${cfg.targetCompression} reached (${size.compression.toFixed(1)}x)`;
            if (cfg.maxParams !== null && size.nonZero <= cfg.maxParams) st.pruningStopped = `max params ${cfg.maxParams} reached (${size.nonZero})`;
          }
        }
      } else if (t % cfg.logPeriod === 0) {
        logNow(t);
      }
      if (masksChanged) trainer.setMasks(masks);
      st.lastLoss = trainer.step().loss;
      st.iteration = t + 1;
      st.masks = masks;
      if (st.iteration % 25 === 0) {
        const size = sizeReport(arch, masks);
        hooks.onProgress?.({ phase: st.phase, iteration: st.iteration, total, compression: size.compression, accuracy: NaN });
      }
      if (st.iteration % cfg.checkpointPeriod === 0 && st.iteration < total) checkpoint();
    }

    function logNow(t: number): void {
      const batch = trainer!.peekBatch();
      const params = trainer!.getParams();
      const batchAcc = evaluateAccuracy(arch, params, masks, batchSet(batch, data.train)).accuracy;
      const val = evaluateAccuracy(arch, params, masks, data.validation);
      const size = sizeReport(arch, masks);
      emit({ type: 'log', iteration: t, phase: st.phase, compression: size.compression, accuracy: batchAcc, validationAccuracy: val.accuracy, loss: st.lastLoss ?? NaN, lr: trainer!.lr(t), elapsedMs: Math.round(elapsed()) });
      hooks.onProgress?.({ phase: st.phase, iteration: t, total: cfg.iterations, compression: size.compression, accuracy: val.accuracy });
      // Keep the best feasible model so far (used when the time budget stops the run).
      const floor = reference.validationAccuracy - cfg.maxAccDrop;
      if (cfg.timeBudget !== null && val.accuracy >= floor && (!st.best || size.compression > st.best.compression)) {
        st.best = { compression: size.compression, validationAccuracy: val.accuracy, iteration: t };
        saveModel(join(runDir, 'best'), { arch, params, masks: cloneMasks(masks) }, { magnitudeStats: st.stats, meta: { iteration: t } });
      }
    }

    async function searchCrates(t: number, selected: boolean[], params: ModelParams, startMasks: LayerMasks[]): Promise<LayerMasks[]> {
      const started = nowMs();
      const sel = selected.flatMap((s, k) => (s ? [k] : []));
      const evalSet: ImageSet = cfg.constraint === 'batch' ? batchSet(trainer!.peekBatch(), data.train) : data.validation;
      await evaluator.setContext({ arch, params, masks: startMasks, stats: st.stats, data: evalSet });
      const n = evalSet.count;
      const totalParams = sizeReport(arch, startMasks).params;
      const cratesFor = (x: number[]) => st.crates.map((c, k) => { const j = sel.indexOf(k); return j >= 0 ? x[j]! : c; });
      // Stateful (the released code): candidates chain their masks from here, and acc0 scores the current masks as
      // they are. Stateless: acc0 scores all layers at their current crates, every candidate starts from startMasks.
      // (Crates requests where possible: the evaluator's cache knows them exactly.)
      const stateful = cfg.evaluation === 'stateful';
      let state = startMasks;
      const [e0] = await evaluator.evaluate([stateful ? { kind: 'masks', masks: startMasks } : { kind: 'crates', crates: st.crates.slice() }]);
      const floorCorrect =
        cfg.constraint === 'batch'
          ? Math.ceil((e0!.correct / n - cfg.delta) * n - 1e-9)
          : Math.ceil((reference.validationAccuracy - cfg.maxAccDrop) * n - 1e-9);
      const toResult = (e: { correct: number; evaluated: number; count: number; nonZero: number; earlyExit: boolean }): EvalResult => {
        const feasible = !e.earlyExit && e.correct >= floorCorrect;
        return { fitness: e.nonZero / totalParams, feasible, violation: feasible ? 0 : Math.max((floorCorrect - (e.earlyExit ? e.correct + (e.count - e.evaluated) : e.correct)) / n, 1 / n) };
      };
      const x0 = sel.map((k) => Math.min(Math.max(st.crates[k]!, cfg.bounds[0]), cfg.bounds[1]));
      const f0 = toResult(e0!);
      const opt = searchOptimizer(cfg, sel, x0, f0, st.sigma0, rng);
      const generations: SearchEvent['generations'] = [];
      let evaluations = 1;
      let earlyExits = 0;
      let cacheHits = 0;
      while (!opt.done()) {
        const cands = opt.ask();
        const gen = generationRequests(cfg.evaluation, params.layers, state, st.stats, cands.map((c) => cratesFor(c.x)));
        state = gen.state;
        const evals = await evaluator.evaluate(gen.requests, { minCorrect: floorCorrect });
        evaluations += evals.length;
        for (const e of evals) {
          if (e.earlyExit) earlyExits++;
          if (e.cacheHit) cacheHits++;
        }
        opt.tell(cands, evals.map(toResult));
        const b = opt.best();
        generations.push({ generation: opt.generation, evaluations, bestFitness: b ? (b.result.feasible ? b.result.fitness : 1 + b.result.violation) : NaN });
      }
      const best = opt.best();
      let improved = false;
      if (best && best.result.feasible && (!f0.feasible || best.result.fitness < f0.fitness)) {
        sel.forEach((k, j) => (st.crates[k] = best.x[j]!));
        improved = true;
      }
      // Apply ALL layers at the stored crates to `state`: stateless, still the state the candidates were scored from;
      // stateful, the state the last candidate left (spec §7.6).
      const out = masksForCrates(params.layers, state, st.stats, st.crates);
      const size = sizeReport(arch, out);
      const [eBest] = await evaluator.evaluate([stateful ? { kind: 'masks', masks: out } : { kind: 'crates', crates: st.crates.slice() }]);
      st.evaluations += evaluations;
      st.searches++;
      emit({
        type: 'search',
        iteration: t,
        layers: sel.map((k) => prunableOps(arch)[k]!.name),
        crates: st.crates.slice(),
        compression: size.compression,
        accuracy: eBest!.correct / n,
        accuracyFloor: floorCorrect / n,
        evaluations,
        feasible: eBest!.correct >= floorCorrect,
        improved,
        earlyExits,
        cacheHits,
        generations,
        elapsedMs: Math.round(nowMs() - started),
      });
      return out;
    }

    // ---- final ------------------------------------------------------------------------------------------------
    let finalParams = trainer.getParams();
    let finalMasks = masks;
    let stoppedBy: OlmpReport['stoppedBy'] = 'iterations';
    if (st.timeUp) {
      stoppedBy = 'time-budget';
      const bestDir = join(runDir, 'best');
      if (st.best && existsSync(join(bestDir, 'model.json'))) {
        const b = loadModel(bestDir).model;
        finalParams = b.params;
        finalMasks = b.masks;
      }
    }
    const val = evaluateAccuracy(arch, finalParams, finalMasks, data.validation);
    const test = evaluateAccuracy(arch, finalParams, finalMasks, data.test);
    const size = sizeReport(arch, finalMasks);
    const report: OlmpReport = {
      status: 'finished',
      command: 'search',
      model: cfg.model,
      dataset: cfg.dataset,
      seed: cfg.seed,
      backend: backendRecord(backend),
      optimizer: cfg.optimizer,
      constraint: cfg.constraint,
      compression: size.compression,
      nonZero: size.nonZero,
      params: size.params,
      layers: size.layers.map((l) => ({ name: l.name, nonZero: l.nonZero, params: l.params, density: l.density })),
      crates: st.crates.slice(),
      validationAccuracy: val.accuracy,
      testAccuracy: test.accuracy,
      testError: 1 - test.accuracy,
      reference: { validationAccuracy: reference.validationAccuracy, testAccuracy: reference.testAccuracy, source: reference.source },
      wallTimeMs: Math.round(elapsed()),
      evaluations: st.evaluations,
      searches: st.searches,
      iterations: st.iteration,
      stoppedBy,
      runDir: resolve(runDir),
    };
    saveModel(join(runDir, 'model'), { arch, params: finalParams, masks: finalMasks }, { magnitudeStats: st.stats, meta: { seed: cfg.seed, backend: backendRecord(backend), crates: st.crates } });
    if (st.phase !== 'done') {
      st.phase = 'done';
      emit({ type: 'phase', iteration: st.iteration, phase: 'done', reason: stoppedBy });
    }
    writeJsonAtomic(reportPath, report);
    if (!cfg.keepCheckpoints) removeCheckpoints(runDir);
    return report;
  } finally {
    trainer?.dispose();
    await evaluator.close();
  }
}

/**
 * The trainer's options for pruning and adjusting: the learning rate while adjusting (cosine decay from the
 * schedule's value at the first adjusting iteration to 0 after the last) and, while adjusting, distillation from
 * the reference (during pruning it would pull the pruned weights back up and stall the crates at their bound).
 */
function retrainingOptions(cfg: OlmpConfig, st: RunState, reference: Reference, trainer: () => Trainer): Pick<TrainerOptions, 'lrOverride' | 'distill'> {
  const opts: Pick<TrainerOptions, 'lrOverride' | 'distill'> = {};
  if ((cfg.retrainLr ?? 'inv') === 'cosine') {
    opts.lrOverride = (t) => {
      const a = st.adjustStart;
      if (a === null || a === undefined || t < a) return undefined;
      return cosineDecay(learningRate(trainer().solver, a), t - a, cfg.iterations - a);
    };
  }
  const alpha = cfg.distillAlpha ?? 0;
  if (alpha > 0 && st.phase === 'adjusting') opts.distill = { teacher: reference.params, alpha, temperature: cfg.distillTemperature ?? 4 };
  return opts;
}

/** lr0 · (1 + cos(π·k/n))/2 (the SGD recipes' cosine schedule): lr0 at k = 0, 0 from k = n on. */
export function cosineDecay(lr0: number, k: number, n: number): number {
  return lrAt({ lr: lr0, schedule: { kind: 'cosine' }, steps: n }, Math.min(k, n));
}

/** The run's data. (Run folders from before --train-order or --input-scale have neither: they used the split and 1/256.) */
export function loadRunData(cfg: OlmpConfig): Dataset {
  return loadDataset(cfg.dataset, {
    dataDir: cfg.dataDir ?? undefined,
    splitSeed: cfg.splitSeed,
    trainOrder: cfg.trainOrder ?? 'split',
    limit: cfg.limit,
    inputScale: cfg.inputScale ?? 1 / 256,
    inputOffset: cfg.inputOffset ?? 0,
  });
}

/** What a model must fit: the data's image shape and class count. */
export function datasetInfo(data: Dataset): { shape: [number, number, number]; numClasses: number; name: string } {
  return { shape: data.train.shape, numClasses: data.numClasses, name: data.name };
}

/** A 64-image batch as an ImageSet. */
function batchSet(batch: { images: Float32Array; labels: Uint8Array }, like: ImageSet): ImageSet {
  return { images: batch.images, labels: batch.labels, count: batch.labels.length, shape: like.shape };
}
