/** Running the prunus CLI from tests: bin/prunus.js in a child process, its exit, stdout and stderr collected. */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const bin = join(repoRoot, 'bin', 'prunus.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Sees the whole stderr so far at each chunk (to signal the process at a given line, say). */
  onStderr?: (stderr: string, child: ChildProcess) => void;
}

export function runCli(args: string[], opts: CliOptions): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(stderr, child);
    });
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr }));
  });
}

/** The non-empty lines of a text. */
export const lines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');
