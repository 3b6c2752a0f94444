/** Library API of queued sweeps (BullMQ on Redis): enqueue a sweep, run workers, follow it, bring it home. */
export { enqueueSweep, type EnqueueOptions, type EnqueueResult, type QueuedSweep } from './enqueue.js';
export { runWorker, type WorkerOptions, type WorkerEvent, type WorkerSummary, type JobResult } from './worker.js';
export { sweepStatus, collectSweep, type SweepStatus, type QueueRunStatus, type CollectResult } from './status.js';
export { parseQueueUrl, probeRedis, type QueueAddress } from './connection.js';
export { QUEUE_NAME, validateJob, type JobData } from './job.js';
