/**
 * Serialises a JSON-like value that contains typed arrays: `state.json` holds the structure with each typed array
 * replaced by a reference into `state.bin`. Used for checkpoints (trainer state, masks, RNG and optimiser state).
 */
type Typed = Float32Array | Float64Array | Uint8Array | Int32Array | Uint32Array;
const CTORS = { Float32Array, Float64Array, Uint8Array, Int32Array, Uint32Array } as const;
type CtorName = keyof typeof CTORS;

interface BinRef {
  $bin: CtorName;
  offset: number;
  length: number;
}

function isTyped(v: unknown): v is Typed {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

export function encodeState(value: unknown): { json: string; bin: Uint8Array } {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const walk = (v: unknown): unknown => {
    if (isTyped(v)) {
      const name = v.constructor.name as CtorName;
      // Align every array to 8 bytes so it can be viewed in place.
      const pad = (8 - (offset % 8)) % 8;
      if (pad) {
        chunks.push(new Uint8Array(pad));
        offset += pad;
      }
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice();
      chunks.push(bytes);
      const ref: BinRef = { $bin: name, offset, length: v.length };
      offset += bytes.length;
      return ref;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = walk(x);
      return o;
    }
    return v;
  };
  const tree = walk(value);
  const bin = new Uint8Array(offset);
  let o = 0;
  for (const c of chunks) {
    bin.set(c, o);
    o += c.length;
  }
  return { json: JSON.stringify(tree), bin };
}

export function decodeState<T>(json: string, bin: Uint8Array): T {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const r = v as Partial<BinRef>;
      if (typeof r.$bin === 'string' && typeof r.offset === 'number' && typeof r.length === 'number') {
        const C = CTORS[r.$bin];
        const bytes = bin.slice(r.offset, r.offset + r.length * C.BYTES_PER_ELEMENT);
        return new C(bytes.buffer, 0, r.length);
      }
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = walk(x);
      return o;
    }
    return v;
  };
  return walk(JSON.parse(json)) as T;
}
