import type { EvalResult, JsonEvalResult, JsonNumber } from './types.js';

/** Orders numbers ascending with NaN after everything (a failed evaluation is never "best"). */
export function compareNumbers(a: number, b: number): number {
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  if (an || bn) return an === bn ? 0 : an ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Feasibility-first order, < 0 when `a` is better: a feasible result beats an infeasible one; between
 * infeasible ones the smaller violation wins; then (both feasible, or equal violation) the lower fitness.
 */
export function compareResults(a: EvalResult, b: EvalResult): number {
  if (a.feasible !== b.feasible) return a.feasible ? -1 : 1;
  if (!a.feasible) {
    const c = compareNumbers(a.violation, b.violation);
    if (c !== 0) return c;
  }
  return compareNumbers(a.fitness, b.fitness);
}

/** True when `a` is strictly better than `b` (or `b` is absent). */
export function isBetter(a: EvalResult, b: EvalResult | null | undefined): boolean {
  return !b || compareResults(a, b) < 0;
}

export function encodeNumber(v: number): JsonNumber {
  if (Number.isFinite(v)) return v;
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? 'Infinity' : '-Infinity';
}

export function decodeNumber(v: JsonNumber): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw new Error(`not a JSON number: ${JSON.stringify(v)}`);
}

export function encodeResult(r: EvalResult): JsonEvalResult {
  return { fitness: encodeNumber(r.fitness), feasible: r.feasible, violation: encodeNumber(r.violation) };
}

export function decodeResult(r: JsonEvalResult): EvalResult {
  return { fitness: decodeNumber(r.fitness), feasible: r.feasible, violation: decodeNumber(r.violation) };
}

export function copyResult(r: EvalResult): EvalResult {
  return { fitness: r.fitness, feasible: r.feasible, violation: r.violation };
}

/** Checks the shape of an evaluator's result (a programming error, not a usage error, when wrong). */
export function checkResult(r: unknown, where: string): EvalResult {
  const o = r as Partial<EvalResult> | null;
  if (
    !o ||
    typeof o !== 'object' ||
    typeof o.fitness !== 'number' ||
    typeof o.feasible !== 'boolean' ||
    typeof o.violation !== 'number'
  ) {
    throw new TypeError(`${where}: expected {fitness: number, feasible: boolean, violation: number}, got ${JSON.stringify(r)}`);
  }
  return copyResult(o as EvalResult);
}
