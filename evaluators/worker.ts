/**
 * Piscina worker of the pool evaluator. Initialises its backend once (wasm by default; the native tfjs-node backend
 * is never loaded here), receives each context once over a BroadcastChannel (typed arrays in SharedArrayBuffers),
 * and evaluates one candidate per task with the same engine as the in-process evaluator.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { workerData as piscinaWorkerData } from 'piscina';
import { initBackend, type BackendInfo } from '../backends/backend.js';
import { buildMasks } from './builders.js';
import { evaluateMasks, type RawEvaluation } from './engine.js';
import type { ChannelMessage, PoolTask, PoolWorkerData } from './protocol.js';
import type { EvaluationContext } from './types.js';

const CONTEXT_WAIT_MS = 60_000;

const config = piscinaWorkerData as PoolWorkerData;
const backendReady: Promise<BackendInfo> = initBackend(config.backend);
// Keep an init failure from surfacing as an unhandled rejection before the first task awaits it.
backendReady.catch(() => undefined);

let current: { version: number; ctx: EvaluationContext } | null = null;
let waiters: (() => void)[] = [];
const channel = new BroadcastChannel(config.channel);
channel.unref();
channel.onmessage = (ev: unknown) => {
  const msg = (ev as { data: ChannelMessage }).data;
  if (msg.type !== 'context') return;
  if (current && current.version >= msg.version) return;
  current = { version: msg.version, ctx: msg.ctx };
  const w = waiters;
  waiters = [];
  for (const f of w) f();
};

async function contextFor(version: number): Promise<EvaluationContext> {
  const deadline = Date.now() + CONTEXT_WAIT_MS;
  while (!current || current.version < version) {
    channel.postMessage({ type: 'need', version } satisfies ChannelMessage);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`worker: context version ${version} never arrived`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, Math.min(left, 1000));
      waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  if (current.version !== version) throw new Error(`worker: task for context version ${version}, but version ${current.version} is current`);
  return current.ctx;
}

const imported = new Set<string>();

export default async function task(t: PoolTask): Promise<RawEvaluation | BackendInfo> {
  const backend = await backendReady;
  if (t.type === 'info') return backend;
  const ctx = await contextFor(t.version);
  for (const m of t.modules ?? []) {
    if (!imported.has(m)) {
      await import(m);
      imported.add(m);
    }
  }
  const masks = t.masks ?? buildMasks(ctx, t.candidate!);
  return evaluateMasks(ctx, masks, { path: config.path, batchSize: config.batchSize, ...(t.minCorrect !== undefined ? { minCorrect: t.minCorrect } : {}) });
}
