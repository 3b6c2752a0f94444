/**
 * Mask builders: candidate → masks, keyed by candidate kind. The built-in 'crates' builder applies the DNS rule of
 * models/masks.ts (stateless: from the context's masks, never from another candidate's). Channel pruning and
 * other kinds register their own builder with registerMaskBuilder().
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { masksForCrates, threshold } from '../models/masks.js';
import { prunableOps, weightShape, biasLength } from '../models/graph.js';
import type { LayerMasks } from '../models/params.js';
import { UsageError } from '../foundation/errors.js';
import type { Candidate, CratesCandidate, EvaluationContext, MaskBuilder, MasksCandidate, PreparedContext } from './types.js';

const registry = new Map<string, MaskBuilder<{ kind: string }>>();

/** Registers (or replaces) the builder of a candidate kind in this thread. */
export function registerMaskBuilder<C extends { kind: string }>(builder: MaskBuilder<C>): void {
  registry.set(builder.kind, builder as unknown as MaskBuilder<{ kind: string }>);
}

export function getMaskBuilder(kind: string): MaskBuilder<{ kind: string }> {
  const b = registry.get(kind);
  if (!b) throw new UsageError(`unknown candidate kind '${kind}' (registered: ${[...registry.keys()].join(', ')})`);
  return b;
}

export function registeredKinds(): string[] {
  return [...registry.keys()];
}

/** Masks of a candidate (validated). */
export function buildMasks(ctx: EvaluationContext, cand: Candidate | { kind: string }): LayerMasks[] {
  const b = getMaskBuilder(cand.kind);
  b.validate?.(ctx, cand);
  return b.build(ctx, cand);
}

export function prepareContext(ctx: EvaluationContext, version: number): PreparedContext {
  const memo = new Map<string, unknown>();
  return {
    ctx,
    version,
    memo<T>(name: string, make: () => T): T {
      if (!memo.has(name)) memo.set(name, make());
      return memo.get(name) as T;
    },
  };
}

/** Checks that a context is self-consistent; throws a UsageError naming the first problem. */
export function validateContext(ctx: EvaluationContext): void {
  const ops = prunableOps(ctx.arch);
  if (ctx.params.layers.length !== ops.length) throw new UsageError(`context: ${ctx.params.layers.length} parameter layers for ${ops.length} prunable layers of ${ctx.arch.name}`);
  if (ctx.masks.length !== ops.length) throw new UsageError(`context: ${ctx.masks.length} mask layers for ${ops.length} prunable layers of ${ctx.arch.name}`);
  if (ctx.stats.length !== ops.length) throw new UsageError(`context: ${ctx.stats.length} magnitude stats for ${ops.length} prunable layers of ${ctx.arch.name}`);
  ops.forEach((op, k) => {
    const nw = weightShape(op).reduce((a, b) => a * b, 1);
    const nb = biasLength(op);
    const l = ctx.params.layers[k]!;
    const m = ctx.masks[k]!;
    if (l.weight.length !== nw || l.bias.length !== nb) throw new UsageError(`context: ${op.name} has ${l.weight.length}+${l.bias.length} parameters, expected ${nw}+${nb}`);
    if (m.weight.length !== nw || m.bias.length !== nb) throw new UsageError(`context: ${op.name} masks have ${m.weight.length}+${m.bias.length} entries, expected ${nw}+${nb}`);
  });
  const [h, w, c] = ctx.arch.inputShape;
  const d = ctx.data;
  if (d.count < 1) throw new UsageError('context: the evaluation set is empty');
  if (d.shape[0] * d.shape[1] * d.shape[2] !== h * w * c) throw new UsageError(`context: images are ${d.shape.join('x')}, ${ctx.arch.name} expects ${h}x${w}x${c}`);
  if (d.images.length !== d.count * h * w * c || d.labels.length < d.count) throw new UsageError(`context: ${d.count} images but ${d.images.length} pixels and ${d.labels.length} labels`);
}

