/**
 * The HPACK Huffman code (RFC 7541 Appendix B) and a table-driven decoder.
 *
 * The code is canonical: sorting symbols by (code length, symbol) and counting upwards yields every
 * code, so only the 257 lengths are stored here and the codes are derived at module load (the test
 * checks every derived code against the RFC's hex column). Decoding walks 4 bits at a time through a
 * state table generated from the code tree (the nghttp2 approach): two table look-ups per input octet,
 * no per-bit branching, and at most one symbol per nibble because the shortest code is 5 bits.
 */

/** Code length in bits for octets 0..255 and, last, for EOS (256). Transcribed from RFC 7541 Appendix B. */
const CODE_LENGTHS_BITS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

/** The end-of-string symbol: never valid inside a string, its prefix is the padding. */
export const HUFFMAN_EOS = 256;
const SYMBOL_COUNT = 257;
/** RFC 7541 5.2: padding is the most significant bits of EOS, so strictly shorter than 8 bits. */
const MAX_PADDING_BITS = 7;

/** Code length in bits per symbol (index 256 is EOS). */
export const HUFFMAN_CODE_LENGTHS: Uint8Array = Uint8Array.from(CODE_LENGTHS_BITS);
/** Code per symbol, right-aligned in HUFFMAN_CODE_LENGTHS[symbol] bits (index 256 is EOS). */
export const HUFFMAN_CODES: Uint32Array = deriveCanonicalCodes(HUFFMAN_CODE_LENGTHS);

function deriveCanonicalCodes(lengths: Uint8Array): Uint32Array {
  const order = Array.from({ length: SYMBOL_COUNT }, (_, symbol) => symbol);
  order.sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const codes = new Uint32Array(SYMBOL_COUNT);
  let code = 0;
  let previousLength = lengths[order[0]!]!;
  for (const symbol of order) {
    code = code * 2 ** (lengths[symbol]! - previousLength);
    previousLength = lengths[symbol]!;
    codes[symbol] = code;
    code += 1;
  }
  return codes;
}

/** Decoding failed: the string is malformed. Negative so they never collide with a decoded length. */
export const HUFFMAN_ERROR_EOS = -1;
export const HUFFMAN_ERROR_PADDING_TOO_LONG = -2;
export const HUFFMAN_ERROR_PADDING_NOT_ONES = -3;

/** Says what a HUFFMAN_ERROR_* code means, for error messages. */
export function describeHuffmanError(code: number): string {
  switch (code) {
    case HUFFMAN_ERROR_EOS:
      return 'Huffman string contains the EOS symbol';
    case HUFFMAN_ERROR_PADDING_TOO_LONG:
      return `Huffman padding longer than ${MAX_PADDING_BITS} bits`;
    default:
      return 'Huffman padding is not a prefix of EOS (not all ones)';
  }
}

// Transition entry layout: bits 0-7 next state, bits 8-15 emitted octet, then flags.
const NEXT_STATE_MASK = 0xff;
const SYMBOL_SHIFT = 8;
const EMITS_SYMBOL = 1 << 16;
const HITS_EOS = 1 << 17;
const NIBBLES_PER_STATE = 16;

interface CodeTree {
  /** child[node * 2 + bit]: >= 0 an internal node, < 0 a leaf holding symbol -(value + 1). */
  readonly child: Int32Array;
  readonly nodeCount: number;
  readonly depthBits: Uint8Array;
  readonly isAllOnes: Uint8Array;
}

function buildCodeTree(): CodeTree {
  const maxNodes = SYMBOL_COUNT - 1;
  const child = new Int32Array(maxNodes * 2);
  const depthBits = new Uint8Array(maxNodes);
  const isAllOnes = new Uint8Array(maxNodes);
  isAllOnes[0] = 1;
  let nodeCount = 1;
  for (let symbol = 0; symbol < SYMBOL_COUNT; symbol++) {
    const length = HUFFMAN_CODE_LENGTHS[symbol]!;
    const code = HUFFMAN_CODES[symbol]!;
    let node = 0;
    for (let bitIndex = length - 1; bitIndex > 0; bitIndex--) {
      const bit = (code >>> bitIndex) & 1;
      const slot = node * 2 + bit;
      if (child[slot] === 0) {
        child[slot] = nodeCount;
        depthBits[nodeCount] = depthBits[node]! + 1;
        isAllOnes[nodeCount] = isAllOnes[node]! & bit;
        nodeCount++;
      }
      node = child[slot]!;
    }
    child[node * 2 + (code & 1)] = -(symbol + 1);
  }
  return { child, nodeCount, depthBits, isAllOnes };
}

