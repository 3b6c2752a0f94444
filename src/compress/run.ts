/**
 * One `prunus compress` run, in stages whose outputs are written atomically into the run folder, so that a run
 * killed at any point (kill -9 included) resumes to the uninterrupted result:
 *
 *   search.json  the joint search (NCS over keep ratios ⊕ crates on masked candidates; keep ratios alone in modes
 *                chained and channels; absent in mode olmp). Rerun from its start when interrupted (deterministic).
 *   start/       the network the OLMP stage starts from: the winner's channels removed by the method's finetuner
 *                (DI rounds, DCP stage-wise, GFBS/L1/random one-shot + finetune) and physically sliced away; the
 *                baseline itself in mode olmp.
 *   olmp/        OLMP's pruning and adjusting on that network (an ordinary `prunus search` run folder, resumed
 *                from its own checkpoints), crates starting from the winner's; absent in mode channels.
 *   model/, export/, report.json   the final model, its exports (tfjs, sparse), measurements (finish.ts).
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { acquireLease } from '../../foundation/lease.js';
import { appendFile, writeDirAtomic, writeJsonAtomic } from '../../foundation/atomic.js';
import { truncateJsonl } from '../pipeline/checkpoint.js';
import { mergeOneLevel, readJsonObject } from '../../foundation/json.js';
import { BackendMismatchError, UsageError } from '../../foundation/errors.js';
import { resolveModel, fitToData } from '../../models/source.js';
import '../../models/zoo-cnn.js';
import { prunableOps, type Architecture } from '../../models/graph.js';
import { channelGroups, keptIndices, type ChannelGroup } from '../../models/channels.js';
import { slimModel } from '../../models/slim.js';
import { onesMasks, sizeReport, type ModelParams } from '../../models/params.js';
import { magnitudeStats } from '../../models/masks.js';
import { loadModel, writeModelFiles } from '../../models/io.js';
import { initBackend, backendRecord, describeBackend, type BackendInfo, type BackendName } from '../../backends/backend.js';
import { createInProcessEvaluator, createPoolEvaluator, type Evaluator } from '../../evaluators/index.js';
import { runVersions, utcStamp } from '../run-dir.js';
import { loadChannelData, type ChannelData } from '../channels/data.js';
import { getBaseline, type Baseline } from '../channels/baseline.js';
import { createMethod, type ChannelMethod } from '../channels/methods.js';
import { evaluateAccuracy } from '../train/evaluate.js';
import { search as olmpSearch, resume as olmpResume } from '../pipeline/run.js';
import type { OlmpReport, PipelineHooks, RunFileConfig } from '../pipeline/olmp.js';
import { channelsView, defaultCompressConfig, validateCompressConfig, type CompressConfig, type CompressMode, type CompressObjective } from './config.js';
import { searchJoint, paretoFront, type JointOutcome, type JointSettings } from './search.js';
import { recalibratedEvaluator } from './recalibrated.js';
import { finishRun, type CompressReport } from './finish.js';
import type { MethodName } from '../channels/config.js';
import './candidate.js';

export interface CompressOptions {
  model: string;
  method: MethodName;
  mode?: CompressMode;
  quick?: boolean;
  objective?: CompressObjective;
  maxAccDrop?: number;
  flopsBudget?: number | null;
  targetCompression?: number | null;
  timeBudget?: number | null;
  seed?: number;
  workers?: number;
  backend?: BackendName;
  /** Applied on top of defaults and the quick preset (objects merged one level). */
  overrides?: Partial<CompressConfig>;
  out?: string;
  resultsRoot?: string;
  verbose?: boolean;
  log?: (line: string) => void;
  /** The OLMP stage's hooks (progress, stop signal). */
  hooks?: PipelineHooks;
  /** Called as each stage starts: 'baseline', 'search', 'finetune', 'olmp', 'finish'. */
  onStage?: (name: string) => void;
  /** Each line written to events.jsonl. */
  onEvent?: (e: CompressEvent) => void;
}

/** How a session reports: stage lines, the OLMP stage's hooks, stage changes, events. */
export type SessionHooks = Pick<CompressOptions, 'log' | 'hooks' | 'onStage' | 'onEvent'>;

/** config.json of a compress run: a search run's fields, the compress config as its options. */
export interface CompressRunFile extends Omit<RunFileConfig, 'command' | 'options' | 'modelSource'> {
  command: 'compress';
  options: CompressConfig;
}

