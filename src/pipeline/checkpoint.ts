/**
 * Crash-safe checkpoints of a run directory. Each checkpoint is a new folder `checkpoints/ck-<seq>` written aside
 * and renamed into place; then `checkpoint.json` (the pointer) is replaced atomically; then older folders are
 * removed. A kill at any moment leaves either the old or the new pointer, each naming a complete folder (and maybe
 * an unnamed newer folder, which the next save replaces).
 */
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeState, decodeState } from './state-file.js';
import { writeJsonAtomic } from '../../foundation/atomic.js';

interface Pointer {
  dir: string;
  seq: number;
}

export function saveCheckpoint(runDir: string, value: unknown): void {
  const root = join(runDir, 'checkpoints');
  mkdirSync(root, { recursive: true });
  const prev = readPointer(runDir);
  const seq = (prev?.seq ?? 0) + 1;
  const name = `ck-${String(seq).padStart(6, '0')}`;
  const tmp = join(root, `.${name}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const { json, bin } = encodeState(value);
  writeFileSync(join(tmp, 'state.bin'), bin);
  writeFileSync(join(tmp, 'state.json'), json);
  // A run killed between this rename and the pointer switch leaves a complete ck-<seq> that no pointer names; the
  // resumed run reaches the same seq again, and renaming onto a non-empty folder fails, so clear it first.
  rmSync(join(root, name), { recursive: true, force: true });
  renameSync(tmp, join(root, name));
  writeJsonAtomic(join(runDir, 'checkpoint.json'), { dir: name, seq } satisfies Pointer);
  for (const entry of readdirSync(root)) {
    if (entry !== name) rmSync(join(root, entry), { recursive: true, force: true });
  }
}

function readPointer(runDir: string): Pointer | null {
  const p = join(runDir, 'checkpoint.json');
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, 'utf8')) as Pointer;
}

export function loadCheckpoint<T>(runDir: string): T | null {
  const ptr = readPointer(runDir);
  if (!ptr) return null;
  const dir = join(runDir, 'checkpoints', ptr.dir);
  return decodeState<T>(readFileSync(join(dir, 'state.json'), 'utf8'), new Uint8Array(readFileSync(join(dir, 'state.bin'))));
}

/** Keeps the first `count` complete lines of a JSONL file (drops events written after the checkpoint). */
/** Removes a finished run's checkpoints (the folder and the pointer; the pointer first, so no pointer names a missing folder). */
export function removeCheckpoints(runDir: string): void {
  rmSync(join(runDir, 'checkpoint.json'), { force: true });
  rmSync(join(runDir, 'checkpoints'), { recursive: true, force: true });
}

export function truncateJsonl(path: string, count: number): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0);
  const kept = lines.slice(0, count);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, kept.map((l) => l + '\n').join(''));
  renameSync(tmp, path);
}
