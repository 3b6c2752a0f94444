/**
 * Run directories: `<results root>/<command>-<model>-s<seed>-<UTC timestamp>` (root: PRUNUS_RESULTS or ./results),
 * built atomically: everything is written into a hidden temporary sibling that is renamed into place at the end, so a
 * failed or killed run leaves no half-written run folder. Every run folder holds `config.json` (the resolved config,
 * the backend record, versions); commands add their own files (metrics.json, report.json, model/ ...).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { UsageError } from '../foundation/errors.js';
import { writeDirAtomic, writeFile } from '../foundation/atomic.js';

/** The results root: $PRUNUS_RESULTS, else ./results (relative to the working directory). */
export function resultsRoot(): string {
  return resolve(process.env['PRUNUS_RESULTS'] || 'results');
}

/** Compact UTC timestamp, e.g. 20261121T195512Z. */
export function utcStamp(d: Date = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Default run folder: <root>/<command>-<model>-s<seed>-<stamp>. */
export function defaultRunDir(command: string, model: string, seed: number | string, date: Date = new Date(), root: string = resultsRoot()): string {
  return join(root, `${command}-${model}-s${seed}-${utcStamp(date)}`);
}

/** The run folder to write: --out when given, else the default; refuses an existing path (UsageError). */
export function resolveRunDir(out: string | undefined, command: string, model: string, seed: number | string, date: Date = new Date()): string {
  const dir = out !== undefined ? resolve(out) : defaultRunDir(command, model, seed, date);
  if (out !== undefined && out.trim() === '') throw new UsageError('--out must not be empty');
  if (existsSync(dir)) throw new UsageError(`${dir} already exists (choose another --out)`);
  return dir;
}

function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url);
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** prunus's own version: the nearest package.json named prunus above this file (works from src/ and dist/src/). */
export function prunusVersion(): string {
  let dir = dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const j = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (j.name === 'prunus' && j.version) return j.version;
      } catch {
        // keep looking
      }
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export interface Versions extends Record<string, string> {
  prunus: string;
  node: string;
  tfjs: string;
  'tfjs-backend-wasm': string;
  platform: string;
}

/** Versions recorded in every run folder's config.json. */
export function runVersions(): Versions {
  return {
    prunus: prunusVersion(),
    node: process.version,
    tfjs: tf.version.tfjs ?? packageVersion('@tensorflow/tfjs'),
    'tfjs-backend-wasm': packageVersion('@tensorflow/tfjs-backend-wasm'),
    platform: `${process.platform}-${process.arch}`,
  };
}

/**
 * Builds a new run folder atomically (foundation/atomic.ts writeDirAtomic: a temporary sibling renamed into place),
 * refusing one that already exists. A failure or a kill while filling leaves no run folder.
 */
export function buildRunDir(dir: string, fill: (tmpDir: string) => void): void {
  if (existsSync(dir)) throw new UsageError(`${dir} already exists`);
  writeDirAtomic(dir, fill);
}

/** Writes pretty JSON into a folder being built (the folder itself is renamed atomically). */
export function writeJson(dir: string, name: string, value: unknown): void {
  writeFile(join(dir, name), JSON.stringify(value, null, 2) + '\n');
}
