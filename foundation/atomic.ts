import { mkdirSync, renameSync, writeFileSync, appendFileSync, openSync, fsyncSync, closeSync, rmSync, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { EnvironmentError, ENVIRONMENT_CODES, isFsError } from './errors.js';

let counter = 0;

/**
 * Every file a run writes goes through writeFile / appendFile: a failure of the machine (full disk, I/O error)
 * becomes one EnvironmentError naming the file. For tests, setWriteFault(n) makes the n-th write from now fail as
 * a full disk would, before writing anything, so that every write of a run can be shown to leave it resumable.
 */
let writes = 0;
// Tests of the CLI set PRUNUS_TEST_WRITE_FAULT=n in a child's environment; nothing else reads it.
let faultAt: number | null = process.env['PRUNUS_TEST_WRITE_FAULT'] ? Number(process.env['PRUNUS_TEST_WRITE_FAULT']) : null;

export function setWriteFault(n: number | null): void {
  faultAt = n;
  writes = 0;
}

/** Writes counted since the last setWriteFault (tests size their fault sweeps with it). */
export function writeCount(): number {
  return writes;
}

function gate(path: string, write: () => void): void {
  writes++;
  try {
    if (faultAt !== null && writes === faultAt) throw Object.assign(new Error(`ENOSPC: no space left on device (injected), write '${path}'`), { code: 'ENOSPC', syscall: 'write', path });
    write();
  } catch (e) {
    if (isFsError(e) && ENVIRONMENT_CODES.has(e.code!)) throw new EnvironmentError(`cannot write ${path}: ${e.code === 'ENOSPC' ? 'no space left on device' : e.message}`);
    throw e;
  }
}

export function writeFile(path: string, data: string | Uint8Array): void {
  gate(path, () => writeFileSync(path, data));
}

export function appendFile(path: string, data: string): void {
  gate(path, () => appendFileSync(path, data));
}

/** Writes a file atomically: a temporary file in the same folder, fsync, then rename over the target. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  try {
    writeFile(tmp, data);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    if (existsSync(tmp)) rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Builds a directory atomically: `fill` writes into a temporary sibling folder, which is renamed onto `dir`
 * only when fill succeeds. A failure leaves nothing behind. An existing `dir` is replaced: it is first renamed aside
 * (`.<name>.<pid>.<n>.tmp.old`), the new folder renamed in, the old one removed. A kill between those two renames
 * leaves `dir` missing and the complete old folder aside; `recoverDir` (called here first, and by readers such as
 * models/io.ts `loadModel`) puts it back.
 */
export function writeDirAtomic(dir: string, fill: (tmpDir: string) => void): void {
  mkdirSync(dirname(dir), { recursive: true });
  recoverDir(dir);
  const tmp = join(dirname(dir), `.${basename(dir)}.${process.pid}.${counter++}.tmp`);
  mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
    if (existsSync(dir)) {
      const old = `${tmp}.old`;
      renameSync(dir, old);
      renameSync(tmp, dir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, dir);
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Repairs what a killed `writeDirAtomic` can leave beside `dir`:
 * - `dir` missing and a complete old version aside (killed between the two renames): the newest such folder is
 *   renamed back onto `dir`, so readers see the last completed write instead of nothing;
 * - temporary and aside folders of processes that no longer run: removed. Those of live processes (a concurrent
 *   writer) are left alone.
 * Returns true when `dir` was restored.
 */
export function recoverDir(dir: string): boolean {
  const parent = dirname(dir);
  if (!existsSync(parent)) return false;
  const prefix = `.${basename(dir)}.`;
  const leftovers: { path: string; pid: number; old: boolean }[] = [];
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.(\d+)\.tmp(\.old)?$/.exec(name.slice(prefix.length));
    if (m) leftovers.push({ path: join(parent, name), pid: Number(m[1]), old: m[3] !== undefined });
  }
  let restored = false;
  if (!existsSync(dir)) {
    const asides = leftovers.filter((l) => l.old && !processAlive(l.pid));
    asides.sort((a, b) => statSync(b.path).mtimeMs - statSync(a.path).mtimeMs);
    const newest = asides[0];
    if (newest) {
      renameSync(newest.path, dir);
      restored = true;
    }
  }
  for (const l of leftovers) {
    if (!processAlive(l.pid) && existsSync(l.path)) rmSync(l.path, { recursive: true, force: true });
  }
  return restored;
}
