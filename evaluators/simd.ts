/**
 * The two inner loops of the conv column kernels (columns.ts) as WebAssembly SIMD (f64x2), with a plain JS fallback
 * that computes the same values bit for bit:
 *
 *   axpy(y, x, n, w):         y[i] = y[i] + x[i] * w                       (i < n)
 *   pool4(y, a, b, d, e, n):  y[i] = max(max(a[i], b[i]), max(d[i], e[i]))  with max(p, q) = p > q ? p : q
 *   gather(y, rows, ws, m, n, bias): y[i] = (((bias + r0[i]·w0) + r1[i]·w1) + …) + r(m−1)[i]·w(m−1)   (i < n)
 *                            where rk is the row starting at byte address rows[k] and wk = ws[k] — one output unit of
 *                            a fully-connected layer for n images, its inputs added in the order given
 *   relu(y, n) → flag:        y[i] = (y[i] + |y[i]|)·0.5 (exactly max(y, 0) for finite y, as sparse.ts's finishRows
 *                            computes it); flag = 1 when the sum of the results is > 0 (some value is positive and
 *                            none is NaN, the same test as finishRows's sequential sum)
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
const GE_U = [0x4f];
const I32_LOAD = [0x28, 2, 0];
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

// gather(y, rows, ws, m, n: i32, bias: f64); locals: j = 6 (byte offset of the lanes), end = 7 (n·8),
// e = 8 (byte offset into rows, 4 per entry), eEnd = 9 (m·4), acc = 10 (v128), accS = 11 (f64), acc1 = 12 (v128),
// wv = 13 (v128), ra = 14 (i32), acc2 = 15, acc3 = 16 (v128). Per lane: acc = bias, then acc = acc + r_k[lane]·w_k
// for k = 0 .. m−1 (f64x2 mul then add: scalar rounding). Eight lanes per pass while they last (each row address
// and weight read once for them), then four, two, one.
const rowAt = [...get(1), ...get(8), ...ADD, ...I32_LOAD, ...get(6), ...ADD];
const weightAt = [...get(2), ...get(8), ...get(8), ...ADD, ...ADD, ...F64_LOAD];
const vLoadAt = (off: number) => [...simd(0x00), 4, ...uleb(off)];
const vStoreAt = (off: number) => [...simd(0x0b), 4, ...uleb(off)];
const V_LOAD16 = vLoadAt(16);
const V_STORE16 = vStoreAt(16);
/** acc_local = acc_local + v128.load(ra + off) · wv */
const madd = (acc: number, off: number) => [...get(acc), ...get(14), ...vLoadAt(off), ...get(13), ...F64X2_MUL, ...F64X2_ADD, ...set(acc)];
const storeAcc = (acc: number, off: number) => [...get(0), ...get(6), ...ADD, ...get(acc), ...vStoreAt(off)];
const GATHER = func(
  [
    [4, I32],
    [1, V128],
    [1, F64],
    [2, V128],
    [1, I32],
    [2, V128],
  ],
  [
    ...get(4), ...i32(3), ...SHL, ...set(7),
    ...get(3), ...i32(2), ...SHL, ...set(9),
    // Eight lanes per pass.
    ...BLOCK, ...LOOP,
    ...get(6), ...i32(64), ...ADD, ...get(7), ...GT_U, ...brIf(1),
    ...get(5), ...F64X2_SPLAT, ...set(10),
    ...get(5), ...F64X2_SPLAT, ...set(12),
    ...get(5), ...F64X2_SPLAT, ...set(15),
    ...get(5), ...F64X2_SPLAT, ...set(16),
    ...i32(0), ...set(8),
    ...BLOCK, ...LOOP,
    ...get(8), ...get(9), ...GE_U, ...brIf(1),
    ...rowAt, ...set(14),
    ...weightAt, ...F64X2_SPLAT, ...set(13),
    ...madd(10, 0), ...madd(12, 16), ...madd(15, 32), ...madd(16, 48),
    ...get(8), ...i32(4), ...ADD, ...set(8),
    ...br(0),
    ...END, ...END,
    ...storeAcc(10, 0), ...storeAcc(12, 16), ...storeAcc(15, 32), ...storeAcc(16, 48),
    ...get(6), ...i32(64), ...ADD, ...set(6),
    ...br(0),
    ...END, ...END,
    // Four lanes per pass.
    ...BLOCK, ...LOOP,
    ...get(6), ...i32(32), ...ADD, ...get(7), ...GT_U, ...brIf(1),
    ...get(5), ...F64X2_SPLAT, ...set(10),
    ...get(5), ...F64X2_SPLAT, ...set(12),
    ...i32(0), ...set(8),
    ...BLOCK, ...LOOP,
    ...get(8), ...get(9), ...GE_U, ...brIf(1),
    ...rowAt, ...set(14),
    ...weightAt, ...F64X2_SPLAT, ...set(13),
    ...get(10), ...get(14), ...V_LOAD, ...get(13), ...F64X2_MUL, ...F64X2_ADD, ...set(10),
    ...get(12), ...get(14), ...V_LOAD16, ...get(13), ...F64X2_MUL, ...F64X2_ADD, ...set(12),
    ...get(8), ...i32(4), ...ADD, ...set(8),
    ...br(0),
    ...END, ...END,
    ...get(0), ...get(6), ...ADD, ...get(10), ...V_STORE,
    ...get(0), ...get(6), ...ADD, ...get(12), ...V_STORE16,
    ...get(6), ...i32(32), ...ADD, ...set(6),
    ...br(0),
    ...END, ...END,
    // Two lanes.
    ...BLOCK, ...LOOP,
    ...get(6), ...i32(16), ...ADD, ...get(7), ...GT_U, ...brIf(1),
    ...get(5), ...F64X2_SPLAT, ...set(10),
    ...i32(0), ...set(8),
    ...BLOCK, ...LOOP,
    ...get(8), ...get(9), ...GE_U, ...brIf(1),
    ...get(10), ...rowAt, ...V_LOAD, ...weightAt, ...F64X2_SPLAT, ...F64X2_MUL, ...F64X2_ADD, ...set(10),
    ...get(8), ...i32(4), ...ADD, ...set(8),
    ...br(0),
    ...END, ...END,
    ...get(0), ...get(6), ...ADD, ...get(10), ...V_STORE,
    ...get(6), ...i32(16), ...ADD, ...set(6),
    ...br(0),
    ...END, ...END,
    ...get(6), ...get(7), ...LT_U, ...IF,
    ...get(5), ...set(11),
    ...i32(0), ...set(8),
    ...BLOCK, ...LOOP,
    ...get(8), ...get(9), ...GE_U, ...brIf(1),
    ...get(11), ...rowAt, ...F64_LOAD, ...weightAt, ...F64_MUL, ...F64_ADD, ...set(11),
    ...get(8), ...i32(4), ...ADD, ...set(8),
    ...br(0),
    ...END, ...END,
    ...get(0), ...get(6), ...ADD, ...get(11), ...F64_STORE,
    ...END,
  ],
);

