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

/**
 * A problem of the machine, not of the request (a full disk, an I/O error, a read-only file system). The CLI prints
 * its message as one line and exits with code 1, without a stack trace; a run it interrupts stays resumable.
 */
export class EnvironmentError extends Error {
  override readonly name = 'EnvironmentError';
  constructor(message: string) {
    super(message);
  }
}

/** A run that must continue on the backend it started on, asked to continue on a machine that resolves another. */
export class BackendMismatchError extends UsageError {
  constructor(
    message: string,
    readonly needed: string,
    readonly available: string,
  ) {
    super(message);
  }
}

/**
 * Work stopped on request (SIGINT or SIGTERM) after saving what it had: a run is checkpointed and resumable. The CLI
 * prints its message as one line and exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports such a stop.
 */
export class StoppedError extends Error {
  override readonly name = 'StoppedError';
  constructor(
    message: string,
    readonly signal: 'SIGINT' | 'SIGTERM',
  ) {
    super(message);
  }
}

/** fs error codes that mean the machine failed the operation (exit 1), as opposed to a bad path the user gave (exit 2). */
export const ENVIRONMENT_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EIO', 'EROFS', 'EDQUOT', 'EMFILE', 'ENFILE', 'ENOMEM', 'EBUSY']);

/** fs error codes that mean a path the user gave cannot be used (exit 2). */
export const PATH_CODES: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a folder',
  ENOTDIR: 'a part of the path is not a folder',
  EEXIST: 'already exists',
  ENOTEMPTY: 'folder not empty',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
};

/** A Node fs error, as thrown by node:fs (code, syscall, path). */
export function isFsError(e: unknown): e is NodeJS.ErrnoException & { path?: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
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
