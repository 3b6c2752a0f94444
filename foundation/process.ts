/**
 * Naming a process so that a recycled pid is never taken for it: its pid plus its start time (Linux
 * /proc/<pid>/stat field 22; null elsewhere, where the pid alone is trusted).
 */
import { readFileSync } from 'node:fs';

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
