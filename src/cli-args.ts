/** Flag parsing shared by every command: node's util.parseArgs in strict mode, errors turned into one-line UsageErrors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../foundation/errors.js';

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

/** Flags every command takes. */
export const COMMON_FLAGS = {
  backend: { type: 'string', default: 'auto' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies FlagSpec;

export interface Parsed<V> {
  values: V;
  positionals: string[];
}

export function parseFlags<S extends FlagSpec>(argv: string[], spec: S, command: string): Parsed<ReturnType<typeof parseArgs<{ options: S; allowPositionals: true; strict: true }>>['values']> {
  try {
    const r = parseArgs({ args: argv, options: spec, allowPositionals: true, strict: true });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    throw new UsageError(`${command}: ${msg.replace(/\. To specify a positional.*$/, '')}`);
  }
}

/** A comma-separated list of known names (`--models a,b`): undefined when the flag is absent, one line naming an unknown one. */
export function parseChoiceList<T extends string>(raw: string | undefined, known: readonly string[], flag: string): T[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`${flag} needs at least one value`);
  for (const i of items) if (!known.includes(i)) throw new UsageError(`${flag}: unknown '${i}' (known: ${known.join(', ')})`);
  return items as T[];
}