// ---- crates -------------------------------------------------------------------------------------------------------

function validateCrates(ctx: EvaluationContext, cand: CratesCandidate): void {
  const n = ctx.params.layers.length;
  if (!Array.isArray(cand.crates) || cand.crates.length !== n) throw new UsageError(`crates candidate: ${Array.isArray(cand.crates) ? cand.crates.length : 'no'} crates for ${n} prunable layers`);
  for (const c of cand.crates) {
    if (c !== null && c !== undefined && (typeof c !== 'number' || !Number.isFinite(c))) throw new UsageError(`crates candidate: crate '${String(c)}' is not a finite number or null`);
  }
}

/** Sorted |v| of one array split by its previous mask bit. */
interface SortedMagnitudes {
  ones: Float64Array;
  zeros: Float64Array;
}

function sortedMagnitudes(values: Float32Array, prev: Uint8Array): SortedMagnitudes {
  let n1 = 0;
  for (let i = 0; i < prev.length; i++) n1 += prev[i]!;
  const ones = new Float64Array(n1);
  const zeros = new Float64Array(prev.length - n1);
  let a = 0;
  let b = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]!);
    if (prev[i]) ones[a++] = v;
    else zeros[b++] = v;
  }
  ones.sort();
  zeros.sort();
  return { ones, zeros };
}

