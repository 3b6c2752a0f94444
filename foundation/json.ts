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
