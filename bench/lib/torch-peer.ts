/**
 * The PyTorch peers of the benchmarks (bench/crosscheck/torch_*.py), run in the same session as prunus's own rows
 * when a python3 with torch is found. Debian's python3-torch uses whatever libblas.so.3 resolves to: with
 * libopenblas0-pthread it is OpenBLAS, without it the reference BLAS (much slower); each row names the library loaded.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let found: string | null | undefined;

/** A python3 that imports torch, or null (looked up once). */
export function torchPython(): string | null {
  if (found !== undefined) return found;
  found = null;
  for (const py of ['/usr/bin/python3', 'python3']) {
    try {
      execFileSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
      found = py;
      break;
    } catch {
      // next
    }
  }
  return found;
}

/** Runs bench/crosscheck/<script> with args; returns the JSON object it prints last. */
export function runTorchPeer<T>(py: string, script: string, args: string[]): T {
  // dist/bench/lib/ or bench/lib/ → the repository's bench/crosscheck/.
  const candidates = [new URL(`../../../bench/crosscheck/${script}`, import.meta.url), new URL(`../crosscheck/${script}`, import.meta.url)].map((u) => fileURLToPath(u));
  const path = candidates.find((p) => existsSync(p));
  if (!path) throw new Error(`bench/crosscheck/${script} not found`);
  const out = execFileSync(py, [path, ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!) as T;
}