/** Per decoder state (an internal tree node) and input nibble: next state, emitted octet, flags. */
function buildNibbleTable(tree: CodeTree): Int32Array {
  const table = new Int32Array(tree.nodeCount * NIBBLES_PER_STATE);
  for (let state = 0; state < tree.nodeCount; state++) {
    for (let nibble = 0; nibble < NIBBLES_PER_STATE; nibble++) {
      let node = state;
      let entry = 0;
      for (let bitIndex = 3; bitIndex >= 0; bitIndex--) {
        const next = tree.child[node * 2 + ((nibble >> bitIndex) & 1)]!;
        if (next >= 0) {
          node = next;
          continue;
        }
        const symbol = -next - 1;
        if (symbol === HUFFMAN_EOS) {
          entry |= HITS_EOS;
          break;
        }
        entry |= EMITS_SYMBOL | (symbol << SYMBOL_SHIFT);
        node = 0;
      }
      table[state * NIBBLES_PER_STATE + nibble] = entry | node;
    }
  }
  return table;
}

const CODE_TREE = buildCodeTree();
const NIBBLE_TABLE = buildNibbleTable(CODE_TREE);

/** An upper bound of the decoded length of `encodedLength` octets: every code has at least 5 bits. */
export function maxHuffmanDecodedLength(encodedLength: number): number {
  return Math.floor((encodedLength * 8) / 5);
}

/**
 * Decodes src[start, end) into dst from 0 (dst must hold maxHuffmanDecodedLength(end - start) octets).
 * Returns the decoded length, or a negative HUFFMAN_ERROR_* code (EOS inside, bad padding).
 */
export function decodeHuffman(src: Uint8Array, start: number, end: number, dst: Uint8Array): number {
  const table = NIBBLE_TABLE;
  let state = 0;
  let written = 0;
  for (let i = start; i < end; i++) {
    const octet = src[i]!;
    let entry = table[(state << 4) | (octet >> 4)]!;
    if ((entry & HITS_EOS) !== 0) return HUFFMAN_ERROR_EOS;
    if ((entry & EMITS_SYMBOL) !== 0) dst[written++] = entry >> SYMBOL_SHIFT;
    entry = table[((entry & NEXT_STATE_MASK) << 4) | (octet & 0xf)]!;
    if ((entry & HITS_EOS) !== 0) return HUFFMAN_ERROR_EOS;
    if ((entry & EMITS_SYMBOL) !== 0) dst[written++] = entry >> SYMBOL_SHIFT;
    state = entry & NEXT_STATE_MASK;
  }
  if (CODE_TREE.isAllOnes[state] === 0) return HUFFMAN_ERROR_PADDING_NOT_ONES;
  if (CODE_TREE.depthBits[state]! > MAX_PADDING_BITS) return HUFFMAN_ERROR_PADDING_TOO_LONG;
  return written;
}

/** The Huffman-encoded length in octets of latin1 string `s` (chars above 0xff use their low octet). */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_CODE_LENGTHS[s.charCodeAt(i) & 0xff]!;
  return (bits + 7) >>> 3;
}

/** Writes latin1 string `s` Huffman-encoded (EOS-padded) into target at offset; returns the offset after it. */
export function encodeHuffman(s: string, target: Uint8Array, offset: number): number {
  let pending = 0; // bits not yet written, right-aligned; stays below 2^(7 + 30) so it fits a double exactly
  let pendingBits = 0;
  let at = offset;
  for (let i = 0; i < s.length; i++) {
    const symbol = s.charCodeAt(i) & 0xff;
    const length = HUFFMAN_CODE_LENGTHS[symbol]!;
    pending = pending * 2 ** length + HUFFMAN_CODES[symbol]!;
    pendingBits += length;
    while (pendingBits >= 8) {
      pendingBits -= 8;
      const octet = Math.floor(pending / 2 ** pendingBits);
      target[at++] = octet;
      pending -= octet * 2 ** pendingBits;
    }
  }
  if (pendingBits > 0) target[at++] = (pending << (8 - pendingBits)) | (0xff >> pendingBits);
  return at;
}
