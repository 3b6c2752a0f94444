/**
 * A run folder as a set of files (relative path → bytes), so that a worker can store a run in Redis and another
 * worker can lay it out again: the checkpointed state of a run in progress, or the whole folder of a finished one.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { writeDirAtomic, writeFile } from '../../foundation/atomic.js';
import { checkpointFiles } from '../pipeline/checkpoint.js';
import type { RunFiles } from './store.js';

/** The state a run resumes from: config.json, events.jsonl and the pointer's checkpoint; null before the first checkpoint. */
export function stateFiles(runDir: string): { from: string; files: RunFiles } | null {
  const ck = checkpointFiles(runDir);
  if (!ck) return null;
  const files: RunFiles = new Map();
  for (const name of ['config.json', 'events.jsonl']) {
    const p = join(runDir, name);
    if (existsSync(p)) files.set(name, readFileSync(p));
  }
  if (!files.has('config.json')) return null;
  for (const [k, v] of ck.files) files.set(k, v);
  return { from: ck.dir, files };
}

/** Every file of a finished run folder (checkpoints excluded: a finished run does not need them). */
export function finishedFiles(runDir: string): RunFiles {
  const files: RunFiles = new Map();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      const rel = relative(runDir, p).split(sep).join('/');
      if (rel === 'checkpoints' || rel === 'checkpoint.json' || e.name.startsWith('.')) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.set(rel, readFileSync(p));
    }
  };
  walk(runDir);
  return files;
}

/** Refuses paths that would leave the folder (the files come from Redis, which anyone with the URL can write). */
function safe(rel: string): boolean {
  return rel.length > 0 && !rel.startsWith('/') && !rel.split('/').some((p) => p === '..' || p === '' || p === '.');
}

/** Writes the files into `dir` (created; existing files of the same names replaced). */
export function writeFiles(dir: string, files: RunFiles): void {
  for (const [rel, bytes] of files) {
    if (!safe(rel)) throw new Error(`refusing to write '${rel}' outside the run folder`);
    const p = join(dir, ...rel.split('/'));
    mkdirSync(dirname(p), { recursive: true });
    writeFile(p, bytes);
  }
}

/** Writes the files as a new folder `dir`, atomically (a folder of that name is replaced as a whole). */
export function writeFolder(dir: string, files: RunFiles): void {
  writeDirAtomic(dir, (tmp) => writeFiles(tmp, files));
}
