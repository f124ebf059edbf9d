/**
 * HPACK (RFC 7541) for the frame-level HTTP/2 relay: a decoder with the dynamic table, and an encoder
 * that never indexes so the peer's SETTINGS_HEADER_TABLE_SIZE never matters.
 *
 * Both sit on the path of every proxied request, so they work on octets with integer loops: strings are
 * latin1 (one char per octet, any octet round-trips), Huffman decodes into one reused scratch buffer,
 * and the dynamic table is a ring of parallel name/value arrays (no object per entry).
 *
 * The decoder also judges each table entry once with fieldProblem (RFC 9113 8.2), so that the
 * per-request checks need to judge only literals and the entries that failed (`unchecked`).
 */
import { MeshletError } from '../../../src/common/errors.js';
import { fieldProblem } from './fields.js';
import {
  decodeHuffman,
  describeHuffmanError,
  maxHuffmanDecodedLength,
} from './huffman.js';

/** A malformed header block: the connection must end with COMPRESSION_ERROR. Message names what was wrong. */
export class HpackError extends MeshletError {
  constructor(message: string) {
    super('MESHLET_HPACK', message);
  }
}

/** A well-formed header block whose fields add up to more than allowed; the table stays in sync. */
export class HeaderListTooLargeError extends HpackError {
  constructor(readonly maxListBytes: number) {
    super(`header list larger than ${maxListBytes} bytes`);
  }
}

/** RFC 7540 6.5.2 default SETTINGS_HEADER_TABLE_SIZE. */
export const DEFAULT_HEADER_TABLE_SIZE_BYTES = 4096;
/** RFC 7541 4.1: each entry costs its name and value octets plus this overhead. */
export const ENTRY_OVERHEAD_BYTES = 32;
/** Integers we accept stay below 2^31 (RFC 7541 5.1 lets us bound them; every real value fits). */
const MAX_INTEGER = 0x7fffffff;
/** Continuation octets carry 7 bits each; 5 of them already exceed 2^31 past any prefix. */
const MAX_INTEGER_SHIFT_BITS = 28;
/** Initial Huffman scratch size; it grows to the longest string seen. */
const INITIAL_SCRATCH_BYTES = 1024;

/**
 * Buffer's native latin1 slice/write (present on every Buffer since Node 0.x, used by Node's own
 * toString/write). Calling them directly skips the encoding dispatch, which costs about as much as
 * the copy itself for header-sized strings.
 */
interface Latin1Buffer {
  latin1Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number, length: number): number;
}

function latin1Slice(bytes: Buffer, start: number, end: number): string {
  return (bytes as unknown as Latin1Buffer).latin1Slice(start, end);
}

/** RFC 7541 Appendix A, index 1..61 at positions 0..60. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''],
  ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''],
  ['content-length', ''], ['content-location', ''], ['content-range', ''], ['content-type', ''],
  ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''],
  ['if-match', ''], ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''],
  ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''],
  ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''],
  ['retry-after', ''], ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''],
  ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length;
/** Index 0 is unused so HPACK indexes apply directly. */
const STATIC_NAMES: readonly string[] = ['', ...STATIC_TABLE.map(([name]) => name)];
const STATIC_VALUES: readonly string[] = ['', ...STATIC_TABLE.map(([, value]) => value)];
/** 1 where the static entry passes fieldProblem (all but transfer-encoding, which HTTP/2 forbids). */
const STATIC_IS_CLEAN = Uint8Array.from(STATIC_NAMES, (name, i) => (i > 0 && fieldProblem(name, STATIC_VALUES[i]!) === undefined ? 1 : 0));
/** Name -> its lowest static index; entries sharing a name are adjacent, so full matches scan from there. */
const STATIC_NAME_INDEX: ReadonlyMap<string, number> = (() => {
  const index = new Map<string, number>();
  for (let i = STATIC_COUNT; i >= 1; i--) index.set(STATIC_NAMES[i]!, i);
  return index;
})();

// First-octet patterns (RFC 7541 6.1-6.3).
const INDEXED_FIELD = 0x80;
const LITERAL_WITH_INDEXING = 0x40;
const TABLE_SIZE_UPDATE = 0x20;
/** Literal never indexed (RFC 7541 6.2.3): 0001 with a 4-bit name index. */
const NEVER_INDEXED = 0x10;
const HUFFMAN_FLAG = 0x80;

