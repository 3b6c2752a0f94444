/** Masked-model evaluation: stateless candidate → masks → accuracy and size, in-process or in a pool. */
export type {
  Candidate,
  CandidateKinds,
  CratesCandidate,
  EvaluationContext,
  Evaluation,
  EvaluateOptions,
  Evaluator,
  CommonEvaluatorOptions,
  MaskBuilder,
  PathMode,
  PreparedContext,
} from './types.js';
export { registerMaskBuilder, getMaskBuilder, registeredKinds, buildMasks, cratesBuilder, cratesKey, hashMasks, compiledModulePath, compiledModuleUrl } from './builders.js';
export { createInProcessEvaluator, type InProcessEvaluatorOptions } from './in-process.js';
export { createPoolEvaluator, workerFileUrl, type PoolEvaluatorOptions, type PoolEvaluatorHandle } from './pool.js';
export { evaluateMasks, type RawEvaluation, type EngineOptions } from './engine.js';
export { choosePaths, pathsFor, SPARSE_CROSSOVER, SMALL_LAYER_MACS, crossoverDensity, type LayerPath } from './paths.js';
export { DEFAULT_BATCH_SIZE } from './core.js';