// relu(y, n: i32) → i32; locals: end = 2 (i32), acc = 3 (v128), s = 4 (f64).
const F64X2_ABS = simd(0xec);
const F64_ABS = [0x99];
const f64c = (v: number) => [0x44, ...new Uint8Array(new Float64Array([v]).buffer)];
const lane = (k: number) => [...simd(0x21), k];
const RELU = func(
  [
    [1, I32],
    [1, V128],
    [1, F64],
  ],
  [
    ...get(0), ...get(1), ...i32(3), ...SHL, ...ADD, ...set(2),
    ...BLOCK, ...LOOP,
    ...get(0), ...i32(16), ...ADD, ...get(2), ...GT_U, ...brIf(1),
    ...get(0),
    ...get(0), ...V_LOAD, ...get(0), ...V_LOAD, ...F64X2_ABS, ...F64X2_ADD, ...f64c(0.5), ...F64X2_SPLAT, ...F64X2_MUL,
    ...V_STORE,
    ...get(3), ...get(0), ...V_LOAD, ...F64X2_ADD, ...set(3),
    ...bump(0),
    ...br(0),
    ...END, ...END,
    ...get(3), ...lane(0), ...get(3), ...lane(1), ...F64_ADD, ...set(4),
    ...get(0), ...get(2), ...LT_U, ...IF,
    ...get(0),
    ...get(0), ...F64_LOAD, ...get(0), ...F64_LOAD, ...F64_ABS, ...F64_ADD, ...f64c(0.5), ...F64_MUL,
    ...F64_STORE,
    ...get(4), ...get(0), ...F64_LOAD, ...F64_ADD, ...set(4),
    ...END,
    ...get(4), ...f64c(0), ...F64_GT,
  ],
);