/** Defaults(model, method) < quick preset < explicit options < overrides. Validated. */
export function resolveCompressConfig(opts: CompressOptions): CompressConfig {
  const c = defaultCompressConfig(opts.model, opts.method, Boolean(opts.quick), opts.mode ?? 'joint');
  const { objective, maxAccDrop, flopsBudget, targetCompression, timeBudget, seed, workers } = opts;
  mergeOneLevel(c, { objective, maxAccDrop, flopsBudget, targetCompression, timeBudget, seed, workers });
  mergeOneLevel(c, opts.overrides ?? {});
  return validateCompressConfig(c);
}

/** Starts a new run (its folder must not hold one) and runs it to the end. */
export async function compress(opts: CompressOptions): Promise<CompressReport> {
  const cfg = resolveCompressConfig(opts);
  const resultsRoot = resolve(opts.resultsRoot ?? process.env.PRUNUS_RESULTS ?? 'results');
  const given = resolveModel(cfg.model, cfg.modelSha256 ?? undefined);
  const slug = given.source.kind === 'zoo' ? cfg.model : given.arch.name.replace(/[^A-Za-z0-9_.-]/g, '_');
  const runDir = resolve(opts.out ?? join(resultsRoot, `compress-${slug}-${cfg.mode}-${cfg.method}-s${cfg.seed}-${utcStamp()}`));
  if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw new UsageError(`--out ${runDir} exists and is not a folder`);
  if (existsSync(join(runDir, 'report.json'))) throw new UsageError(`${runDir} already holds a finished run`);
  if (existsSync(join(runDir, 'config.json'))) throw new UsageError(`${runDir} already holds a run; continue it with 'prunus resume ${runDir}'`);
  // Bad data or a model that does not fit it fail before anything is written.
  const data = loadChannelData(cfg.dataset, cfg.data, { dataDir: cfg.dataDir, splitSeed: cfg.splitSeed, inputScale: cfg.inputScale, inputOffset: cfg.inputOffset });
  const arch = fitToData(given.arch, { shape: data.train.shape, numClasses: data.numClasses, name: data.dataset }, cfg.model);
  if (cfg.mode !== 'olmp' && channelGroups(arch).length === 0) throw new UsageError(`${cfg.model}: no channels can be pruned (every channel reaches the output or is tied to the input); use --mode olmp`);
  const backend = await initBackend(opts.backend ?? 'auto');
  opts.log?.(describeBackend(backend, opts.verbose));
  const lease = acquireLease(runDir, 'prunus compress');
  try {
    const runFile: CompressRunFile = { command: 'compress', model: cfg.model, dataset: cfg.dataset, seed: cfg.seed, backend: backendRecord(backend), backendRequested: opts.backend ?? 'auto', versions: runVersions(), options: cfg, resultsRoot };
    mkdirSync(runDir, { recursive: true });
    writeJsonAtomic(join(runDir, 'config.json'), runFile);
    return await runStages(runDir, runFile, backend, opts);
  } finally {
    lease.release();
  }
}

/** True when `dir` holds a compress run (its config.json says so). */
export function isCompressRun(dir: string): boolean {
  const p = join(dir, 'config.json');
  if (!existsSync(p)) return false;
  try {
    return (JSON.parse(readFileSync(p, 'utf8')) as { command?: unknown }).command === 'compress';
  } catch {
    return false;
  }
}

/** Continues an interrupted compress run (or returns a finished run's report). */
export async function resumeCompress(dir: string, session: SessionHooks = {}): Promise<CompressReport> {
  const runFile = readJsonObject(join(dir, 'config.json')) as unknown as CompressRunFile;
  if (runFile.command !== 'compress' || !runFile.options) throw new UsageError(`${dir}: not a prunus compress run`);
  if (existsSync(join(dir, 'report.json'))) return readJsonObject(join(dir, 'report.json')) as unknown as CompressReport;
  const backend = await initBackend(runFile.backendRequested);
  const needed = (runFile.backend as { name: string }).name;
  if (backend.name !== needed) throw new BackendMismatchError(`${dir} was started on backend ${needed}; this machine resolves ${backend.name} (pass --backend ${needed})`, needed, backend.name);
  const lease = acquireLease(dir, 'prunus resume');
  try {
    return await runStages(resolve(dir), runFile, backend, session);
  } finally {
    lease.release();
  }
}

