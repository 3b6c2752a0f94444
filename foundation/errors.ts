/**
 * A problem with what the user asked for (bad flag, missing file, corrupt data).
 * The CLI prints its message as one line and exits with code 2, without a stack trace.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super(message);
  }
}

/** Throws a UsageError unless `cond` holds. */
export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new UsageError(message);
}

/** Parses a finite number from a flag value, with optional bounds; names the flag on failure. */
export function parseNumber(
  flag: string,
  raw: string | number | undefined,
  opts: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean } = {},
): number {
  const value = typeof raw === 'number' ? raw : raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(value)) throw new UsageError(`${flag} must be a finite number, got '${raw}'`);
  if (opts.integer && !Number.isInteger(value)) throw new UsageError(`${flag} must be an integer, got '${raw}'`);
  if (opts.min !== undefined) {
    if (opts.exclusiveMin ? value <= opts.min : value < opts.min) {
      throw new UsageError(`${flag} must be ${opts.exclusiveMin ? '>' : '>='} ${opts.min}, got '${raw}'`);
    }
  }
  if (opts.max !== undefined && value > opts.max) throw new UsageError(`${flag} must be <= ${opts.max}, got '${raw}'`);
  return value;
}
