import { mkdirSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, rmSync, existsSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

let counter = 0;

/** Writes a file atomically: a temporary file in the same folder, fsync, then rename over the target. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  try {
    writeFileSync(tmp, data);
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
 * only when fill succeeds. A failure leaves nothing behind. An existing `dir` is replaced.
 */
export function writeDirAtomic(dir: string, fill: (tmpDir: string) => void): void {
  mkdirSync(dirname(dir), { recursive: true });
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
