/**
 * Crash-safe checkpoints of a run directory. Each checkpoint is a new folder `checkpoints/ck-<seq>` written aside
 * (state.json, state.bin, and check.json last: their sizes and sha256) and renamed into place; then
 * `checkpoint.json` (the pointer) is replaced atomically; then folders older than the previous one are removed. A
 * kill at any moment leaves either the old or the new pointer, each naming a complete folder (and maybe an unnamed
 * newer folder, which the next save replaces). The last two complete checkpoints are kept, so that a damaged pointer
 * or a damaged newest checkpoint (a disk that lost the last writes, a file cut short) falls back to the one before.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { encodeState, decodeState } from './state-file.js';
import { writeJsonAtomic, writeFile } from '../../foundation/atomic.js';
import { UsageError } from '../../foundation/errors.js';

interface Pointer {
  dir: string;
  seq: number;
}

interface Check {
  jsonBytes: number;
  binBytes: number;
  binSha256: string;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const CK = /^ck-(\d{6,})$/;

export function saveCheckpoint(runDir: string, value: unknown): void {
  const root = join(runDir, 'checkpoints');
  mkdirSync(root, { recursive: true });
  const prev = readPointer(runDir);
  // After the pointer's checkpoint (a complete folder it does not name yet is replaced); with a damaged pointer, after
  // the newest folder that was finished (check.json is written last).
  const seq = (prev ? prev.seq : Math.max(0, ...completeFolders(root).filter((f) => existsSync(join(root, f.dir, 'check.json'))).map((f) => f.seq))) + 1;
  const name = `ck-${String(seq).padStart(6, '0')}`;
  const tmp = join(root, `.${name}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const { json, bin } = encodeState(value);
  writeFile(join(tmp, 'state.bin'), bin);
  writeFile(join(tmp, 'state.json'), json);
  writeFile(join(tmp, 'check.json'), JSON.stringify({ jsonBytes: Buffer.byteLength(json), binBytes: bin.length, binSha256: sha256(bin) } satisfies Check));
  // A run killed between this rename and the pointer switch leaves a complete ck-<seq> that no pointer names; the
  // resumed run reaches the same seq again, and renaming onto a non-empty folder fails, so clear it first.
  rmSync(join(root, name), { recursive: true, force: true });
  renameSync(tmp, join(root, name));
  writeJsonAtomic(join(runDir, 'checkpoint.json'), { dir: name, seq } satisfies Pointer);
  for (const entry of readdirSync(root)) {
    if (entry !== name && entry !== prev?.dir) rmSync(join(root, entry), { recursive: true, force: true });
  }
}

/** The pointer, or null when it is missing or damaged. */
function readPointer(runDir: string): Pointer | null {
  const p = join(runDir, 'checkpoint.json');
  try {
    const ptr = JSON.parse(readFileSync(p, 'utf8')) as Partial<Pointer>;
    return typeof ptr.dir === 'string' && CK.test(ptr.dir) && typeof ptr.seq === 'number' ? (ptr as Pointer) : null;
  } catch {
    return null;
  }
}

/** ck-<seq> folders (not temporaries), newest first. */
function completeFolders(root: string): { dir: string; seq: number }[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .flatMap((d) => {
      const m = CK.exec(d);
      return m ? [{ dir: d, seq: Number(m[1]) }] : [];
    })
    .sort((a, b) => b.seq - a.seq);
}

/** A checkpoint folder's state, or why it cannot be used. */
function readFolder<T>(dir: string): { state: T } | { damage: string } {
  try {
    const json = readFileSync(join(dir, 'state.json'));
    const bin = new Uint8Array(readFileSync(join(dir, 'state.bin')));
    if (existsSync(join(dir, 'check.json'))) {
      const c = JSON.parse(readFileSync(join(dir, 'check.json'), 'utf8')) as Check;
      if (json.length !== c.jsonBytes) return { damage: `state.json has ${json.length} bytes, ${c.jsonBytes} were written` };
      if (bin.length !== c.binBytes) return { damage: `state.bin has ${bin.length} bytes, ${c.binBytes} were written` };
      if (sha256(bin) !== c.binSha256) return { damage: 'state.bin does not match its checksum' };
    }
    return { state: decodeState<T>(json.toString('utf8'), bin) };
  } catch (e) {
    return { damage: (e as Error).message.split('\n')[0]! };
  }
}

