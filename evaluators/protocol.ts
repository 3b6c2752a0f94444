/** Messages between the pool (pool.ts) and its workers (worker.ts). */
import type { LayerMasks } from '../models/params.js';
import type { EvaluationContext, PathMode } from './types.js';

/** Static per-pool settings, given to every worker as Piscina workerData. */
export interface PoolWorkerData {
  /** BroadcastChannel carrying context versions. */
  channel: string;
  backend: 'wasm' | 'cpu' | 'webgpu';
  path: PathMode;
  batchSize: number;
}

/** On the channel. The context's typed arrays live in SharedArrayBuffers: posting shares them, nothing is copied. */
export type ChannelMessage = { type: 'context'; version: number; ctx: EvaluationContext } | { type: 'need'; version: number };

export type PoolTask =
  | { type: 'info' }
  | {
      type: 'evaluate';
      version: number;
      /** The candidate, when the worker builds the masks itself. */
      candidate?: { kind: string };
      /** Masks built by the caller (kinds whose builder is not available in workers). */
      masks?: LayerMasks[];
      /** Compiled modules to import first (they register mask builders). */
      modules?: string[];
      minCorrect?: number;
    };
