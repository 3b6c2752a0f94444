/** Reading JSON files a user hands prunus: one line naming the file when it is not valid JSON or not an object. */
import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';

export function readJsonObject(file: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`${file}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/**
 * `over` laid on `base` in place: undefined values are skipped; a plain object laid on a plain object is merged one
 * level deep (so `{ search: { budget: 9 } }` keeps the other search settings). Returns `base`.
 */
export function mergeOneLevel<T extends object>(base: T, over: object): T {
  const b = base as Record<string, unknown>;
  const plain = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    b[k] = plain(b[k]) && plain(v) ? { ...b[k], ...v } : v;
  }
  return base;
}