/** What every stage reads: data, the fitted architecture, its channel groups, the baseline and the method. */
export interface StageContext {
  runDir: string;
  runFile: CompressRunFile;
  cfg: CompressConfig;
  backend: BackendInfo;
  data: ChannelData;
  arch: Architecture;
  groups: ChannelGroup[];
  baseline: Baseline;
  method: ChannelMethod;
  log: (line: string) => void;
  emit: (e: CompressEvent) => void;
  phasesMs: Record<string, number>;
}

/** stages.json: time per stage over every session, and the events.jsonl lines of the finished stages. */
interface StagesFile {
  phasesMs: Record<string, number>;
  eventsCount: number;
}

/** A line of the run's events.jsonl (the OLMP stage's own events are in olmp/events.jsonl). */
export type CompressEvent =
  | { type: 'stage'; stage: string; status: 'start' | 'done'; elapsedMs?: number }
  | { type: 'search'; generation: number; evaluations: number; bestFitness: number; bestFeasible: boolean; compression: number; macs: number; accuracy: number | null };

async function runStages(runDir: string, runFile: CompressRunFile, backend: BackendInfo, session: SessionHooks): Promise<CompressReport> {
  const cfg = runFile.options;
  const log = session.log ?? (() => {});
  const hooks = session.hooks ?? {};
  const given = resolveModel(cfg.model, cfg.modelSha256 ?? undefined);
  const data = loadChannelData(cfg.dataset, cfg.data, { dataDir: cfg.dataDir, splitSeed: cfg.splitSeed, inputScale: cfg.inputScale, inputOffset: cfg.inputOffset });
  const arch = fitToData(given.arch, { shape: data.train.shape, numClasses: data.numClasses, name: data.dataset }, cfg.model);
  const groups = channelGroups(arch);
  // events.jsonl holds the events of the stages finished (stages.json counts them) and of the one under way; a
  // resumed run drops the lines of a stage it reruns.
  const stagesPath = join(runDir, 'stages.json');
  const eventsPath = join(runDir, 'events.jsonl');
  const saved = existsSync(stagesPath) ? (readJsonObject(stagesPath) as unknown as StagesFile) : { phasesMs: {}, eventsCount: 0 };
  const phasesMs = saved.phasesMs;
  let eventsCount = saved.eventsCount;
  truncateJsonl(eventsPath, eventsCount);
  const emit = (e: CompressEvent) => {
    appendFile(eventsPath, JSON.stringify(e) + '\n');
    eventsCount++;
    session.onEvent?.(e);
  };
  const timed = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    session.onStage?.(name);
    emit({ type: 'stage', stage: name, status: 'start' });
    const t = Date.now();
    const r = await f();
    phasesMs[name] = (phasesMs[name] ?? 0) + Date.now() - t;
    emit({ type: 'stage', stage: name, status: 'done', elapsedMs: Date.now() - t });
    writeJsonAtomic(stagesPath, { phasesMs, eventsCount } satisfies StagesFile);
    return r;
  };
  const chCfg = channelsView(cfg);
  const baseline = await timed('baseline', () => getBaseline(runFile.resultsRoot, chCfg, arch, given.params, data, log));
  log(`baseline: validation ${(baseline.validationAccuracy * 100).toFixed(2)}%, test ${(baseline.testAccuracy * 100).toFixed(2)}%`);
  const method = createMethod(cfg.method, { arch, groups, baseline: baseline.params, data, seed: cfg.seed, cfg: chCfg, log });
  const ctx: StageContext = { runDir, runFile, cfg, backend, data, arch, groups, baseline, method, log, emit, phasesMs };

  // ---- joint search -----------------------------------------------------------------------------------------
  const searchPath = join(runDir, 'search.json');
  let searched: SearchFile | null = null;
  if (cfg.mode !== 'olmp') {
    if (existsSync(searchPath)) searched = readJsonObject(searchPath) as unknown as SearchFile;
    else {
      searched = await timed('search', () => jointStage(ctx));
      writeJsonAtomic(searchPath, searched);
    }
  }
  // ---- channels removed, finetuned, sliced away --------------------------------------------------------------
  const startDir = join(runDir, 'start');
  if (!existsSync(join(startDir, 'model.json'))) await timed('finetune', () => startStage(ctx, searched, startDir));
  // ---- OLMP on the sliced network ------------------------------------------------------------------------------
  let olmp: OlmpReport | null = null;
  if (cfg.mode !== 'channels') olmp = await timed('olmp', () => olmpStage(ctx, searched, startDir, hooks));
  session.onStage?.('finish');
  emit({ type: 'stage', stage: 'finish', status: 'start' });
  return finishRun(ctx, searched, startDir, olmp);
}

