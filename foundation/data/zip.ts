/**
 * A minimal zip reader for .npz files (NumPy's np.savez / np.savez_compressed): the end-of-central-directory
 * record locates the central directory, whose records give each entry's method, sizes, CRC-32 and local header;
 * the local header gives where the entry's data starts. Entries may be stored (method 0) or deflated (method 8).
 * Sizes come from the central directory: NumPy writes local headers in zip64 form (sizes 0xFFFFFFFF with the
 * real ones in an extra field) even for small arrays, while its central directory holds the real sizes.
 * Archives that need zip64 in the central directory (over 4 GiB or 65,535 entries), encrypted entries and other
 * methods are refused with a one-line UsageError naming the archive (and the entry).
 */
import * as zlib from 'node:zlib';
import { UsageError } from '../errors.js';

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export interface ZipArchive {
  /** The archive's name in error messages. */
  name: string;
  entries: Map<string, ZipEntry>;
  /** The uncompressed bytes of an entry (CRC-checked); throws a UsageError naming the archive and entry. */
  read(entry: string): Uint8Array;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (the zip/gzip polynomial): node:zlib's when this Node has it, else a table-driven one. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(data) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Finds the end-of-central-directory record, scanning back over a trailing comment of up to 65,535 bytes. */
function findEocd(buf: Uint8Array, view: DataView, name: string): number {
  const stop = Math.max(0, buf.length - 22 - 0xffff);
  for (let o = buf.length - 22; o >= stop; o--) {
    if (view.getUint32(o, true) === EOCD_SIG) return o;
  }
  throw new UsageError(`${name}: not a zip file (no end-of-central-directory record)`);
}

/** Parses a zip archive held in memory; `name` is used in error messages. */
export function parseZip(buf: Uint8Array, name: string): ZipArchive {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 22) throw new UsageError(`${name}: not a zip file (only ${buf.length} bytes)`);
  const eocd = findEocd(buf, view, name);
  const count = view.getUint16(eocd + 10, true);
  const cdSize = view.getUint32(eocd + 12, true);
  const cdOffset = view.getUint32(eocd + 16, true);
  const zip64Locator = eocd >= 20 && view.getUint32(eocd - 20, true) === ZIP64_LOCATOR_SIG;
  if (zip64Locator || count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new UsageError(`${name}: zip64 archives are not supported`);
  }
  if (cdOffset + cdSize > eocd) throw new UsageError(`${name}: truncated zip (central directory outside the file)`);
  const entries = new Map<string, ZipEntry>();
  let o = cdOffset;
  for (let i = 0; i < count; i++) {
    if (o + 46 > eocd || view.getUint32(o, true) !== CENTRAL_SIG) throw new UsageError(`${name}: corrupt zip central directory (record ${i})`);
    const nameLen = view.getUint16(o + 28, true);
    const extraLen = view.getUint16(o + 30, true);
    const commentLen = view.getUint16(o + 32, true);
    if (o + 46 + nameLen > eocd) throw new UsageError(`${name}: corrupt zip central directory (record ${i})`);
    const entry: ZipEntry = {
      name: Buffer.from(buf.buffer, buf.byteOffset + o + 46, nameLen).toString('utf8'),
      flags: view.getUint16(o + 8, true),
      method: view.getUint16(o + 10, true),
      crc32: view.getUint32(o + 16, true),
      compressedSize: view.getUint32(o + 20, true),
      size: view.getUint32(o + 24, true),
      localHeaderOffset: view.getUint32(o + 42, true),
    };
    if (entry.compressedSize === 0xffffffff || entry.size === 0xffffffff || entry.localHeaderOffset === 0xffffffff) {
      throw new UsageError(`${name}[${entry.name}]: zip64 entries are not supported`);
    }
    entries.set(entry.name, entry);
    o += 46 + nameLen + extraLen + commentLen;
  }
  return { name, entries, read: (entryName) => readEntry(buf, view, name, entries, entryName) };
}

function readEntry(buf: Uint8Array, view: DataView, archive: string, entries: Map<string, ZipEntry>, entryName: string): Uint8Array {
  const where = `${archive}[${entryName}]`;
  const e = entries.get(entryName);
  if (!e) throw new UsageError(`${archive}: no entry ${entryName} (entries: ${[...entries.keys()].join(', ') || 'none'})`);
  if (e.flags & 1) throw new UsageError(`${where}: encrypted zip entries are not supported`);
  if (e.method !== 0 && e.method !== 8) {
    throw new UsageError(`${where}: unsupported zip compression method ${e.method} (supported: 0 stored, 8 deflated)`);
  }
  const h = e.localHeaderOffset;
  if (h + 30 > buf.length || view.getUint32(h, true) !== LOCAL_SIG) throw new UsageError(`${where}: corrupt zip (bad local header)`);
  const start = h + 30 + view.getUint16(h + 26, true) + view.getUint16(h + 28, true);
  const end = start + e.compressedSize;
  if (end > buf.length) throw new UsageError(`${where}: truncated zip (entry data needs ${end} bytes, archive has ${buf.length})`);
  const raw = buf.subarray(start, end);
  let data: Uint8Array;
  if (e.method === 0) {
    data = raw;
  } else {
    try {
      data = zlib.inflateRawSync(raw);
    } catch {
      throw new UsageError(`${where}: corrupt deflate data`);
    }
  }
  if (data.length !== e.size) throw new UsageError(`${where}: entry is ${data.length} bytes, the zip directory says ${e.size}`);
  if (crc32(data) !== e.crc32) throw new UsageError(`${where}: CRC-32 mismatch (corrupt entry)`);
  return data;
}
