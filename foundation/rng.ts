import seedrandom from 'seedrandom';
import { NumpyRandomState, type Mt19937State } from './mt19937.js';
import { polarPair } from './gaussian.js';

/** Serialisable state of an {@link Rng}: the generator's internal state and the cached Gaussian spare. */
export interface RngState {
  prng: seedrandom.State.Arc4;
  spare: number | null;
}

/**
 * The one seeded random stream of a run (seedrandom's ARC4). Every draw in prunus comes from an Rng,
 * never from Math.random. Its whole state serialises to JSON, so a restored stream continues bit-identically.
 */
export class Rng {
  private prng: seedrandom.PRNG;
  private spare: number | null = null;

  constructor(seed: string | number, state?: RngState) {
    if (state) {
      this.prng = seedrandom('', { state: state.prng });
      this.spare = state.spare;
    } else {
      this.prng = seedrandom(String(seed), { state: true });
    }
  }

  static fromState(state: RngState): Rng {
    return new Rng('', state);
  }

  state(): RngState {
    const prng = (this.prng as unknown as { state(): seedrandom.State.Arc4 }).state();
    return { prng, spare: this.spare };
  }

  /** Uniform in [0, 1) with 53 bits of randomness. */
  uniform(): number {
    return this.prng.double();
  }

  /** Standard normal draw (polar Box-Muller; the second value of each pair is cached in the state). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const [a, b] = polarPair(() => this.uniform());
    this.spare = b;
    return a;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Uint32 seed for a derived stream (e.g. a tfjs op seed or a child Rng). */
  uint32(): number {
    return this.prng.int32() >>> 0;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(a: T[] | Int32Array | Uint32Array): typeof a {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }

  /** A permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }
}

/**
 * What optimisers and the pipeline draw from: prunus's own stream (Rng, ARC4) or numpy's legacy MT19937
 * (foundation/mt19937.ts, for replaying the OLMP authors' seeded runs). Both serialise their whole state to JSON.
 */
export interface RandomStream {
  uniform(): number;
  normal(): number;
  uint32(): number;
  state(): StreamState;
}
export type StreamState = RngState | Mt19937State;

/** The stream a state() came from, continuing bit-identically. */
export function restoreStream(state: StreamState): RandomStream {
  return 'kind' in state && state.kind === 'numpy-mt19937' ? NumpyRandomState.fromState(state) : Rng.fromState(state as RngState);
}
