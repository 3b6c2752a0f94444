/**
 * Process bookkeeping that survives a SIGKILL of the sweep: processes are named by pid and start time
 * (foundation/process.ts), so a recycled pid is never taken for the process we started.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { identify, isAlive, type ProcessId } from '../../foundation/process.js';
import { basename, resolve } from 'node:path';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Live processes that have `dir` as one of their arguments (Linux /proc; elsewhere none are found). This is how a
 * sweep notices a run that is still being worked on by a process it has no record of: one started by a sweep that
 * was killed between spawning it and writing its record down, or a `prunus resume <dir>` typed by hand.
 */
export function processesUsing(dir: string): ProcessId[] {
  const target = resolve(dir).replace(/\/+$/, '');
  const base = basename(target);
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: ProcessId[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.length > 0);
    } catch {
      continue;
    }
    let hit = args.some((a) => a.replace(/\/+$/, '') === target);
    if (!hit && args.some((a) => !a.startsWith('/') && !a.startsWith('-') && a.replace(/\/+$/, '').endsWith(base))) {
      try {
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        hit = args.some((a) => !a.startsWith('-') && resolve(cwd, a).replace(/\/+$/, '') === target);
      } catch {
        // gone, or not ours to look at
      }
    }
    if (hit) {
      const p = identify(pid);
      if (isAlive(p)) found.push(p);
    }
  }
  return found;
}
