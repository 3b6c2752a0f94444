/**
 * The two inner loops of the conv column kernels (columns.ts) as WebAssembly SIMD (f64x2), with a plain JS fallback
 * that computes the same values bit for bit:
 *
 *   axpy(y, x, n, w):         y[i] = y[i] + x[i] * w                       (i < n)
 *   pool4(y, a, b, d, e, n):  y[i] = max(max(a[i], b[i]), max(d[i], e[i]))  with max(p, q) = p > q ? p : q
 *
 * Bit-identity: f64x2.mul and f64x2.add round each lane exactly as scalar f64 `*` and `+` (IEEE 754 binary64,
 * round to nearest even; no fused multiply-add exists in core wasm SIMD), and `p > q ? p : q` is exactly
 * f64x2.pmax(q, p), which the spec defines per lane as `q < p ? p : q`, NaN and signed zeros included. Odd tails
 * use the scalar f64 instructions (and `select` for the max).
 *
 * The module is a few hundred bytes, assembled below from its instructions (no toolchain, nothing downloaded).
 * It imports its memory; every buffer the kernels touch is a view of that memory (`arena`).
 */

/** LEB128 (unsigned). */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
/** LEB128 (signed). */
function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const i32 = (v: number) => [0x41, ...sleb(v)];
const ADD = [0x6a];
const SUB = [0x6b];
const SHL = [0x74];
const GT_U = [0x4b];
const LT_U = [0x49];
const F64_LOAD = [0x2b, 3, 0];
const F64_STORE = [0x39, 3, 0];
const F64_ADD = [0xa0];
const F64_MUL = [0xa2];
const F64_GT = [0x64];
const SELECT = [0x1b];
const simd = (op: number) => [0xfd, ...uleb(op)];
const V_LOAD = [...simd(0x00), 4, 0];
const V_STORE = [...simd(0x0b), 4, 0];
const F64X2_SPLAT = simd(0x14);
const F64X2_ADD = simd(0xf0);
const F64X2_MUL = simd(0xf2);
const F64X2_PMAX = simd(0xf7);
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const IF = [0x04, 0x40];
const END = [0x0b];
const br = (d: number) => [0x0c, d];
const brIf = (d: number) => [0x0d, d];
const func = (locals: number[][], code: number[]): number[] => {
  const b = [...vec(locals), ...code, ...END];
  return [...uleb(b.length), ...b];
};
/** ptr += 16 */
const bump = (p: number) => [...get(p), ...i32(16), ...ADD, ...set(p)];

// axpy(y: i32, x: i32, n: i32, w: f64); locals: end = 4, d = 5 (x - y), wv = 6 (v128)
const AXPY = func(
  [
    [2, I32],
    [1, V128],
  ],
  [
    ...get(0), ...get(2), ...i32(3), ...SHL, ...ADD, ...set(4),
    ...get(1), ...get(0), ...SUB, ...set(5),
    ...get(3), ...F64X2_SPLAT, ...set(6),
    ...BLOCK, ...LOOP,
    ...get(0), ...i32(16), ...ADD, ...get(4), ...GT_U, ...brIf(1),
    ...get(0),
    ...get(0), ...V_LOAD,
    ...get(0), ...get(5), ...ADD, ...V_LOAD, ...get(6), ...F64X2_MUL,
    ...F64X2_ADD,
    ...V_STORE,
    ...bump(0),
    ...br(0),
    ...END, ...END,
    ...get(0), ...get(4), ...LT_U, ...IF,
    ...get(0),
    ...get(0), ...F64_LOAD,
    ...get(0), ...get(5), ...ADD, ...F64_LOAD, ...get(3), ...F64_MUL,
    ...F64_ADD,
    ...F64_STORE,
    ...END,
  ],
);

