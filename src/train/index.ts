/** Training: Caffe SGD (solver.ts), the stateful DNS-masked Trainer (trainer.ts) and evaluation (evaluate.ts). */
export { Trainer, type TrainerOptions, type TrainerState, type MomentumState, type Batch } from './trainer.js';
export { evaluateAccuracy, evaluateLogits, crossEntropySum, type EvalResult } from './evaluate.js';
export { resolveTrainThreads } from './shard-pool.js';
export { DEFAULT_SOLVER, resolveSolver, learningRate, type SolverOptions } from './solver.js';