/** search.json. */
export interface SearchFile {
  settings: JointSettings;
  baselineValidationAccuracy: number;
  /** The method's channel scores per group, which ranked the channels of every point (and the winner's). */
  scores: number[][];
  outcome: JointOutcome;
  /** Indices into outcome.points of the Pareto front (non-zeros × MACs × validation accuracy). */
  pareto: number[];
}

async function jointStage(ctx: StageContext): Promise<SearchFile> {
  const { cfg, arch, groups, method, log, data } = ctx;
  const scores = method.score();
  const reference: ModelParams = method.reference();
  log(`${cfg.method}: scored ${groups.length} channel groups`);
  const context = { arch, params: reference, masks: onesMasks(arch), stats: reference.layers.map((l) => magnitudeStats(l)), data: data.validation };
  const recalibrate = arch.ops.some((o) => o.type === 'batchnorm') && cfg.bnRecalibration > 0;
  const evaluator: Evaluator | null = recalibrate
    ? null
    : cfg.workers > 0
      ? await createPoolEvaluator({ workers: cfg.workers, backend: ctx.backend.name === 'cpu' ? 'cpu' : 'wasm', batchSize: cfg.evalBatch })
      : await createInProcessEvaluator({ batchSize: cfg.evalBatch });
  try {
    if (evaluator) await evaluator.setContext(context);
    else log(`search: BatchNorm statistics of every candidate re-estimated on ${cfg.bnRecalibration}×64 scoring images`);
    const evaluate = evaluator ?? recalibratedEvaluator(context, { batches: cfg.bnRecalibration, batchSize: 64, set: data.score, seed: cfg.seed }, cfg.evalBatch);
    const settings: JointSettings = {
      ...cfg.search,
      objective: cfg.objective,
      flopsBudget: cfg.flopsBudget,
      targetCompression: cfg.targetCompression,
      maxAccDrop: cfg.search.maxAccDrop ?? 2 * cfg.maxAccDrop,
      baselineAccuracy: ctx.baseline.validationAccuracy,
      searchCrates: cfg.mode === 'joint',
      seed: cfg.seed,
    };
    const totalParams = sizeReport(arch, onesMasks(arch)).params;
    const outcome = await searchJoint(arch, groups, prunableOps(arch).length, scores, evaluate, data.validation.count, totalParams, settings, (line, best) => {
      log(line);
      ctx.emit({ type: 'search', ...best });
    });
    const b = outcome.best;
    log(`search: keep ${b.keep.join(',')}, crates ${b.crates.map((c) => c.toFixed(3)).join(',')} (${b.result.feasible ? 'feasible' : 'infeasible'}), ${b.compression.toFixed(1)}x before finetuning`);
    return { settings, baselineValidationAccuracy: ctx.baseline.validationAccuracy, scores: scores.map((g) => Array.from(g)), outcome, pareto: paretoFront(outcome.points) };
  } finally {
    await evaluator?.close();
  }
}