/**
 * Decodes header blocks of one connection direction, keeping the peer's dynamic table in step.
 * After decode() throws for a malformed block the connection is dead (COMPRESSION_ERROR) and the
 * decoder refuses more work; the one exception is the maxListBytes error, thrown with the table intact.
 */
export class HpackDecoder {
  private readonly maxTableSize: number;
  /** The size the peer chose with its last size update (at most maxTableSize). */
  private currentMaxSize: number;
  private size = 0;
  private count = 0;
  /** Ring slot of the newest entry (dynamic index 0, HPACK index 62). */
  private newest = 0;
  /** Ring of parallel arrays; the length is a power of two so wrapping is a mask, not a division. */
  private readonly names: string[];
  private readonly values: string[];
  /** 1 where the entry passed fieldProblem when it was inserted. */
  private readonly isClean: Uint8Array;
  private readonly slotMask: number;
  private scratch = Buffer.allocUnsafe(INITIAL_SCRATCH_BYTES);
  private cursor = 0;
  /** Start and end (exclusive) of the block being decoded, in the buffer decodeRange was given. */
  private start = 0;
  private end = 0;
  private isBroken = false;

  /** maxTableSize: our SETTINGS_HEADER_TABLE_SIZE (default 4096); size updates above it are errors. */
  constructor(maxTableSize: number = DEFAULT_HEADER_TABLE_SIZE_BYTES) {
    this.maxTableSize = maxTableSize;
    this.currentMaxSize = maxTableSize;
    const maxEntries = Math.floor(maxTableSize / ENTRY_OVERHEAD_BYTES) + 1;
    const capacity = 2 ** Math.ceil(Math.log2(maxEntries));
    this.slotMask = capacity - 1;
    this.names = new Array<string>(capacity).fill('');
    this.values = new Array<string>(capacity).fill('');
    this.isClean = new Uint8Array(capacity);
  }

  /** Octets the dynamic table holds now (RFC 7541 4.1 accounting). */
  get tableSize(): number {
    return this.size;
  }

  /** Dynamic entry `i` (0 = newest, i.e. HPACK index 62 + i) as [name, value], or undefined past the end. */
  tableEntry(i: number): readonly [string, string] | undefined {
    if (i < 0 || i >= this.count) return undefined;
    const slot = (this.newest + i) & this.slotMask;
    return [this.names[slot]!, this.values[slot]!];
  }

  /**
   * Decodes one complete header block (HEADERS + CONTINUATION payloads joined, padding and priority
   * stripped) and appends [name, value, ...] to `out`. Throws HpackError on anything malformed.
   * `maxListBytes` (RFC 7540 6.5.2 accounting) is checked only after the whole block is decoded, so the
   * dynamic table stays in sync and the connection can survive by refusing just that stream.
   * `neverIndexed`, when given, receives the position in `out` (of the name) of every field the
   * sender marked never-indexed, which a relay must forward with the same marking (RFC 7541 6.2.3).
   * `unchecked`, when given, receives the position in `out` of every field whose content the
   * fields.ts checks must still judge: literals without indexing, and fields taken from (or just
   * put into) a table entry that failed fieldProblem. Fields from entries that passed are left out.
   */
  decode(block: Buffer | Uint8Array, out: string[], maxListBytes: number = Infinity, neverIndexed?: number[], unchecked?: number[]): void {
    const bytes = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
    this.decodeRange(bytes, 0, bytes.length, out, maxListBytes, neverIndexed, unchecked);
  }

