/**
 * numpy's legacy random stream (`numpy.random.RandomState`: MT19937, `random_sample`, the polar Box-Muller
 * `standard_normal` with its cached second value), draw for draw. The OLMP authors' scripts draw every random
 * number of a run from it after `np.random.seed([seed])`, so replaying their seeded runs (which layers are selected
 * at each iteration, which candidates each search samples) needs this stream rather than prunus's own (foundation/rng.ts).
 *
 * Same interface as `Rng` (uniform, normal, uint32, state); the whole state serialises to JSON.
 */

import { polarPair } from './gaussian.js';

const N = 624;
const M = 397;

/** Serialisable state: the 624-word key, the position in it, and the cached Gaussian (numpy's has_gauss/gauss). */
export interface Mt19937State {
  kind: 'numpy-mt19937';
  key: number[];
  pos: number;
  gauss: number | null;
}

export class NumpyRandomState {
  private readonly mt = new Uint32Array(N);
  private pos = N;
  private gauss: number | null = null;

  /**
   * `new NumpyRandomState([s])` is `np.random.seed([s])` (init_by_array); `new NumpyRandomState(s)` is
   * `np.random.seed(s)` (init_genrand). Seeds are integers in [0, 2^32).
   */
  constructor(seed: number | readonly number[], state?: Mt19937State) {
    if (state) {
      if (state.kind !== 'numpy-mt19937' || state.key.length !== N || !(state.pos >= 0 && state.pos <= N)) throw new Error('not a numpy MT19937 state');
      this.mt.set(state.key);
      this.pos = state.pos;
      this.gauss = state.gauss;
      return;
    }
    const words = typeof seed === 'number' ? [seed] : seed;
    for (const w of words) {
      if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new Error(`MT19937 seed words must be integers in [0, 2^32), got ${w}`);
    }
    if (typeof seed === 'number') this.initGenrand(seed);
    else this.initByArray(seed);
  }

  static fromState(state: Mt19937State): NumpyRandomState {
    return new NumpyRandomState(0, state);
  }

  state(): Mt19937State {
    return { kind: 'numpy-mt19937', key: Array.from(this.mt), pos: this.pos, gauss: this.gauss };
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const p = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = (Math.imul(1812433253, p) + i) >>> 0;
    }
    this.pos = N;
    this.gauss = null;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const p = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(p, 1664525)) + key[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const p = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(p, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    this.pos = N;
    this.gauss = null;
  }

  private twist(): void {
    const mt = this.mt;
    let kk = 0;
    let y: number;
    const mag = (v: number) => (v & 1 ? 0x9908b0df : 0);
    for (; kk < N - M; kk++) {
      y = (mt[kk]! & 0x80000000) | (mt[kk + 1]! & 0x7fffffff);
      mt[kk] = (mt[kk + M]! ^ (y >>> 1) ^ mag(y)) >>> 0;
    }
    for (; kk < N - 1; kk++) {
      y = (mt[kk]! & 0x80000000) | (mt[kk + 1]! & 0x7fffffff);
      mt[kk] = (mt[kk + (M - N)]! ^ (y >>> 1) ^ mag(y)) >>> 0;
    }
    y = (mt[N - 1]! & 0x80000000) | (mt[0]! & 0x7fffffff);
    mt[N - 1] = (mt[M - 1]! ^ (y >>> 1) ^ mag(y)) >>> 0;
    this.pos = 0;
  }

  /** The next 32-bit output (genrand_int32). */
  uint32(): number {
    if (this.pos >= N) this.twist();
    let y = this.mt[this.pos++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `random_sample()`: uniform in [0, 1) from two outputs, 53 bits. */
  uniform(): number {
    const a = this.uint32() >>> 5;
    const b = this.uint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** `standard_normal()` of the legacy RandomState: polar Box-Muller returning f·x2 and caching f·x1. */
  normal(): number {
    if (this.gauss !== null) {
      const g = this.gauss;
      this.gauss = null;
      return g;
    }
    const [a, b] = polarPair(() => this.uniform());
    this.gauss = a;
    return b;
  }
}
