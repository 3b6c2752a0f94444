/** Liveness of a candidate's channels from its masks alone: what the sparse kernels may skip. */
import type { LayerMasks } from '../models/params.js';
import type { NodeInfo } from '../models/walk.js';
import type { Live } from './sparse.js';
import type { EvaluationContext } from './types.js';

/** f(c, o) for each kept entry: its input channel (a dense layer's input unit) and its output. */
function eachKept(kl: Int32Array, Co: number, C: number, dense: boolean, f: (c: number, o: number) => void): void {
  for (let q = 0; q < kl.length; q++) {
    const e = kl[q]!;
    const r = (e / Co) | 0;
    f(dense ? r : r % C, e - r * Co);
  }
}

/**
 * Structural liveness per op, from the masks alone (exact for every input): `zeroIn` marks input channels (units
 * when flat) that are identically zero — no kept weight from a non-zero input reaches them and their bias is off —
 * and `neededOut` marks output channels that some kept weight downstream reads. Batchnorm ends zero-propagation.
 * `kept`: each prunable layer's kept entries (sparse.ts keptEntries).
 */
export function liveness(ctx: EvaluationContext, masks: readonly LayerMasks[], infos: readonly NodeInfo[], kept: readonly Int32Array[]): Live[] {
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
        const nx = new Uint8Array(Co);
        for (let o = 0; o < Co; o++) nx[o] = m.bias[o] && l.bias[o] !== 0 ? 0 : 1;
        // dense: input unit r; conv: row r = (ky*K + kx)*C + ci
        eachKept(kept[inf.layer]!, Co, C, inf.op.type === 'dense', (c, o) => {
          if (!zeroIn[c]) nx[o] = 0;
        });
        next = nx;
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
        const pv = new Uint8Array(C);
        const nd = needed;
        eachKept(kept[inf.layer]!, Co, C, inf.op.type === 'dense', (c, o) => {
          if (nd[o] && !live.zeroIn[c]) pv[c] = 1;
        });
        prev = pv;
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