// pool4(y, a, b, d, e, n: i32); locals: end = 6 (i32), m1 = 7, m2 = 8 (f64)
// m1 = a > b ? a : b = pmax(b, a); m2 = pmax(e, d); y = m1 > m2 ? m1 : m2 = pmax(m2, m1).
const scalarMax = (p: number, q: number) => [
  ...get(p), ...F64_LOAD, ...get(q), ...F64_LOAD, ...get(p), ...F64_LOAD, ...get(q), ...F64_LOAD, ...F64_GT, ...SELECT,
];
const POOL4 = func(
  [
    [1, I32],
    [2, F64],
  ],
  [
    ...get(0), ...get(5), ...i32(3), ...SHL, ...ADD, ...set(6),
    ...BLOCK, ...LOOP,
    ...get(0), ...i32(16), ...ADD, ...get(6), ...GT_U, ...brIf(1),
    ...get(0),
    ...get(4), ...V_LOAD, ...get(3), ...V_LOAD, ...F64X2_PMAX,
    ...get(2), ...V_LOAD, ...get(1), ...V_LOAD, ...F64X2_PMAX,
    ...F64X2_PMAX,
    ...V_STORE,
    ...bump(0), ...bump(1), ...bump(2), ...bump(3), ...bump(4),
    ...br(0),
    ...END, ...END,
    ...get(0), ...get(6), ...LT_U, ...IF,
    ...get(0),
    ...scalarMax(1, 2), ...set(7),
    ...scalarMax(3, 4), ...set(8),
    ...get(7), ...get(8), ...get(7), ...get(8), ...F64_GT, ...SELECT,
    ...F64_STORE,
    ...END,
  ],
);

// pool4s(y, a, b, d, e, n: i32): maxPoolKernel's general loop over a 2x2 window, m = a; m = v > m ? v : m for
// v = b, d, e; v > m ? v : m = pmax(m, v). Locals: end = 6 (i32), m = 7 (f64).
const stepMax = (v: number) => [...get(v), ...F64_LOAD, ...get(7), ...get(v), ...F64_LOAD, ...get(7), ...F64_GT, ...SELECT, ...set(7)];
const POOL4S = func(
  [
    [1, I32],
    [1, F64],
  ],
  [
    ...get(0), ...get(5), ...i32(3), ...SHL, ...ADD, ...set(6),
    ...BLOCK, ...LOOP,
    ...get(0), ...i32(16), ...ADD, ...get(6), ...GT_U, ...brIf(1),
    ...get(0),
    ...get(1), ...V_LOAD, ...get(2), ...V_LOAD, ...F64X2_PMAX,
    ...get(3), ...V_LOAD, ...F64X2_PMAX,
    ...get(4), ...V_LOAD, ...F64X2_PMAX,
    ...V_STORE,
    ...bump(0), ...bump(1), ...bump(2), ...bump(3), ...bump(4),
    ...br(0),
    ...END, ...END,
    ...get(0), ...get(6), ...LT_U, ...IF,
    ...get(1), ...F64_LOAD, ...set(7),
    ...stepMax(2), ...stepMax(3), ...stepMax(4),
    ...get(0), ...get(7), ...F64_STORE,
    ...END,
  ],
);

/** The module: imports memory e.m; exports axpy (func 0), pool4 (func 1) and pool4s (func 2). */
export const COLUMN_WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vec([
    [0x60, ...vec([[I32], [I32], [I32], [F64]]), 0],
    [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), 0],
  ])),
  ...section(2, vec([[...name('e'), ...name('m'), 0x02, 0x00, 0x01]])),
  ...section(3, vec([[0], [1], [1]])),
  ...section(7, vec([
    [...name('axpy'), 0x00, 0],
    [...name('pool4'), 0x00, 1],
    [...name('pool4s'), 0x00, 2],
  ])),
  ...section(10, [3, ...AXPY, ...POOL4, ...POOL4S]),
]);

/**
 * Kernels over float64 buffers that are views of one arena. Indices are element indices into the given views.
 */
