/**
 * One owner per run: a process that writes a run (or sweep) folder first takes an exclusive lease on it. The lock
 * is proper-lockfile's (an atomic mkdir of `.<name>.lock` beside the folder, its mtime refreshed while the holder
 * lives, stale after STALE_MS without a refresh: a holder on a machine that died is taken over then); who holds it is
 * written beside it (`.<name>.holder.json`: pid and start time, host, command, since when), so that a second process
 * gets one line naming the holder, and a holder on this host whose process is gone is taken over at once.
 *
 * Long synchronous work starves the refresh timer: holders call keepAlive() in their loops, which yields to the event
 * loop about once a second and reports a lease that was lost (taken over after going stale). A live holder on the
 * same machine is never taken over, however late its refresh.
 */
import lockfile from 'proper-lockfile';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError, EnvironmentError } from './errors.js';
import { writeFileAtomic } from './atomic.js';
import { identify, isAlive, type ProcessId } from './process.js';

/** A lease not refreshed for this long is stale (its holder died or its machine did). */
export const STALE_MS = 30_000;
const UPDATE_MS = 5_000;

export interface LeaseHolder extends ProcessId {
  host: string;
  command: string;
  since: string;
}

export interface Lease {
  readonly path: string;
  /** Lets the lock's refresh run during long synchronous work; throws once the lease has been lost. */
  keepAlive(): Promise<void>;
  release(): void;
}

export class LeaseHeldError extends UsageError {}

/** The lock folder and the holder record: `lockPath` (default `.<name>.lock` beside the target) and `<lock>.holder.json`. */
function paths(target: string, lockPath?: string): { lock: string; holder: string } {
  const t = resolve(target);
  const lock = lockPath ? resolve(lockPath) : join(dirname(t), `.${basename(t)}.lock`);
  return { lock, holder: lock.replace(/\.lock$/, '') + '.holder.json' };
}

export function readHolder(target: string, lockPath?: string): LeaseHolder | null {
  const { holder } = paths(target, lockPath);
  try {
    return JSON.parse(readFileSync(holder, 'utf8')) as LeaseHolder;
  } catch {
    return null;
  }
}

/** The lock folder was created after `h` recorded itself (so it is not h's lock). */
function retakenSince(lock: string, h: LeaseHolder): boolean {
  try {
    const born = statSync(lock).birthtimeMs;
    return born > 0 && born > Date.parse(h.since);
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Takes the lease on `target` (a folder, which need not exist yet) for `command`, or throws LeaseHeldError naming the holder. */
export function acquireLease(target: string, command: string, lockPath?: string): Lease {
  const p = paths(target, lockPath);
  mkdirSync(dirname(p.lock), { recursive: true });
  let lost = false;
  const take = (): (() => void) =>
    lockfile.lockSync(resolve(target), {
      realpath: false,
      lockfilePath: p.lock,
      stale: STALE_MS,
      update: UPDATE_MS,
      onCompromised: () => {
        lost = true;
      },
    });
  const held = (h: LeaseHolder | null): LeaseHeldError =>
    new LeaseHeldError(`${target} is in use by ${h ? `${h.command} (pid ${h.pid} on ${h.host}, since ${h.since})` : 'another process'}; wait for it to finish or stop it`);
  // A live holder on this machine keeps its lease even when its refresh is late (a long synchronous step): staleness
  // only decides for holders on other machines.
  const current = existsSync(p.lock) ? readHolder(target, lockPath) : null;
  if (current && current.host === hostname() && isAlive(current)) throw held(current);
  let release: (() => void) | null = null;
  for (let attempt = 0; release === null; attempt++) {
    try {
      release = take();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      const h = readHolder(target, lockPath);
      // A holder on this machine whose process is gone (killed, crashed): the lease is free, unless the lock was
      // taken again after that holder wrote itself down (a contender freed it first and has it now, its own holder
      // record not written yet).
      if (attempt < 20 && h && h.host === hostname() && !isAlive(h)) {
        if (retakenSince(p.lock, h)) {
          sleepSync(50);
          continue;
        }
        rmSync(p.lock, { recursive: true, force: true });
        continue;
      }
      throw held(h);
    }
  }
  const unlock: () => void = release;
  const me: LeaseHolder = { ...identify(process.pid), host: hostname(), command, since: new Date().toISOString() };
  try {
    writeFileAtomic(p.holder, JSON.stringify(me) + '\n');
  } catch (e) {
    unlock();
    throw e;
  }
  let last = Date.now();
  let released = false;
  return {
    path: p.lock,
    async keepAlive() {
      const now = Date.now();
      if (now - last >= 1000) {
        last = now;
        await new Promise((r) => setTimeout(r, 0));
      }
      if (lost) throw new EnvironmentError(`lost the lease on ${target}: it went stale and another process took the run over; this process stops`);
    },
    release() {
      if (released) return;
      released = true;
      if (!lost) {
        const h = readHolder(target, lockPath);
        if (h && h.pid === me.pid && h.host === me.host) rmSync(p.holder, { force: true });
        try {
          unlock();
        } catch {
          // Already released or compromised: nothing left to free.
        }
      }
    },
  };
}

/**
 * Takes the lease on `target`, waiting while another live process holds it (runs that need the same reference model
 * train it once; the others wait for it). `tick` runs between tries, so a waiting run keeps its own lease alive and
 * can stop.
 */
export async function waitForLease(target: string, command: string, tick: () => Promise<void>, pollMs = 500): Promise<Lease> {
  for (;;) {
    try {
      return acquireLease(target, command);
    } catch (e) {
      if (!(e instanceof LeaseHeldError)) throw e;
    }
    await tick();
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