export interface LoadedCheckpoint<T> {
  state: T;
  /** The folder it came from (under checkpoints/). */
  dir: string;
  /** One line saying what was damaged and what was used instead, when the pointer's checkpoint was not used. */
  notice: string | null;
}

/**
 * The newest usable checkpoint: the pointer's, or, when the pointer or its folder is damaged, the newest complete
 * folder. Null when the run has none (nothing was checkpointed yet); a UsageError naming the damage when every
 * checkpoint there is damaged.
 */
export function readCheckpoint<T>(runDir: string): LoadedCheckpoint<T> | null {
  const root = join(runDir, 'checkpoints');
  const pointerFile = join(runDir, 'checkpoint.json');
  const ptr = readPointer(runDir);
  const folders = completeFolders(root).map((f) => f.dir);
  if (!ptr && folders.length === 0) {
    if (existsSync(pointerFile)) throw new UsageError(`${pointerFile} is damaged and ${root} holds no checkpoint to resume from`);
    return null;
  }
  const order = ptr ? [ptr.dir, ...folders.filter((d) => d !== ptr.dir)] : folders;
  const problems: string[] = [];
  if (!ptr) problems.push(`${existsSync(pointerFile) ? 'checkpoint.json is damaged' : 'checkpoint.json is missing'}`);
  for (const d of order) {
    const r = readFolder<T>(join(root, d));
    if ('state' in r) {
      const notice = problems.length ? `${problems.join('; ')}; resuming from checkpoints/${d}` : null;
      return { state: r.state, dir: d, notice };
    }
    problems.push(`checkpoints/${d} is damaged (${r.damage})`);
  }
  throw new UsageError(`${runDir}: no complete checkpoint to resume from: ${problems.join('; ')}`);
}

/** The newest usable checkpoint's state (readCheckpoint without the notice). */
export function loadCheckpoint<T>(runDir: string): T | null {
  return readCheckpoint<T>(runDir)?.state ?? null;
}

/**
 * The files of the pointer's checkpoint (paths relative to the run folder: checkpoint.json and checkpoints/ck-N/*),
 * read and checked against check.json, for copying the run's state elsewhere; null when there is none or it is not
 * complete (being replaced right now: the caller tries again at the next checkpoint).
 */
export function checkpointFiles(runDir: string): { dir: string; files: Map<string, Buffer> } | null {
  const ptr = readPointer(runDir);
  if (!ptr) return null;
  const folder = join(runDir, 'checkpoints', ptr.dir);
  try {
    const files = new Map<string, Buffer>();
    for (const name of ['state.json', 'state.bin', 'check.json']) files.set(`checkpoints/${ptr.dir}/${name}`, readFileSync(join(folder, name)));
    const c = JSON.parse(files.get(`checkpoints/${ptr.dir}/check.json`)!.toString('utf8')) as Check;
    const bin = files.get(`checkpoints/${ptr.dir}/state.bin`)!;
    if (files.get(`checkpoints/${ptr.dir}/state.json`)!.length !== c.jsonBytes || bin.length !== c.binBytes || sha256(bin) !== c.binSha256) return null;
    files.set('checkpoint.json', Buffer.from(JSON.stringify(ptr)));
    return { dir: `checkpoints/${ptr.dir}`, files };
  } catch {
    return null;
  }
}

/** Removes a finished run's checkpoints (the folder and the pointer; the pointer first, so no pointer names a missing folder). */
export function removeCheckpoints(runDir: string): void {
  rmSync(join(runDir, 'checkpoint.json'), { force: true });
  rmSync(join(runDir, 'checkpoints'), { recursive: true, force: true });
}

/** Keeps the first `count` complete lines of a JSONL file (drops events written after the checkpoint). */
export function truncateJsonl(path: string, count: number): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0);
  const kept = lines.slice(0, count);
  const tmp = `${path}.tmp`;
  writeFile(tmp, kept.map((l) => l + '\n').join(''));
  renameSync(tmp, path);
}
