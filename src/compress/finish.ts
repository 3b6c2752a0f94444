/**
 * The end of a `prunus compress` run: the final model (model/, a prunus model folder), its exports (export/tfjs: a
 * LayersModel for plain tf.loadLayersModel; export/sparse: the compact sparse format), what they measure, and
 * report.json, written last. Compression counts against the unpruned network's prunable parameters, MACs against
 * its dense MACs.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { writeDirAtomic, writeJsonAtomic } from '../../foundation/atomic.js';
import { configCost, denseCost } from '../../models/channels.js';
import { prunableOps, type Architecture } from '../../models/graph.js';
import { maskedParams, onesMasks, sizeReport, type LayerMasks, type ModelParams } from '../../models/params.js';
import { magnitudeStats } from '../../models/masks.js';
import { loadModel, saveModel } from '../../models/io.js';
import { layersModelFiles, writeLayersModelFiles } from '../../models/tfjs/write.js';
import { encodeSparseModel, writeSparseModelFiles } from '../../models/tfjs/sparse.js';
import { toLayersModel } from '../../models/tfjs/layers-model.js';
import { backendRecord } from '../../backends/backend.js';
import { createInProcessEvaluator } from '../../evaluators/index.js';
import type { ImageSet } from '../../foundation/data/datasets.js';
import { evaluateAccuracy } from '../train/evaluate.js';
import { prunusVersion, runVersions } from '../run-dir.js';
import type { OlmpReport } from '../pipeline/olmp.js';
import type { CompressMode, CompressObjective } from './config.js';
import type { SearchFile, StageContext } from './run.js';

export interface ExportRecord {
  dir: string;
  bytes: number;
  gzipBytes: number;
}

export interface CompressReport {
  status: 'finished';
  command: 'compress';
  mode: CompressMode;
  model: string;
  dataset: string;
  method: string;
  objective: CompressObjective;
  seed: number;
  backend: Record<string, unknown>;
  budgets: { maxAccDrop: number; flopsBudget: number | null; targetCompression: number | null; timeBudget: number | null };
  /** Prunable parameters of the unpruned network / non-zeros of the final one. */
  compression: number;
  nonZero: number;
  params: number;
  macs: {
    /** The unpruned network's. */
    dense: number;
    /** Dense MACs of the final network (removed channels gone). */
    slimmed: number;
    /** MACs the sparse kernels execute (non-zero weights × output positions). */
    sparse: number;
    withinBudget: boolean;
  };
  reachedTarget: boolean | null;
  accuracy: {
    baseline: { validation: number; test: number };
    /** The network OLMP started from (after the channel finetune). */
    start: { validation: number; test: number };
    final: { validation: number; test: number };
    /** Final validation accuracy ≥ baseline − maxAccDrop. */
    withinDrop: boolean;
  };
  layers: { name: string; params: number; slimmedParams: number; nonZero: number; density: number }[];
  groups: { name: string; channels: number; kept: number; keepRatio: number }[];
  search: {
    evaluations: number;
    earlyExits: number;
    rejectedOverBudget: number;
    points: number;
    pareto: number;
    best: { keep: number[]; crates: number[]; compression: number; macs: number; validationAccuracy: number | null; feasible: boolean };
    wallMs: number;
  } | null;
  olmp: { dir: string; compression: number; crates: number[]; searches: number; evaluations: number; iterations: number; stoppedBy: string } | null;
  exported: { tfjs: ExportRecord; sparse: ExportRecord; denseFloat32Bytes: number };
  /** Images per second over the test images, best of 3 passes, one thread of this process. */
  inference: { images: number; tfjsImagesPerSec: number; sparseImagesPerSec: number; note: string };
  wallTimeMs: number;
  phasesMs: Record<string, number>;
  versions: Record<string, string>;
  runDir: string;
}

function folderBytes(dir: string): ExportRecord {
  let bytes = 0;
  let gzipBytes = 0;
  for (const name of readdirSync(dir).sort()) {
    const b = readFileSync(join(dir, name));
    bytes += b.length;
    gzipBytes += gzipSync(b, { level: 9 }).length;
  }
  return { dir, bytes, gzipBytes };
}

/** The fastest of three timed calls, in ms. */
async function bestOf3(f: () => Promise<void> | void): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/** Inference speed of the exported LayersModel (tfjs, dense) and of prunus' sparse evaluator on the same model. */
async function measureInference(arch: Architecture, params: ModelParams, masks: LayerMasks[], tfjsDir: string, set: ImageSet, batch: number): Promise<CompressReport['inference']> {
  const exported = loadModel(tfjsDir).model;
  const lm = await toLayersModel(exported.arch, exported.params);
  const [h, w, c] = set.shape;
  const per = h * w * c;
  const tfjsMs = await bestOf3(() => {
    for (let s = 0; s < set.count; s += batch) {
      const n = Math.min(batch, set.count - s);
      tf.tidy(() => {
        const x = tf.tensor4d(set.images.subarray(s * per, (s + n) * per), [n, h, w, c]);
        const input = exported.arch.flatInput ? x.reshape([n, per]) : x;
        (lm.predict(input) as tf.Tensor).dataSync();
      });
    }
  });
  lm.dispose();
  const ev = await createInProcessEvaluator({ cache: false, batchSize: batch });
  let sparseMs: number;
  try {
    await ev.setContext({ arch, params, masks, stats: params.layers.map((l) => magnitudeStats(l)), data: set });
    sparseMs = await bestOf3(async () => {
      await ev.evaluate([{ kind: 'masks', masks }]);
    });
  } finally {
    await ev.close();
  }
  return {
    images: set.count,
    tfjsImagesPerSec: (set.count / tfjsMs) * 1000,
    sparseImagesPerSec: (set.count / sparseMs) * 1000,
    note: 'test images, best of 3 passes in this process (one thread); tfjs: the exported LayersModel, dense kernels; sparse: prunus evaluator (sparse kernels where the density pays)',
  };
}

