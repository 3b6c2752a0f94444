/**
 * Process bookkeeping that survives a SIGKILL of the sweep: a process is named by its pid plus its start time
 * (Linux /proc/<pid>/stat field 22), so a recycled pid is never taken for the process we started.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename, resolve } from 'node:path';

export interface ProcessId {
  pid: number;
  /** Start time in clock ticks since boot (Linux); null where /proc is not available. */
  start: number | null;
}

export function processStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]); // field 22 overall; rest[0] is field 3
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

export function identify(pid: number): ProcessId {
  return { pid, start: processStart(pid) };
}

/** Whether the process is still there (and is the same process, where start times can be read). Zombies count as gone. */
export function isAlive(p: ProcessId): boolean {
  try {
    process.kill(p.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    if (state === 'Z' || state === 'X') return false;
  } catch {
    // no /proc: trust kill(0)
  }
  if (p.start === null) return true;
  const now = processStart(p.pid);
  return now === null || now === p.start;
}

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