export interface ColumnKernels {
  readonly kind: 'wasm' | 'js';
  /** The arena, at least n values long. Views taken from an earlier arena may be detached after this call. */
  arena(n: number): Float64Array;
  /** y[yi + i] += x[xi + i] * w for i < n. */
  axpy(y: Float64Array, yi: number, x: Float64Array, xi: number, n: number, w: number): void;
  /** y[yi + i] = max(max(x[ai + i], x[bi + i]), max(x[di + i], x[ei + i])) with max(p, q) = p > q ? p : q. */
  pool4(y: Float64Array, yi: number, x: Float64Array, ai: number, bi: number, di: number, ei: number, n: number): void;
  /** The same window in maxPoolKernel's general order: m = a, then m = v > m ? v : m for v = b, d, e. */
  pool4s(y: Float64Array, yi: number, x: Float64Array, ai: number, bi: number, di: number, ei: number, n: number): void;
}

function jsKernels(): ColumnKernels {
  let mem = new Float64Array(0);
  return {
    kind: 'js',
    arena(n) {
      if (mem.length < n) mem = new Float64Array(n);
      return mem;
    },
    axpy(y, yi, x, xi, n, w) {
      const d = xi - yi;
      for (let i = yi, end = yi + n; i < end; i++) y[i] += x[i + d]! * w;
    },
    pool4(y, yi, x, ai, bi, di, ei, n) {
      for (let i = 0; i < n; i++) {
        const a = x[ai + i]!;
        const b = x[bi + i]!;
        const d = x[di + i]!;
        const e = x[ei + i]!;
        const m1 = a > b ? a : b;
        const m2 = d > e ? d : e;
        y[yi + i] = m1 > m2 ? m1 : m2;
      }
    },
    pool4s(y, yi, x, ai, bi, di, ei, n) {
      for (let i = 0; i < n; i++) {
        let m = x[ai + i]!;
        const b = x[bi + i]!;
        m = b > m ? b : m;
        const d = x[di + i]!;
        m = d > m ? d : m;
        const e = x[ei + i]!;
        m = e > m ? e : m;
        y[yi + i] = m;
      }
    },
  };
}

/** The part of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Memory: new (d: { initial: number }) => { buffer: ArrayBuffer; grow(pages: number): number };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: unknown };
}

function wasmKernels(): ColumnKernels | null {
  const WebAssembly = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    if (!WebAssembly || !WebAssembly.validate(COLUMN_WASM)) return null;
    const memory = new WebAssembly.Memory({ initial: 16 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(COLUMN_WASM), { e: { m: memory } });
    type Pool = (y: number, a: number, b: number, d: number, e: number, n: number) => void;
    const ex = inst.exports as { axpy: (y: number, x: number, n: number, w: number) => void; pool4: Pool; pool4s: Pool };
    let view = new Float64Array(memory.buffer);
    return {
      kind: 'wasm',
      arena(n) {
        const bytes = n * 8;
        if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
        if (view.buffer !== memory.buffer) view = new Float64Array(memory.buffer);
        return view;
      },
      axpy(y, yi, x, xi, n, w) {
        ex.axpy(y.byteOffset + 8 * yi, x.byteOffset + 8 * xi, n, w);
      },
      pool4(y, yi, x, ai, bi, di, ei, n) {
        const o = x.byteOffset;
        ex.pool4(y.byteOffset + 8 * yi, o + 8 * ai, o + 8 * bi, o + 8 * di, o + 8 * ei, n);
      },
      pool4s(y, yi, x, ai, bi, di, ei, n) {
        const o = x.byteOffset;
        ex.pool4s(y.byteOffset + 8 * yi, o + 8 * ai, o + 8 * bi, o + 8 * di, o + 8 * ei, n);
      },
    };
  } catch {
    return null;
  }
}

let wasmK: ColumnKernels | null | undefined;
let jsK: ColumnKernels | undefined;
/** The wasm kernels when this runtime has WebAssembly SIMD (Node 16.4+), else (or when asked) the JS ones. */
export function columnKernels(kind: 'wasm' | 'js' = 'wasm'): ColumnKernels {
  if (kind === 'wasm') {
    if (wasmK === undefined) wasmK = wasmKernels();
    if (wasmK) return wasmK;
  }
  return (jsK ??= jsKernels());
}
