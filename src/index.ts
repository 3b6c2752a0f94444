/**
 * prunus as a library: everything the CLI does, callable from TypeScript.
 *
 *   import { search, resume, sweep, initBackend } from 'prunus';
 *   const report = await search({ model: 'lenet-300-100', quick: true }, { onEvent: (e) => console.log(e) });
 */
export { search, resume, createRun, resolveConfig, type SearchOptions } from './pipeline/run.js';
export { runOlmp, type OlmpReport, type OlmpEvent, type LogEvent, type SearchEvent, type PhaseEvent, type PipelineHooks } from './pipeline/olmp.js';
export { defaultConfig, quickPreset, type OlmpConfig, PUBLISHED_SEEDS } from './pipeline/config.js';
export { PUBLISHED } from './pipeline/published.js';
export { Trainer, evaluateAccuracy, type TrainerState, type SolverOptions } from './train/index.js';
export { loadDataset, type Dataset, type ImageSet } from '../foundation/data/datasets.js';
export { Rng, restoreStream, type RandomStream, type StreamState } from '../foundation/rng.js';
export { NumpyRandomState } from '../foundation/mt19937.js';
export { searchSchedule } from './pipeline/schedule.js';
export { UsageError, EnvironmentError, StoppedError } from '../foundation/errors.js';
export { initBackend, describeBackend, type BackendInfo, type BackendName } from '../backends/backend.js';
export { createInProcessEvaluator, createPoolEvaluator, type Evaluator, type Evaluation, type Candidate } from '../evaluators/index.js';
export { createOptimizer, restoreOptimizer, runOptimizer, compareResults, type Optimizer, type OptimizerName, type EvalResult } from '../search/index.js';
export { getArchitecture, registerArchitecture } from '../models/architectures.js';
export { layerStats } from '../models/walk.js';
export type { Architecture, Op } from '../models/graph.js';
export { initParams, onesMasks, sizeReport, type PrunableModel, type ModelParams, type LayerMasks } from '../models/params.js';
export { magnitudeStats, masksForCrates } from '../models/masks.js';
export { saveModel, loadModel, type LoadedModel, type ModelFile } from '../models/io.js';
export { resolveModel, fitToData, type ResolvedModel, type ModelSource } from '../models/source.js';
export { walkGraph, type Walk, type NodeInfo } from '../models/walk.js';
export { runGraph, forward, toTensors, disposeModelTensors, type RunOptions, type ModelTensors } from '../models/forward.js';
export { OPS, opSpec, type OpSpec } from '../models/ops/index.js';
export { channelGroups, configCost, type ChannelGroup } from '../models/channels.js';
export { slimModel } from '../models/slim.js';
export { readLayersModel } from '../models/tfjs/read.js';
export { layersModelFiles, writeLayersModelFiles } from '../models/tfjs/write.js';
export { toLayersModel } from '../models/tfjs/layers-model.js';
export { encodeSparseModel, writeSparseModelFiles, loadSparseModel } from '../models/tfjs/sparse.js';
export { sweep, type SweepOptions, type SweepResult, type SweepEvent } from './sweep/index.js';
export { enqueueSweep, runWorker, sweepStatus, collectSweep, type EnqueueOptions, type EnqueueResult, type WorkerOptions, type WorkerEvent, type WorkerSummary, type SweepStatus, type QueueRunStatus, type CollectResult } from './queue/index.js';
export { report, type ReportOptions, type ReportResult } from './report/index.js';
export { createProgress } from './progress.js';
export { compress, resumeCompress, resolveCompressConfig, type CompressOptions } from './compress/run.js';
export { runCompressComparison, type CompressComparison } from './compress/compare.js';
export type { CompressReport } from './compress/finish.js';
export type { CompressConfig, CompressMode, CompressObjective } from './compress/config.js';
