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