/** Number of entries <= x in a sorted array. */
function countAtMost(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Exact identity of the masks a crate produces on one layer. With T the threshold, the DNS pass turns off the
 * previously-on entries with |v| <= 0.9T and keeps off the previously-off entries with |v| <= 1.1T; everything
 * else ends on. Both sets are prefixes of the magnitudes sorted per previous bit (ties fall on the same side), so
 * the two counts determine the new mask exactly, and distinct counts give distinct masks. Same comparisons, in the
 * same float64 arithmetic, as updateMaskArray.
 */
function layerKey(s: { w: SortedMagnitudes; b: SortedMagnitudes }, T: number | null): string {
  if (T === null) return `0,${s.w.zeros.length},0,${s.b.zeros.length}`;
  const lo = 0.9 * T;
  const hi = 1.1 * T;
  return `${countAtMost(s.w.ones, lo)},${countAtMost(s.w.zeros, hi)},${countAtMost(s.b.ones, lo)},${countAtMost(s.b.zeros, hi)}`;
}

/** Key of a crates candidate: per-layer mask identities (see layerKey). */
export function cratesKey(prep: PreparedContext, crates: readonly (number | null | undefined)[]): string {
  const ctx = prep.ctx;
  const sorted = prep.memo('crates:sorted', () =>
    ctx.params.layers.map((l, k) => ({ w: sortedMagnitudes(l.weight, ctx.masks[k]!.weight), b: sortedMagnitudes(l.bias, ctx.masks[k]!.bias) })),
  );
  const parts: string[] = [];
  for (let k = 0; k < sorted.length; k++) {
    const c = crates[k];
    parts.push(layerKey(sorted[k]!, c === null || c === undefined || c === 0 ? null : threshold(ctx.stats[k]!, c)));
  }
  return 'm:' + parts.join(';');
}

export const cratesBuilder: MaskBuilder<CratesCandidate> = {
  kind: 'crates',
  validate: validateCrates,
  build: (ctx, cand) => masksForCrates(ctx.params.layers, ctx.masks, ctx.stats, cand.crates),
  key: (prep, cand) => cratesKey(prep, cand.crates),
};
registerMaskBuilder(cratesBuilder);

// ---- explicit masks ------------------------------------------------------------------------------------------------

function validateMasks(ctx: EvaluationContext, cand: MasksCandidate): void {
  const ops = prunableOps(ctx.arch);
  if (!Array.isArray(cand.masks) || cand.masks.length !== ops.length) throw new UsageError(`masks candidate: ${Array.isArray(cand.masks) ? cand.masks.length : 'no'} mask layers for ${ops.length} prunable layers`);
  ops.forEach((op, k) => {
    const m = cand.masks[k]!;
    const nw = weightShape(op).reduce((a, b) => a * b, 1);
    if (!(m?.weight instanceof Uint8Array) || !(m.bias instanceof Uint8Array) || m.weight.length !== nw || m.bias.length !== biasLength(op)) {
      throw new UsageError(`masks candidate: ${op.name} needs Uint8Array masks of ${nw} + ${biasLength(op)} entries`);
    }
  });
}

/** Masks given as they are (hashed in the calling thread for the cache and shipped to workers). */
export const masksBuilder: MaskBuilder<MasksCandidate> = {
  kind: 'masks',
  validate: validateMasks,
  build: (_ctx, cand) => cand.masks,
};
registerMaskBuilder(masksBuilder);

// ---- hashing ------------------------------------------------------------------------------------------------------

/**
 * 64-bit FNV-1a over the mask bytes of all layers (weights then biases, layer by layer, with lengths), as 16 hex
 * digits. Used as the cache key of builders without an exact key.
 */
export function hashMasks(masks: readonly LayerMasks[]): string {
  // 64-bit FNV-1a with the state in four 16-bit limbs (exact in float64 arithmetic).
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  const eat = (byte: number) => {
    h0 ^= byte;
    // multiply by the FNV prime 2^40 + 0x1b3
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3;
    const t2 = h2 * 0x1b3 + h0 * 0x100; // 2^40 = 2^32 · 2^8: h0 shifts into limb 2 (×2^8)
    const t3 = h3 * 0x1b3 + h1 * 0x100;
    h0 = t0 & 0xffff;
    const c1 = t1 + (t0 >>> 16);
    h1 = c1 & 0xffff;
    const c2 = t2 + Math.floor(c1 / 0x10000);
    h2 = c2 & 0xffff;
    h3 = (t3 + Math.floor(c2 / 0x10000)) & 0xffff;
  };
  const eatLen = (n: number) => {
    for (let s = 0; s < 32; s += 8) eat((n >>> s) & 0xff);
  };
  for (const m of masks) {
    for (const arr of [m.weight, m.bias]) {
      eatLen(arr.length);
      for (let i = 0; i < arr.length; i++) eat(arr[i]!);
    }
  }
  const hex = (x: number) => x.toString(16).padStart(4, '0');
  return hex(h3) + hex(h2) + hex(h1) + hex(h0);
}

// ---- compiled worker modules --------------------------------------------------------------------------------------

/**
 * The compiled JS file of a module given by its URL or path. Compiled modules map to themselves; a TypeScript
 * source (vitest, tsx) maps to the same path under the repository's dist/ folder (tsconfig: rootDir '.', outDir
 * 'dist'). Throws when the compiled file is missing.
 */
export function compiledModulePath(urlOrPath: string): string {
  const file = urlOrPath.startsWith('file:') ? fileURLToPath(urlOrPath) : resolve(urlOrPath);
  if (!file.endsWith('.ts')) return file;
  // Walk up to the folder holding tsconfig.json (the repository root).
  let root = dirname(file);
  while (!existsSync(join(root, 'tsconfig.json'))) {
    const up = dirname(root);
    if (up === root) throw new Error(`cannot find tsconfig.json above ${file}`);
    root = up;
  }
  const rel = relative(root, file);
  if (rel.startsWith('..') || rel.split(sep)[0] === 'dist') throw new Error(`${file} is not a source file of ${root}`);
  const js = join(root, 'dist', rel.replace(/\.ts$/, '.js'));
  if (!existsSync(js)) throw new Error(`compiled module ${js} is missing (run \`npx tsc -p tsconfig.json\` first)`);
  return js;
}

export function compiledModuleUrl(urlOrPath: string): string {
  return pathToFileURL(compiledModulePath(urlOrPath)).href;
}