  /**
   * decode() of the block at bytes[start, end), so that a relay decodes in place from the buffer a
   * frame arrived in (no view object per header block). Positions in `neverIndexed` and `unchecked`
   * are positions in `out`.
   */
  decodeRange(bytes: Buffer, start: number, end: number, out: string[], maxListBytes: number, neverIndexed?: number[], unchecked?: number[]): void {
    if (this.isBroken) throw new HpackError('decoder unusable after an earlier malformed header block');
    this.isBroken = true;
    this.start = start;
    this.end = end;
    let listBytes = 0;
    let sawField = false;
    this.cursor = start;
    while (this.cursor < end) {
      const first = bytes[this.cursor]!;
      let name: string;
      let value: string;
      if ((first & INDEXED_FIELD) !== 0) {
        const index = this.readInteger(bytes, 7);
        if (index === 0) throw new HpackError('indexed header field with index 0');
        if (index <= STATIC_COUNT) {
          name = STATIC_NAMES[index]!;
          value = STATIC_VALUES[index]!;
          if (STATIC_IS_CLEAN[index] === 0) unchecked?.push(out.length);
        } else {
          const slot = this.slotOf(index);
          name = this.names[slot]!;
          value = this.values[slot]!;
          if (this.isClean[slot] === 0) unchecked?.push(out.length);
        }
      } else if ((first & LITERAL_WITH_INDEXING) !== 0) {
        name = this.readLiteralName(bytes, 6);
        value = this.readString(bytes);
        const isClean = fieldProblem(name, value) === undefined;
        if (!isClean) unchecked?.push(out.length);
        this.insert(name, value, isClean);
      } else if ((first & TABLE_SIZE_UPDATE) !== 0) {
        if (sawField) throw new HpackError('dynamic table size update after a header field');
        this.updateMaxSize(this.readInteger(bytes, 5));
        continue;
      } else {
        // Without indexing (0000) and never indexed (0001): the latter is reported by position.
        if ((first & NEVER_INDEXED) !== 0 && neverIndexed !== undefined) neverIndexed.push(out.length);
        unchecked?.push(out.length);
        name = this.readLiteralName(bytes, 4);
        value = this.readString(bytes);
      }
      sawField = true;
      listBytes += name.length + value.length + ENTRY_OVERHEAD_BYTES;
      out.push(name, value);
    }
    this.isBroken = false;
    if (listBytes > maxListBytes) throw new HeaderListTooLargeError(maxListBytes);
  }

  private readLiteralName(bytes: Buffer, prefixBits: number): string {
    const index = this.readInteger(bytes, prefixBits);
    return index === 0 ? this.readString(bytes) : this.nameAt(index);
  }

  /** RFC 7541 5.1; reads at this.cursor and advances it. */
  private readInteger(bytes: Buffer, prefixBits: number): number {
    const end = this.end;
    const prefixMax = (1 << prefixBits) - 1;
    let value = bytes[this.cursor++]! & prefixMax;
    if (value < prefixMax) return value;
    for (let shift = 0; ; shift += 7) {
      if (this.cursor >= end) throw new HpackError('truncated integer at the end of the header block');
      if (shift > MAX_INTEGER_SHIFT_BITS) throw new HpackError(`integer longer than 2^31 at octet ${this.cursor - this.start}`);
      const octet = bytes[this.cursor++]!;
      value += (octet & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new HpackError(`integer larger than 2^31-1 at octet ${this.cursor - 1 - this.start}`);
      if ((octet & 0x80) === 0) return value;
    }
  }

  /** RFC 7541 5.2: a length-prefixed string, raw or Huffman-coded; reads at this.cursor. */
  private readString(bytes: Buffer): string {
    if (this.cursor >= this.end) throw new HpackError('truncated header block: string expected');
    const isHuffman = (bytes[this.cursor]! & HUFFMAN_FLAG) !== 0;
    const length = this.readInteger(bytes, 7);
    const start = this.cursor;
    const stop = start + length;
    if (stop > this.end) {
      throw new HpackError(`truncated string: length ${length} but ${this.end - start} octets left`);
    }
    this.cursor = stop;
    if (!isHuffman) return latin1Slice(bytes, start, stop);
    const needed = maxHuffmanDecodedLength(length);
    if (this.scratch.length < needed) this.scratch = Buffer.allocUnsafe(Math.max(needed, this.scratch.length * 2));
    const decoded = decodeHuffman(bytes, start, stop, this.scratch);
    if (decoded < 0) throw new HpackError(describeHuffmanError(decoded));
    return latin1Slice(this.scratch, 0, decoded);
  }

  private nameAt(index: number): string {
    if (index <= STATIC_COUNT) return STATIC_NAMES[index]!;
    return this.names[this.slotOf(index)]!;
  }

  private slotOf(index: number): number {
    const dynamicIndex = index - STATIC_COUNT - 1;
    if (dynamicIndex >= this.count) {
      throw new HpackError(`index ${index} past the table (${STATIC_COUNT} static + ${this.count} dynamic entries)`);
    }
    return (this.newest + dynamicIndex) & this.slotMask;
  }

  private updateMaxSize(size: number): void {
    if (size > this.maxTableSize) {
      throw new HpackError(`dynamic table size update to ${size} above the maximum ${this.maxTableSize}`);
    }
    this.currentMaxSize = size;
    this.evictUntilFits(0);
  }

  /** RFC 7541 4.4: evict from the oldest end; an entry larger than the table empties it and is dropped. */
  private insert(name: string, value: string, isClean: boolean): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD_BYTES;
    if (entrySize > this.currentMaxSize) {
      this.evictUntilFits(this.currentMaxSize);
      return;
    }
    this.evictUntilFits(entrySize);
    this.newest = (this.newest - 1) & this.slotMask;
    this.names[this.newest] = name;
    this.values[this.newest] = value;
    this.isClean[this.newest] = isClean ? 1 : 0;
    this.count++;
    this.size += entrySize;
  }

