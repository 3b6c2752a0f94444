/**
 * IDX file reader (the MNIST format): big-endian magic 0x00 0x00 <type> <ndims>, then ndims uint32 dimensions,
 * then the data. Raw or gzipped. Every mismatch is a UsageError naming the file and the problem.
 */
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { UsageError } from '../errors.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses an IDX buffer of unsigned bytes (type 0x08). `name` is used in error messages. */
export function parseIdx(buf: Uint8Array, name: string, expectDims?: number): IdxArray {
  if (buf.length < 4) throw new UsageError(`${name}: not an IDX file (only ${buf.length} bytes)`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new UsageError(`${name}: not an IDX file (bad magic number)`);
  if (buf[2] !== 0x08) throw new UsageError(`${name}: unsupported IDX element type 0x${buf[2]!.toString(16)} (expected unsigned bytes 0x08)`);
  const ndims = buf[3]!;
  if (ndims < 1 || ndims > 4) throw new UsageError(`${name}: bad IDX dimension count ${ndims}`);
  if (expectDims !== undefined && ndims !== expectDims) throw new UsageError(`${name}: expected ${expectDims} dimensions, file has ${ndims}`);
  const header = 4 + 4 * ndims;
  if (buf.length < header) throw new UsageError(`${name}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== header + count) {
    throw new UsageError(`${name}: file length ${buf.length} does not match its header (dims ${dims.join('x')} need ${header + count} bytes)`);
  }
  // A plain Uint8Array view, not a Node Buffer (whose slice() is a view and whose constructor is deprecated).
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, count) };
}

/** Reads an IDX file, gunzipping when it is gzipped (by magic bytes, not by name). */
export function readIdx(path: string, expectDims?: number): IdxArray {
  if (!existsSync(path)) throw new UsageError(`missing data file ${path}`);
  let buf: Uint8Array = readFileSync(path);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch {
      throw new UsageError(`${path}: corrupt gzip data`);
    }
  }
  return parseIdx(buf, path, expectDims);
}
