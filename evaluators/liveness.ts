/** Liveness of a candidate's channels from its masks alone: what the sparse kernels may skip. */
import type { LayerMasks } from '../models/params.js';
import type { NodeInfo } from '../models/walk.js';
import type { Live } from './sparse.js';
import type { EvaluationContext } from './types.js';

/**
 * Structural liveness per op, from the masks alone (exact for every input): `zeroIn` marks input channels (units
 * when flat) that are identically zero — no kept weight from a non-zero input reaches them and their bias is off —
 * and `neededOut` marks output channels that some kept weight downstream reads. Batchnorm ends zero-propagation.
 */
/**
 * Indices (increasing) of a layer's kept weights: mask 1 and weight not exactly 0. One scan; the passes below and the
 * CSR builders then visit only these.
 */
let keptScratch = new Int32Array(0);
export function keptEntries(w: Float32Array, mw: Uint8Array): Int32Array {
  if (keptScratch.length < w.length) keptScratch = new Int32Array(w.length);
  const s = keptScratch;
  let k = 0;
  for (let i = 0; i < w.length; i++) {
    s[k] = i;
    k += mw[i] !== 0 && w[i] !== 0 ? 1 : 0;
  }
  return s.slice(0, k);
}

/** f(c, o) for each kept entry: its input channel (a dense layer's input unit) and its output. */
function eachKept(kl: Int32Array, Co: number, C: number, dense: boolean, f: (c: number, o: number) => void): void {
  for (let q = 0; q < kl.length; q++) {
    const e = kl[q]!;
    const r = (e / Co) | 0;
    f(dense ? r : r % C, e - r * Co);
  }
}

export function liveness(ctx: EvaluationContext, masks: readonly LayerMasks[], infos: readonly NodeInfo[], kept?: readonly Int32Array[]): Live[] {
  const out: Live[] = [];
  let zero: Uint8Array = new Uint8Array(infos[0]!.inShape[2]);
  for (const inf of infos) {
    const zeroIn = zero;
    const C = inf.inShape[2];
    const Co = inf.outShape[2];
    let next: Uint8Array;
    switch (inf.op.type) {
      case 'conv2d':
      case 'dense': {
        const l = ctx.params.layers[inf.layer]!;
        const m = masks[inf.layer]!;
        const w = l.weight;
        const mw = m.weight;
        next = new Uint8Array(Co);
        for (let o = 0; o < Co; o++) next[o] = m.bias[o] && l.bias[o] !== 0 ? 0 : 1;
        const rows = w.length / Co;
        const kl = kept?.[inf.layer];
        if (kl) {
          const nx = next;
          eachKept(kl, Co, C, inf.op.type === 'dense', (c, o) => {
            if (!zeroIn[c]) nx[o] = 0;
          });
          break;
        }
        for (let r = 0, ci = 0; r < rows; r++) {
          // dense: input unit r; conv: row r = (ky*K + kx)*C + ci
          const c = inf.op.type === 'dense' ? r : ci;
          if (++ci === C) ci = 0;
          if (zeroIn[c]) continue;
          const base = r * Co;
          for (let o = 0; o < Co; o++) if (mw[base + o] !== 0 && w[base + o] !== 0) next[o] = 0;
        }
        break;
      }
      case 'maxpool':
      case 'dropout':
        next = zeroIn;
        break;
      case 'flatten':
        next = new Uint8Array(Co);
        for (let u = 0, c = 0; u < Co; u++) {
          next[u] = zeroIn[c]!;
          if (++c === C) c = 0;
        }
        break;
      default:
        // batchnorm: its shift makes zero inputs non-zero.
        next = new Uint8Array(Co);
        break;
    }
    out.push({ zeroIn, neededOut: new Uint8Array(0) });
    zero = next;
  }
  let needed: Uint8Array = new Uint8Array(infos[infos.length - 1]!.outShape[2]).fill(1);
  for (let j = infos.length - 1; j >= 0; j--) {
    const inf = infos[j]!;
    const live = out[j]!;
    live.neededOut = needed;
    const C = inf.inShape[2];
    const Co = inf.outShape[2];
    let prev: Uint8Array;
    switch (inf.op.type) {
      case 'conv2d':
      case 'dense': {
        const w = ctx.params.layers[inf.layer]!.weight;
        const mw = masks[inf.layer]!.weight;
        prev = new Uint8Array(C);
        const rows = w.length / Co;
        const kl = kept?.[inf.layer];
        if (kl) {
          const pv = prev;
          const nd = needed;
          eachKept(kl, Co, C, inf.op.type === 'dense', (c, o) => {
            if (nd[o] && !live.zeroIn[c]) pv[c] = 1;
          });
          break;
        }
        for (let r = 0, ci = 0; r < rows; r++) {
          const c = inf.op.type === 'dense' ? r : ci;
          if (++ci === C) ci = 0;
          if (prev[c] || live.zeroIn[c]) continue;
          const base = r * Co;
          for (let o = 0; o < Co; o++) {
            if (needed[o] && mw[base + o] !== 0 && w[base + o] !== 0) {
              prev[c] = 1;
              break;
            }
          }
        }
        break;
      }
      case 'flatten':
        prev = new Uint8Array(C);
        for (let u = 0, c = 0; u < Co; u++) {
          if (needed[u]) prev[c] = 1;
          if (++c === C) c = 0;
        }
        break;
      default:
        prev = needed;
    }
    needed = prev;
  }
  return out;
}
