/**
 * Test-only candidate kind 'test-crash': builds the masks of a crates candidate, but first fails in the worker
 * `failures` times (counted across workers and retries in a shared Int32Array), by process.exit or a thrown error. Importing this module registers the builder; pool workers import it through
 * `workerModule`. Not part of the Candidate union: tests cast.
 */
import { isMainThread } from 'node:worker_threads';
import { masksForCrates } from '../models/masks.js';
import { registerMaskBuilder, cratesKey, cratesBuilder } from './builders.js';
import type { MaskBuilder } from './types.js';

export interface CrashCandidate {
  kind: 'test-crash';
  crates: (number | null)[];
  /** Int32Array over a SharedArrayBuffer; element 0 counts attempts. */
  counter: Int32Array;
  failures: number;
  mode: 'exit' | 'throw';
}

export function crashCandidate(crates: (number | null)[], failures: number, mode: CrashCandidate['mode']): CrashCandidate {
  return { kind: 'test-crash', crates, counter: new Int32Array(new SharedArrayBuffer(4)), failures, mode };
}

export const crashBuilder: MaskBuilder<CrashCandidate> = {
  kind: 'test-crash',
  workerModule: import.meta.url,
  validate: (ctx, c) => cratesBuilder.validate!(ctx, { kind: 'crates', crates: c.crates }),
  key: (prep, c) => `test-crash:${cratesKey(prep, c.crates)}`,
  build(ctx, c) {
    if (isMainThread) throw new Error('test-crash candidates only run in pool workers');
    if (Atomics.add(c.counter, 0, 1) < c.failures) {
      if (c.mode === 'exit') process.exit(3);
      throw new Error('test-crash: thrown on purpose');
    }
    return masksForCrates(ctx.params.layers, ctx.masks, ctx.stats, c.crates);
  },
};
registerMaskBuilder(crashBuilder);