/** The module: imports memory e.m; exports axpy (func 0), pool4 (func 1), pool4s (func 2), gather (func 3), relu (func 4). */
export const COLUMN_WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vec([
    [0x60, ...vec([[I32], [I32], [I32], [F64]]), 0],
    [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), 0],
    [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [F64]]), 0],
    [0x60, ...vec([[I32], [I32]]), ...vec([[I32]])],
  ])),
  ...section(2, vec([[...name('e'), ...name('m'), 0x02, 0x00, 0x01]])),
  ...section(3, vec([[0], [1], [1], [2], [3]])),
  ...section(7, vec([
    [...name('axpy'), 0x00, 0],
    [...name('pool4'), 0x00, 1],
    [...name('pool4s'), 0x00, 2],
    [...name('gather'), 0x00, 3],
    [...name('relu'), 0x00, 4],
  ])),
  ...section(10, [5, ...AXPY, ...POOL4, ...POOL4S, ...GATHER, ...RELU]),
]);

/**
 * Kernels over float64 buffers that are views of one arena. Indices are element indices into the given views.
 */
export interface ColumnKernels {
  readonly kind: 'wasm' | 'js';
  /**
   * The arena, at least n values long (after the pinned region). Views taken from an earlier arena or pin may be
   * detached after this call.
   */
  arena(n: number): Float64Array;
  /**
   * A region before the arena whose contents outlive calls while `key` and n stay the same: `fill` writes it when
   * they change. Returns its view (detached by a later arena() that grows the memory: call pin again, it does not
   * refill). arena() never overlaps it.
   */
  pin(key: object, n: number, fill: (view: Float64Array) => void): Float64Array;
  /**
   * wasm only: gather over byte addresses in the kernels' memory (see the module comment): y (f64 × n), rows (i32 × m,
   * each the byte address of an f64 row), ws (f64 × m).
   */
  gather?(y: number, rows: number, ws: number, m: number, n: number, bias: number): void;
  /** wasm only: relu in place over n f64 at byte address y; returns 1 when their sum is > 0 (see the module comment). */
  relu?(y: number, n: number): number;
  /** y[yi + i] += x[xi + i] * w for i < n. */
  axpy(y: Float64Array, yi: number, x: Float64Array, xi: number, n: number, w: number): void;
  /** y[yi + i] = max(max(x[ai + i], x[bi + i]), max(x[di + i], x[ei + i])) with max(p, q) = p > q ? p : q. */
  pool4(y: Float64Array, yi: number, x: Float64Array, ai: number, bi: number, di: number, ei: number, n: number): void;
  /** The same window in maxPoolKernel's general order: m = a, then m = v > m ? v : m for v = b, d, e. */
  pool4s(y: Float64Array, yi: number, x: Float64Array, ai: number, bi: number, di: number, ei: number, n: number): void;
}

function jsKernels(): ColumnKernels {
  let mem = new Float64Array(0);
  let pinned: { key: object; view: Float64Array } | null = null;
  return {
    kind: 'js',
    arena(n) {
      if (mem.length < n) mem = new Float64Array(n);
      return mem;
    },
    pin(key, n, fill) {
      if (!pinned || pinned.key !== key || pinned.view.length !== n) {
        pinned = { key, view: new Float64Array(n) };
        fill(pinned.view);
      }
      return pinned.view;
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
    const ex = inst.exports as {
      axpy: (y: number, x: number, n: number, w: number) => void;
      pool4: Pool;
      pool4s: Pool;
      gather: (y: number, rows: number, ws: number, m: number, n: number, bias: number) => void;
      relu: (y: number, n: number) => number;
    };
    let view = new Float64Array(memory.buffer);
    // The pinned region is [0, pinLen) values; the arena starts after it, 16-byte aligned.
    let pinKey: object | null = null;
    let pinLen = 0;
    const ensure = (values: number): Float64Array => {
      const bytes = values * 8;
      if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
      if (view.buffer !== memory.buffer) view = new Float64Array(memory.buffer);
      return view;
    };
    const arenaStart = (): number => pinLen + (pinLen & 1);
    return {
      kind: 'wasm',
      arena(n) {
        const start = arenaStart();
        return ensure(start + n).subarray(start, start + n);
      },
      pin(key, n, fill) {
        if (pinKey !== key || pinLen !== n) {
          pinKey = key;
          pinLen = n;
          fill(ensure(n).subarray(0, n));
        }
        return ensure(n).subarray(0, n);
      },
      gather(y, rows, ws, m, n, bias) {
        ex.gather(y, rows, ws, m, n, bias);
      },
      relu(y, n) {
        return ex.relu(y, n);
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