  private evictUntilFits(incomingSize: number): void {
    while (this.count > 0 && this.size + incomingSize > this.currentMaxSize) {
      const oldest = (this.newest + this.count - 1) & this.slotMask;
      this.size -= this.names[oldest]!.length + this.values[oldest]!.length + ENTRY_OVERHEAD_BYTES;
      this.names[oldest] = '';
      this.values[oldest] = '';
      this.count--;
    }
  }
}

/** Octets an HPACK integer with a 7-bit (or smaller) prefix may take for values below 2^31. */
const MAX_INTEGER_OCTETS = 6;

/**
 * Encodes header blocks without a dynamic table: static full matches become one octet, everything
 * else a literal without indexing (static name index when there is one), raw latin1 strings;
 * fields the sender marked never-indexed keep that marking.
 */
export class HpackEncoder {
  /** An upper bound of encode()'s output size for `headers` (flat [name, value, ...] array). */
  static maxEncodedLength(headers: readonly string[]): number {
    let total = 0;
    for (let i = 0; i < headers.length; i += 2) {
      total += 3 * MAX_INTEGER_OCTETS + headers[i]!.length + headers[i + 1]!.length;
    }
    return total;
  }

  /**
   * Writes the header block for `headers` into `target` from `offset`; returns the offset after it.
   * Names are sent as given (lower-casing is the caller's job); strings are written latin1.
   */
  encode(headers: readonly string[], target: Buffer, offset: number, neverIndexed?: readonly number[]): number {
    let at = offset;
    // Positions (of names) to send as never-indexed literals, ascending, as the decoder reported them.
    let sensitiveAt = neverIndexed !== undefined && neverIndexed.length > 0 ? 0 : -1;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      let pattern = 0;
      if (sensitiveAt >= 0 && neverIndexed![sensitiveAt] === i) {
        pattern = NEVER_INDEXED;
        sensitiveAt = sensitiveAt + 1 < neverIndexed!.length ? sensitiveAt + 1 : -1;
      }
      const nameIndex = STATIC_NAME_INDEX.get(name);
      if (nameIndex === undefined) {
        target[at++] = pattern; // literal without indexing (or never indexed), new name
        at = writeRawString(name, target, at);
        at = writeRawString(value, target, at);
        continue;
      }
      const fullIndex = pattern === 0 ? findStaticValue(nameIndex, name, value) : 0;
      if (fullIndex !== 0) {
        at = writeInteger(fullIndex, 7, INDEXED_FIELD, target, at);
        continue;
      }
      at = writeInteger(nameIndex, 4, pattern, target, at);
      at = writeRawString(value, target, at);
    }
    return at;
  }
}

/** The static index holding exactly (name, value), or 0; scans the adjacent entries sharing the name. */
function findStaticValue(firstIndex: number, name: string, value: string): number {
  for (let i = firstIndex; i <= STATIC_COUNT && STATIC_NAMES[i] === name; i++) {
    if (STATIC_VALUES[i] === value) return i;
  }
  return 0;
}

/** RFC 7541 5.1 with `pattern` in the bits above the prefix. */
function writeInteger(value: number, prefixBits: number, pattern: number, target: Buffer, offset: number): number {
  const prefixMax = (1 << prefixBits) - 1;
  let at = offset;
  if (value < prefixMax) {
    target[at++] = pattern | value;
    return at;
  }
  target[at++] = pattern | prefixMax;
  let rest = value - prefixMax;
  while (rest >= 0x80) {
    target[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  target[at++] = rest;
  return at;
}

/** Strings up to this length are copied by a char loop, cheaper than a native write call. */
const SHORT_STRING_CHARS = 32;

function writeRawString(s: string, target: Buffer, offset: number): number {
  const length = s.length;
  let at = writeInteger(length, 7, 0, target, offset);
  if (length <= SHORT_STRING_CHARS) {
    for (let i = 0; i < length; i++) target[at++] = s.charCodeAt(i);
    return at;
  }
  return at + (target as unknown as Latin1Buffer).latin1Write(s, at, length);
}
