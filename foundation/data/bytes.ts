/**
 * Typed arrays from raw file bytes, shared by the IDX and NPY readers. The bytes are always copied into a fresh,
 * aligned buffer (file and zip-entry offsets need not be multiples of the element size) and converted to the
 * host's byte order, so the result is an ordinary typed array owned by the caller.
 */

/** Element kinds the readers understand: unsigned/signed integers and floats of the given byte width. */
export type ElementKind = 'u1' | 'i1' | 'u2' | 'i2' | 'u4' | 'i4' | 'i8' | 'f4' | 'f8';

/** What readers hand on: every kind but int64 as its own typed array; int64 as Float64Array (see typedFromBytes). */
export type NumericArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

export const ELEMENT_SIZE: Record<ElementKind, number> = { u1: 1, i1: 1, u2: 2, i2: 2, u4: 4, i4: 4, i8: 8, f4: 4, f8: 8 };

export function isFloatKind(kind: ElementKind): boolean {
  return kind === 'f4' || kind === 'f8';
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Copies `bytes` (a whole number of elements of `kind`, stored little- or big-endian) into a typed array in host
 * byte order. int64 values become doubles: exact up to 2^53, which covers every label and pixel value that the
 * loaders accept (larger values are refused there anyway).
 */
export function typedFromBytes(bytes: Uint8Array, kind: ElementKind, littleEndian: boolean): NumericArray {
  const size = ELEMENT_SIZE[kind];
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  if (size > 1 && littleEndian !== HOST_LITTLE_ENDIAN) {
    // Reverse each element's bytes in place (plain index swaps: no per-element allocations on large files).
    for (let o = 0; o < copy.length; o += size) {
      for (let a = o, b = o + size - 1; a < b; a++, b--) {
        const t = copy[a]!;
        copy[a] = copy[b]!;
        copy[b] = t;
      }
    }
  }
  const buf = copy.buffer;
  switch (kind) {
    case 'u1':
      return copy;
    case 'i1':
      return new Int8Array(buf);
    case 'u2':
      return new Uint16Array(buf);
    case 'i2':
      return new Int16Array(buf);
    case 'u4':
      return new Uint32Array(buf);
    case 'i4':
      return new Int32Array(buf);
    case 'f4':
      return new Float32Array(buf);
    case 'f8':
      return new Float64Array(buf);
    case 'i8': {
      const big = new BigInt64Array(buf);
      const out = new Float64Array(big.length);
      for (let i = 0; i < big.length; i++) out[i] = Number(big[i]!);
      return out;
    }
  }
}