export async function finishRun(ctx: StageContext, searched: SearchFile | null, startDir: string, olmp: OlmpReport | null): Promise<CompressReport> {
  const { cfg, runDir, arch, groups, data } = ctx;
  const t0 = Date.now();
  const start = loadModel(startDir);
  const final = olmp ? loadModel(join(olmp.runDir, 'model')).model : start.model;
  const finalArch = final.arch;
  const validation = evaluateAccuracy(finalArch, final.params, final.masks, data.validation, cfg.evalBatch).accuracy;
  const test = evaluateAccuracy(finalArch, final.params, final.masks, data.test, cfg.evalBatch).accuracy;

  const orig = sizeReport(arch, onesMasks(arch));
  const size = sizeReport(finalArch, final.masks);
  const slimSize = sizeReport(finalArch, onesMasks(finalArch));
  const keptIdx = (start.file.meta?.keptIndices as number[][] | undefined) ?? null;
  const kept = keptIdx ? keptIdx.map((k) => k.length) : groups.map((g) => g.channels);
  const dense = denseCost(arch, groups).macs;
  const slimmedMacs = groups.length ? configCost(arch, groups, kept).macs : dense;
  const withinBudget = cfg.flopsBudget === null || slimmedMacs <= cfg.flopsBudget * dense * (1 + 1e-12);

  saveModel(join(runDir, 'model'), { arch: finalArch, params: final.params, masks: final.masks }, { meta: { source: 'prunus compress', mode: cfg.mode, method: cfg.method, seed: cfg.seed, backend: backendRecord(ctx.backend) } });
  const generatedBy = `prunus ${prunusVersion()}`;
  const tfjsDir = join(runDir, 'export', 'tfjs');
  const sparseDir = join(runDir, 'export', 'sparse');
  writeDirAtomic(tfjsDir, (tmp) => writeLayersModelFiles(tmp, layersModelFiles(finalArch, maskedParams(final.params, final.masks), { generatedBy })));
  writeDirAtomic(sparseDir, (tmp) => writeSparseModelFiles(tmp, encodeSparseModel(finalArch, final.params, final.masks, {})));
  const inference = await measureInference(finalArch, final.params, final.masks, tfjsDir, data.test, cfg.evalBatch);

  ctx.phasesMs.finish = Date.now() - t0;
  const startVal = Number(start.file.meta?.validationAccuracy ?? NaN);
  const startTest = Number(start.file.meta?.testAccuracy ?? NaN);
  const best = searched?.outcome.best;
  const ops = prunableOps(finalArch);
  const report: CompressReport = {
    status: 'finished',
    command: 'compress',
    mode: cfg.mode,
    model: cfg.model,
    dataset: cfg.dataset,
    method: cfg.method,
    objective: cfg.objective,
    seed: cfg.seed,
    backend: backendRecord(ctx.backend),
    budgets: { maxAccDrop: cfg.maxAccDrop, flopsBudget: cfg.flopsBudget, targetCompression: cfg.targetCompression, timeBudget: cfg.timeBudget },
    compression: orig.params / size.nonZero,
    nonZero: size.nonZero,
    params: orig.params,
    macs: { dense, slimmed: slimmedMacs, sparse: size.macs, withinBudget },
    reachedTarget: cfg.targetCompression === null ? null : orig.params / size.nonZero >= cfg.targetCompression,
    accuracy: {
      baseline: { validation: ctx.baseline.validationAccuracy, test: ctx.baseline.testAccuracy },
      start: { validation: startVal, test: startTest },
      final: { validation, test },
      withinDrop: validation >= ctx.baseline.validationAccuracy - cfg.maxAccDrop - 1e-12,
    },
    layers: ops.map((op, k) => ({ name: op.name, params: orig.layers[k]!.params, slimmedParams: slimSize.layers[k]!.params, nonZero: size.layers[k]!.nonZero, density: size.layers[k]!.nonZero / orig.layers[k]!.params })),
    groups: groups.map((g, i) => ({ name: g.name, channels: g.channels, kept: kept[i]!, keepRatio: kept[i]! / g.channels })),
    search:
      searched && best
        ? {
            evaluations: searched.outcome.evaluations,
            earlyExits: searched.outcome.earlyExits,
            rejectedOverBudget: searched.outcome.rejectedOverBudget,
            points: searched.outcome.points.length,
            pareto: searched.pareto.length,
            best: { keep: best.keep, crates: best.crates, compression: best.compression, macs: best.macs, validationAccuracy: best.accuracy, feasible: best.result.feasible },
            wallMs: searched.outcome.wallMs,
          }
        : null,
    olmp: olmp ? { dir: olmp.runDir, compression: olmp.compression, crates: olmp.crates, searches: olmp.searches, evaluations: olmp.evaluations, iterations: olmp.iterations, stoppedBy: olmp.stoppedBy } : null,
    exported: { tfjs: folderBytes(tfjsDir), sparse: folderBytes(sparseDir), denseFloat32Bytes: 4 * (orig.params + ctx.baseline.params.batchNorms.reduce((s, b) => s + 4 * b.gamma.length, 0)) },
    inference,
    wallTimeMs: Object.values(ctx.phasesMs).reduce((s, v) => s + v, 0),
    phasesMs: ctx.phasesMs,
    versions: runVersions(),
    runDir,
  };
  writeJsonAtomic(join(runDir, 'report.json'), report);
  return report;
}