/** start/: the winner's channels removed by the method and sliced away (mode olmp: the baseline as it is). */
async function startStage(ctx: StageContext, searched: SearchFile | null, startDir: string): Promise<void> {
  const { cfg, arch, groups, method, data } = ctx;
  let outArch = arch;
  let outParams = ctx.baseline.params;
  let meta: Record<string, unknown> = { source: 'baseline' };
  if (searched) {
    const keep = searched.outcome.best.keep;
    // The search's own scores (JSON keeps float32 values exactly); a score JSON could not hold (±Infinity, NaN, read
    // back as null) means scoring again, which gives the same scores (the scorers are seeded).
    const saved = searched.scores;
    const scores = saved.every((g) => g.every((v) => typeof v === 'number')) ? saved.map((g) => Float32Array.from(g)) : method.score();
    const outcome = method.prune(keep, scores);
    const slim = slimModel(arch, groups, outcome.finetuned, outcome.masks);
    outArch = slim.arch;
    outParams = slim.params;
    meta = { source: `${cfg.method} finetune`, keep, finetuneSteps: outcome.finetuneSteps, details: outcome.details, keptIndices: outcome.masks.map(keptIndices) };
  }
  const validation = evaluateAccuracy(outArch, outParams, null, data.validation, cfg.evalBatch).accuracy;
  const test = evaluateAccuracy(outArch, outParams, null, data.test, cfg.evalBatch).accuracy;
  ctx.log(`start network: ${outArch.name}, validation ${(validation * 100).toFixed(2)}%, test ${(test * 100).toFixed(2)}%`);
  writeDirAtomic(startDir, (tmp) => writeModelFiles(tmp, { arch: outArch, params: outParams, masks: onesMasks(outArch) }, { meta: { ...meta, validationAccuracy: validation, testAccuracy: test } }));
}

/** OLMP's pruning and adjusting on start/, in olmp/ (resumed from its checkpoints when it exists). */
async function olmpStage(ctx: StageContext, searched: SearchFile | null, startDir: string, hooks: PipelineHooks): Promise<OlmpReport> {
  const { cfg, runDir, data, arch } = ctx;
  const dir = join(runDir, 'olmp');
  if (existsSync(join(dir, 'config.json'))) return olmpResume(dir, hooks);
  const start = loadModel(startDir);
  const startArch = start.model.arch;
  const L = prunableOps(startArch).length;
  const startVal = Number(start.file.meta?.validationAccuracy ?? NaN);
  // The stage's floor is the run's: baseline validation accuracy − maxAccDrop (OLMP's own is its reference's − drop).
  const drop = Math.max(0, cfg.maxAccDrop - (ctx.baseline.validationAccuracy - startVal));
  const origParams = sizeReport(arch, onesMasks(arch)).params;
  const startParams = sizeReport(startArch, onesMasks(startArch)).params;
  const winner = searched && cfg.mode === 'joint' ? searched.outcome.best.crates : null;
  const o = cfg.olmp;
  const clampCrate = (c: number) => Math.min(o.bounds[1], Math.max(o.bounds[0], c > 0 ? c : o.initialCrate));
  // Time spent so far, over every session of the run (the stages' recorded times).
  const elapsedS = Object.values(ctx.phasesMs).reduce((s, v) => s + v, 0) / 1000;
  const timeLeft = cfg.timeBudget !== null ? Math.max(1, cfg.timeBudget - elapsedS) : null;
  ctx.log(`olmp: ${o.iterations} iterations (pruning until ${o.pruneUntil}), crates from ${winner ? 'the joint search' : `${o.initialCrate}`}, accuracy drop allowed ${drop.toFixed(4)}`);
  return olmpSearch(
    {
      model: join(startDir, 'model.json'),
      out: dir,
      resultsRoot: ctx.runFile.resultsRoot,
      backend: ctx.runFile.backendRequested,
      dataset: cfg.dataset,
      dataDir: cfg.dataDir ?? null,
      splitSeed: cfg.splitSeed,
      inputScale: cfg.inputScale,
      inputOffset: cfg.inputOffset,
      seed: cfg.seed,
      limit: { train: data.train.count, validation: data.validation.count, test: data.test.count },
      quick: cfg.quick,
      iterations: o.iterations,
      pruneUntil: o.pruneUntil,
      searchPeriod: o.searchPeriod,
      searchBudget: o.searchBudget,
      logPeriod: o.logPeriod,
      checkpointPeriod: o.checkpointPeriod,
      gamma: startArch.maskGamma.map((g) => g * o.gammaScale),
      sigmaDivideAt: o.sigmaDivideAt,
      bounds: o.bounds,
      initialCrate: o.initialCrate,
      initialCrates: winner ? winner.slice(0, L).map(clampCrate) : null,
      maxAccDrop: drop,
      targetCompression: cfg.targetCompression !== null ? Math.max(1, (cfg.targetCompression * startParams) / origParams) : null,
      timeBudget: timeLeft,
      workers: cfg.workers,
      trainShards: cfg.trainShards ?? 1,
      trainThreads: cfg.trainThreads ?? 0,
      keepCheckpoints: false,
    },
    hooks,
  );
}
