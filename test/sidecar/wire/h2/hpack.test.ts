import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { HeaderListTooLargeError, HpackDecoder, HpackEncoder, HpackError } from '../../../../sidecar/wire/h2/hpack.js';
import {
  HUFFMAN_CODES,
  HUFFMAN_CODE_LENGTHS,
  decodeHuffman,
  encodeHuffman,
  huffmanEncodedLength,
  maxHuffmanDecodedLength,
} from '../../../../sidecar/wire/h2/huffman.js';

/** HPACK against RFC 7541 (Appendix B and C), against real nghttp2 in both directions, and on bad input. */

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function pairsOf(flat: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  return pairs;
}

function tableOf(decoder: HpackDecoder): [string, string][] {
  const entries: [string, string][] = [];
  for (let i = 0; ; i++) {
    const entry = decoder.tableEntry(i);
    if (entry === undefined) return entries;
    entries.push([entry[0], entry[1]]);
  }
}

function decodeHex(decoder: HpackDecoder, block: string): [string, string][] {
  const out: string[] = [];
  decoder.decode(hex(block), out);
  return pairsOf(out);
}

// RFC 7541 Appendix B, "code as hex" column, symbols 0..255 then EOS.
const RFC_HUFFMAN_CODES_HEX = `
1ff8 7fffd8 fffffe2 fffffe3 fffffe4 fffffe5 fffffe6 fffffe7 fffffe8 ffffea 3ffffffc fffffe9 fffffea 3ffffffd fffffeb fffffec
fffffed fffffee fffffef ffffff0 ffffff1 ffffff2 3ffffffe ffffff3 ffffff4 ffffff5 ffffff6 ffffff7 ffffff8 ffffff9 ffffffa ffffffb
14 3f8 3f9 ffa 1ff9 15 f8 7fa 3fa 3fb f9 7fb fa 16 17 18
0 1 2 19 1a 1b 1c 1d 1e 1f 5c fb 7ffc 20 ffb 3fc
1ffa 21 5d 5e 5f 60 61 62 63 64 65 66 67 68 69 6a
6b 6c 6d 6e 6f 70 71 72 fc 73 fd 1ffb 7fff0 1ffc 3ffc 22
7ffd 3 23 4 24 5 25 26 27 6 74 75 28 29 2a 7
2b 76 2c 8 9 2d 77 78 79 7a 7b 7ffe 7fc 3ffd 1ffd ffffffc
fffe6 3fffd2 fffe7 fffe8 3fffd3 3fffd4 3fffd5 7fffd9 3fffd6 7fffda 7fffdb 7fffdc 7fffdd 7fffde ffffeb 7fffdf
ffffec ffffed 3fffd7 7fffe0 ffffee 7fffe1 7fffe2 7fffe3 7fffe4 1fffdc 3fffd8 7fffe5 3fffd9 7fffe6 7fffe7 ffffef
3fffda 1fffdd fffe9 3fffdb 3fffdc 7fffe8 7fffe9 1fffde 7fffea 3fffdd 3fffde fffff0 1fffdf 3fffdf 7fffeb 7fffec
1fffe0 1fffe1 3fffe0 1fffe2 7fffed 3fffe1 7fffee 7fffef fffea 3fffe2 3fffe3 3fffe4 7ffff0 3fffe5 3fffe6 7ffff1
3ffffe0 3ffffe1 fffeb 7fff1 3fffe7 7ffff2 3fffe8 1ffffec 3ffffe2 3ffffe3 3ffffe4 7ffffde 7ffffdf 3ffffe5 fffff1 1ffffed
7fff2 1fffe3 3ffffe6 7ffffe0 7ffffe1 3ffffe7 7ffffe2 fffff2 1fffe4 1fffe5 3ffffe8 3ffffe9 ffffffd 7ffffe3 7ffffe4 7ffffe5
fffec fffff3 fffed 1fffe6 3fffe9 1fffe7 1fffe8 7ffff3 3fffea 3fffeb 1ffffee 1ffffef fffff4 fffff5 3ffffea 7ffff4
3ffffeb 7ffffe6 3ffffec 3ffffed 7ffffe7 7ffffe8 7ffffe9 7ffffea 7ffffeb ffffffe 7ffffec 7ffffed 7ffffee 7ffffef 7fffff0 3ffffee
3fffffff`;
const RFC_CODES = RFC_HUFFMAN_CODES_HEX.trim().split(/\s+/).map((h) => parseInt(h, 16));

/** Packs one symbol's RFC code MSB-first and pads with ones, independently of our encoder. */
function packRfcSymbol(symbol: number): Buffer {
  const length = HUFFMAN_CODE_LENGTHS[symbol]!;
  const paddedBits = Math.ceil(length / 8) * 8;
  let bits = BigInt(RFC_CODES[symbol]!) << BigInt(paddedBits - length);
  bits |= (1n << BigInt(paddedBits - length)) - 1n;
  return Buffer.from(bits.toString(16).padStart(paddedBits / 4, '0'), 'hex');
}

function huffmanDecodeToString(encoded: Uint8Array): string | number {
  const dst = Buffer.alloc(maxHuffmanDecodedLength(encoded.length));
  const n = decodeHuffman(encoded, 0, encoded.length, dst);
  return n < 0 ? n : dst.toString('latin1', 0, n);
}

function huffmanEncode(s: string): Buffer {
  const target = Buffer.alloc(huffmanEncodedLength(s));
  const end = encodeHuffman(s, target, 0);
  return target.subarray(0, end);
}

t.test('Huffman table derived from code lengths equals RFC 7541 Appendix B', async (t) => {
  t.equal(RFC_CODES.length, 257);
  t.same(Array.from(HUFFMAN_CODES), RFC_CODES);
  let kraftSum = 0;
  for (const length of HUFFMAN_CODE_LENGTHS) kraftSum += 2 ** -length;
  t.equal(kraftSum, 1, 'the code is complete (no unused bit patterns but EOS padding)');
  for (let symbol = 0; symbol < 257; symbol++) {
    if (RFC_CODES[symbol]! >= 2 ** HUFFMAN_CODE_LENGTHS[symbol]!) t.fail(`code of ${symbol} wider than its length`);
  }
});

t.test('Huffman: every octet value alone decodes from its RFC code and encodes to it', async (t) => {
  for (let octet = 0; octet < 256; octet++) {
    const packed = packRfcSymbol(octet);
    const char = String.fromCharCode(octet);
    if (huffmanDecodeToString(packed) !== char) t.fail(`octet ${octet} decoded wrong from ${packed.toString('hex')}`);
    if (!huffmanEncode(char).equals(packed)) t.fail(`octet ${octet} encoded wrong`);
  }
  t.pass('256 octets checked both ways');
});

t.test('Huffman: long mixed strings and the RFC Appendix C strings round-trip', async (t) => {
  const known: [string, string][] = [
    ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
    ['no-cache', 'a8eb 1064 9cbf'],
    ['custom-key', '25a8 49e9 5ba9 7d7f'],
    ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
    ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
  ];
  for (const [text, encoded] of known) {
    t.equal(huffmanDecodeToString(hex(encoded)), text);
    t.equal(huffmanEncode(text).toString('hex'), hex(encoded).toString('hex'));
  }
  let mixed = '';
  for (let round = 0; round < 8; round++) {
    for (let octet = 0; octet < 256; octet++) mixed += String.fromCharCode((octet * 7 + round) & 0xff);
    mixed += 'GET /api/v1/users?id=42 HTTP/2 application/grpc+proto ';
  }
  t.equal(huffmanDecodeToString(huffmanEncode(mixed)), mixed);
  for (let i = 0; i < 200; i++) {
    const s = randomBytes(i).toString('latin1');
    if (huffmanDecodeToString(huffmanEncode(s)) !== s) t.fail(`random string of ${i} octets did not round-trip`);
  }
  t.equal(huffmanDecodeToString(new Uint8Array(0)), '', 'empty string');
});

t.test('RFC 7541 C.2: literal and indexed representations', async (t) => {
  const d1 = new HpackDecoder();
  t.same(decodeHex(d1, '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'), [['custom-key', 'custom-header']]);
  t.same(tableOf(d1), [['custom-key', 'custom-header']]);
  t.equal(d1.tableSize, 55);

  const d2 = new HpackDecoder();
  t.same(decodeHex(d2, '040c 2f73 616d 706c 652f 7061 7468'), [[':path', '/sample/path']]);
  t.equal(d2.tableSize, 0);

  const d3 = new HpackDecoder();
  t.same(decodeHex(d3, '1008 7061 7373 776f 7264 0673 6563 7265 74'), [['password', 'secret']]);
  t.equal(d3.tableSize, 0);

  const d4 = new HpackDecoder();
  t.same(decodeHex(d4, '82'), [[':method', 'GET']]);
  t.equal(d4.tableSize, 0);
});

interface Step {
  block: string;
  headers: [string, string][];
  table: [string, string][];
  tableSize: number;
}

const REQUEST_HEADERS: [string, string][][] = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
];
const REQUEST_TABLES: Omit<Step, 'block' | 'headers'>[] = [
  { table: [[':authority', 'www.example.com']], tableSize: 57 },
  { table: [['cache-control', 'no-cache'], [':authority', 'www.example.com']], tableSize: 110 },
  {
    table: [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
    tableSize: 164,
  },
];
const DATE_21 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE_22 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSE_HEADERS: [string, string][][] = [
  [[':status', '302'], ['cache-control', 'private'], ['date', DATE_21], ['location', LOCATION]],
  [[':status', '307'], ['cache-control', 'private'], ['date', DATE_21], ['location', LOCATION]],
  [
    [':status', '200'], ['cache-control', 'private'], ['date', DATE_22], ['location', LOCATION],
    ['content-encoding', 'gzip'], ['set-cookie', COOKIE],
  ],
];
const RESPONSE_TABLES: Omit<Step, 'block' | 'headers'>[] = [
  { table: [['location', LOCATION], ['date', DATE_21], ['cache-control', 'private'], [':status', '302']], tableSize: 222 },
  { table: [[':status', '307'], ['location', LOCATION], ['date', DATE_21], ['cache-control', 'private']], tableSize: 222 },
  { table: [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE_22]], tableSize: 215 },
];

function steps(blocks: string[], headers: [string, string][][], tables: Omit<Step, 'block' | 'headers'>[]): Step[] {
  return blocks.map((block, i) => ({ block, headers: headers[i]!, ...tables[i]! }));
}

const SEQUENCES: { name: string; maxTableSize: number; steps: Step[] }[] = [
  {
    name: 'C.3 requests without Huffman',
    maxTableSize: 4096,
    steps: steps([
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ], REQUEST_HEADERS, REQUEST_TABLES),
  },
  {
    name: 'C.4 requests with Huffman',
    maxTableSize: 4096,
    steps: steps([
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '8286 84be 5886 a8eb 1064 9cbf',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
    ], REQUEST_HEADERS, REQUEST_TABLES),
  },
  {
    name: 'C.5 responses without Huffman, table size 256 (eviction)',
    maxTableSize: 256,
    steps: steps([
      `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
       2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      '4803 3330 37c1 c0bf',
      `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
       54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
       5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
    ], RESPONSE_HEADERS, RESPONSE_TABLES),
  },
  {
    name: 'C.6 responses with Huffman, table size 256 (eviction)',
    maxTableSize: 256,
    steps: steps([
      `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
       2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      '4883 640e ffc1 c0bf',
      `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
       77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
       9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
    ], RESPONSE_HEADERS, RESPONSE_TABLES),
  },
];

for (const sequence of SEQUENCES) {
  t.test(`RFC 7541 ${sequence.name}: headers, dynamic table and its size after each block`, async (t) => {
    const decoder = new HpackDecoder(sequence.maxTableSize);
    sequence.steps.forEach((step, i) => {
      t.same(decodeHex(decoder, step.block), step.headers, `block ${i + 1} headers`);
      t.same(tableOf(decoder), step.table, `block ${i + 1} dynamic table`);
      t.equal(decoder.tableSize, step.tableSize, `block ${i + 1} table size`);
    });
  });
}

const MALFORMED: { name: string; block: string; message: RegExp; maxTableSize?: number }[] = [
  { name: 'indexed field with index 0', block: '80', message: /index 0/ },
  { name: 'index past the (empty) dynamic table', block: '82 be', message: /index 62 past the table \(61 static \+ 0 dynamic/ },
  { name: 'literal name index past the table', block: '7f 00 01 61', message: /index 63 past the table/ },
  { name: 'string longer than the block', block: '00 03 6162', message: /truncated string: length 3 but 2 octets left/ },
  { name: 'string length missing', block: '00', message: /truncated header block: string expected/ },
  { name: 'integer cut short', block: '1f', message: /truncated integer/ },
  { name: 'integer above 2^31-1', block: 'ff ff ff ff ff 0f', message: /integer larger than 2\^31-1/ },
  { name: 'integer with too many continuation octets', block: 'ff 80 80 80 80 80 80 00', message: /integer longer than 2\^31/ },
  { name: 'Huffman padding not all ones', block: '04 81 00', message: /Huffman padding is not a prefix of EOS/ },
  { name: 'Huffman padding of exactly 8 bits', block: '04 82 f8 ff', message: /Huffman padding longer than 7 bits/ },
  { name: 'Huffman padding of 11 bits', block: '04 82 07 ff', message: /Huffman padding longer than 7 bits/ },
  { name: 'Huffman string holding EOS', block: '04 84 ff ff ff ff', message: /Huffman string contains the EOS symbol/ },
  { name: 'size update above our maximum', block: '3f e2 1f', message: /size update to 4097 above the maximum 4096/ },
  { name: 'size update above a small maximum', block: '3f 02', message: /size update to 33 above the maximum 32/, maxTableSize: 32 },
  { name: 'size update after a header field', block: '82 20', message: /size update after a header field/ },
];

t.test('malformed header blocks throw HpackError naming the problem', async (t) => {
  for (const c of MALFORMED) {
    const decoder = new HpackDecoder(c.maxTableSize);
    t.throws(() => decoder.decode(hex(c.block), []), { name: 'HpackError', code: 'MESHLET_HPACK', message: c.message }, c.name);
  }
  t.ok(new HpackError('x') instanceof Error);
});

t.test('a decoder that threw refuses further blocks', async (t) => {
  const decoder = new HpackDecoder();
  t.throws(() => decoder.decode(hex('80'), []));
  t.throws(() => decoder.decode(hex('82'), []), { message: /unusable after an earlier malformed header block/ });
});

t.test('size updates at block start are honoured, evict, and may repeat', async (t) => {
  const decoder = new HpackDecoder();
  decodeHex(decoder, '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572');
  t.equal(decoder.tableSize, 55);
  t.same(decodeHex(decoder, '20 3f e1 1f 82'), [[':method', 'GET']], 'shrink to 0 then back to 4096, then a field');
  t.equal(decoder.tableSize, 0, 'the shrink to 0 evicted everything');
  const tiny = new HpackDecoder(4096);
  decodeHex(tiny, '3f 11'); // 48 octets
  t.same(decodeHex(tiny, '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'), [['custom-key', 'custom-header']]);
  t.equal(tiny.tableSize, 0, 'an entry larger than the table empties it and is not added');
  t.same(decodeHex(tiny, '4004 6e61 6d65 0176'), [['name', 'v']]);
  t.same(tableOf(tiny), [['name', 'v']], '37 octets fit in 48');
});

/** Deterministic PRNG (mulberry32) so a failing sequence can be replayed. */
function seededRandom(seed: number): (below: number) => number {
  let state = seed >>> 0;
  return (below) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return (((x ^ (x >>> 14)) >>> 0) % below);
  };
}

/** RFC 7541 5.1 written independently of the code under test. */
function integerOctets(value: number, prefixBits: number, pattern: number): number[] {
  const prefixMax = 2 ** prefixBits - 1;
  if (value < prefixMax) return [pattern | value];
  const octets = [pattern | prefixMax];
  let rest = value - prefixMax;
  for (; rest >= 128; rest = Math.floor(rest / 128)) octets.push((rest % 128) + 128);
  octets.push(rest);
  return octets;
}

function rawStringOctets(s: string): number[] {
  return [...integerOctets(s.length, 7, 0), ...Buffer.from(s, 'latin1')];
}

t.test('dynamic table matches a reference model over 2000 random blocks (eviction, wrap, size updates)', async (t) => {
  const random = seededRandom(7541);
  const maxTableSize = 512;
  const decoder = new HpackDecoder(maxTableSize);
  let model: [string, string][] = [];
  let modelMax = maxTableSize;
  const sizeOf = (entries: [string, string][]) => entries.reduce((sum, [n, v]) => sum + n.length + v.length + 32, 0);
  const evictTo = (limit: number) => {
    while (model.length > 0 && sizeOf(model) > limit) model.pop();
  };
  let mismatches = 0;
  for (let blockNumber = 0; blockNumber < 2000 && mismatches === 0; blockNumber++) {
    const octets: number[] = [];
    const expected: string[] = [];
    if (random(8) === 0) {
      modelMax = [0, 40, 100, 300, maxTableSize][random(5)]!;
      octets.push(...integerOctets(modelMax, 5, 0x20));
      evictTo(modelMax);
    }
    for (let field = 1 + random(8); field > 0; field--) {
      const kind = random(4);
      const value = String.fromCharCode(...Array.from({ length: random(4) === 0 ? random(600) : random(40) }, () => random(256)));
      if (kind === 0 && model.length > 0) {
        const i = random(model.length);
        octets.push(...integerOctets(62 + i, 7, 0x80));
        expected.push(...model[i]!);
      } else if (kind === 1 && model.length > 0) {
        const name = model[random(model.length)]![0];
        octets.push(...integerOctets(62 + model.findIndex(([n]) => n === name), 6, 0x40), ...rawStringOctets(value));
        expected.push(name, value);
        model.unshift([name, value]);
      } else if (kind === 2) {
        octets.push(...integerOctets(1 + random(61), 4, 0x00), ...rawStringOctets(value));
        expected.push('', value); // name filled in below from the static table via decoding order
      } else {
        const name = `n-${random(1000)}`;
        octets.push(0x40, ...rawStringOctets(name), ...rawStringOctets(value));
        expected.push(name, value);
        model.unshift([name, value]);
      }
      if (model.length > 0 && sizeOf([model[0]!]) > modelMax) model = [];
      else evictTo(modelMax);
    }
    const out: string[] = [];
    decoder.decode(Buffer.from(octets), out);
    for (let k = 0; k < expected.length; k += 2) if (expected[k] === '') expected[k] = out[k]!;
    const ok = JSON.stringify(out) === JSON.stringify(expected) &&
      JSON.stringify(tableOf(decoder)) === JSON.stringify(model) && decoder.tableSize === sizeOf(model);
    if (!ok) {
      mismatches++;
      t.fail(`block ${blockNumber} diverged from the model`, { found: tableOf(decoder), wanted: model });
    }
  }
  t.equal(mismatches, 0, 'every block matched the model');
});

t.test('a 4096-octet table holds exactly 128 smallest (32-octet) entries', async (t) => {
  const decoder = new HpackDecoder();
  const block: number[] = [];
  for (let i = 0; i < 128; i++) block.push(0x40, 0x00, 0x00);
  decoder.decode(Buffer.from(block), []);
  t.equal(decoder.tableSize, 4096);
  t.same(decoder.tableEntry(127), ['', '']);
  t.equal(decoder.tableEntry(128), undefined);
  const out: string[] = [];
  decoder.decode(hex('ff 3e'), out); // index 62 + 127 = 189: the oldest
  t.same(out, ['', '']);
  decoder.decode(hex('40 00 01 61'), out);
  t.equal(decoder.tableEntry(127), undefined, 'adding a 33-octet entry evicted two of the oldest');
  t.same(decoder.tableEntry(0), ['', 'a']);
});

t.test('header list over maxListBytes throws after the whole block, table stays in sync', async (t) => {
  const decoder = new HpackDecoder();
  const out: string[] = [];
  t.throws(() => decoder.decode(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'), out, 100), {
    name: 'HeaderListTooLargeError',
    message: 'header list larger than 100 bytes',
  });
  t.ok(new HeaderListTooLargeError(100) instanceof HpackError, 'a kind of HpackError: the relay fails only that stream');
  t.equal(decoder.tableSize, 57, 'the literal with indexing was still applied');
  t.same(decodeHex(decoder, '8286 84be 5808 6e6f 2d63 6163 6865').at(3), [':authority', 'www.example.com'], 'next block reuses it');
  const fits: string[] = [];
  decoder.decode(hex('be'), fits, 58);
  t.same(fits, ['cache-control', 'no-cache'], '13 + 8 + 32 = 53 octets is within 58');
});

t.test('a Uint8Array view (not a Buffer) decodes the same', async (t) => {
  const bytes = hex('00 8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d');
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset + 1, bytes.length - 1);
  const out: string[] = [];
  new HpackDecoder().decode(view, out);
  t.same(out, [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com']);
});

function encodeBlock(headers: readonly string[]): Buffer {
  const target = Buffer.alloc(HpackEncoder.maxEncodedLength(headers) + 4);
  target[0] = 0xaa; // the encoder must start at offset and not touch what is before it
  const end = new HpackEncoder().encode(headers, target, 1);
  if (target[0] !== 0xaa) throw new Error('encode wrote before its offset');
  if (end - 1 > HpackEncoder.maxEncodedLength(headers)) throw new Error('maxEncodedLength is not an upper bound');
  return target.subarray(1, end);
}

t.test('encoder: static full matches are one octet, names use the static index, others are literal', async (t) => {
  t.equal(encodeBlock([':method', 'GET', ':status', '500', 'accept-encoding', 'gzip, deflate']).toString('hex'), '828e90');
  t.equal(encodeBlock([':path', '/sample/path']).toString('hex'), hex('040c 2f73 616d 706c 652f 7061 7468').toString('hex'), 'C.2.2 bytes');
  t.equal(encodeBlock(['password', 'secret']).toString('hex'), '0008' + '70617373776f7264' + '06' + '736563726574');
  t.equal(encodeBlock(['user-agent', 'x']).toString('hex'), '0f2b' + '0178', 'index 58 needs a continuation octet');
});

t.test('encoder output decodes back exactly, including long and non-ASCII latin1 values', async (t) => {
  const headers = [
    ':method', 'POST', ':scheme', 'https', ':path', '/pkg.Service/Method', ':authority', 'svc.ns:8080',
    'content-type', 'application/grpc', 'te', 'trailers', 'x-empty', '', ':status', '299',
    'x-latin1', Buffer.from('naïve ✓ 日本', 'utf8').toString('latin1'),
    'x-all-octets', Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1'),
    'x-long', 'L'.repeat(70_000), 'x-127', 'a'.repeat(127), 'x-126', 'b'.repeat(126),
  ];
  const out: string[] = [];
  const decoder = new HpackDecoder();
  decoder.decode(encodeBlock(headers), out);
  t.same(out, headers);
  t.equal(decoder.tableSize, 0, 'the encoder never adds to the peer table');
});

// ---- Interop with nghttp2 (node:http2) on loopback ----

const FRAME_HEADER_BYTES = 9;
const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const PRIORITY_FIELDS_BYTES = 5;
const DEFAULT_MAX_FRAME_BYTES = 16_384;
const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

interface HeaderBlock {
  streamId: number;
  block: Buffer;
  frameCount: number;
}

/** Splits raw HTTP/2 bytes into frames and joins HEADERS + CONTINUATION into header blocks. */
class HeaderBlockCollector {
  private pending = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private streamId = 0;
  readonly blocks: HeaderBlock[] = [];

  constructor(private skipBytes: number) {}

  push(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    if (this.skipBytes > 0) {
      const skipped = Math.min(this.skipBytes, this.pending.length);
      this.pending = this.pending.subarray(skipped);
      this.skipBytes -= skipped;
    }
    while (this.pending.length >= FRAME_HEADER_BYTES) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < FRAME_HEADER_BYTES + length) return;
      const type = this.pending[3]!;
      const flags = this.pending[4]!;
      const streamId = this.pending.readUInt32BE(5) & 0x7fffffff;
      let payload = this.pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      this.pending = this.pending.subarray(FRAME_HEADER_BYTES + length);
      if (type === FRAME_HEADERS) {
        if ((flags & FLAG_PADDED) !== 0) payload = payload.subarray(1, payload.length - payload[0]!);
        if ((flags & FLAG_PRIORITY) !== 0) payload = payload.subarray(PRIORITY_FIELDS_BYTES);
        this.fragments = [payload];
        this.streamId = streamId;
      } else if (type === FRAME_CONTINUATION) {
        this.fragments.push(payload);
      } else {
        continue;
      }
      if ((flags & FLAG_END_HEADERS) !== 0) {
        this.blocks.push({ streamId: this.streamId, block: Buffer.concat(this.fragments), frameCount: this.fragments.length });
      }
    }
  }
}

/** Header values that exercise Huffman, indexing, long strings and every octet class nghttp2 allows. */
function variedRequestHeaders(requestNumber: number): Record<string, string | string[]> {
  let printable = '';
  for (let c = 0x21; c <= 0x7e; c++) printable += String.fromCharCode(c);
  return {
    ':path': `/items/${requestNumber}?q=${'x'.repeat(requestNumber * 40)}`,
    'accept-encoding': 'gzip, deflate',
    'user-agent': 'meshlet-hpack-test/1.0',
    'x-repeated': 'the same value on every request, indexed once',
    'x-printable': `${printable} ${printable}`,
    'x-request': String(requestNumber),
    'x-trace-bin': randomBytes(48).toString('base64'),
    'x-latin1': Buffer.from(`naïve café ✓ 日本 #${requestNumber}`, 'utf8').toString('latin1'),
    'x-high-octets': Buffer.from(Array.from({ length: 128 }, (_, i) => 0x80 + i)).toString('latin1'),
    'x-multi': ['one', 'two', `three-${requestNumber}`],
    'x-big': randomBytes(7_680).toString('base64'), // 10 KiB
    'x-big-2': randomBytes(7_680).toString('base64'), // with x-big, past one 16 KiB frame
  };
}

function flattenRequest(headers: Record<string, string | string[]>): string[] {
  const flat: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) flat.push(name, v);
  }
  return flat;
}

t.test('decodes exactly what a real nghttp2 client sent, request after request on one connection', async (t) => {
  const requestCount = 6;
  const collector = new HeaderBlockCollector(CLIENT_PREFACE.length);
  let allBlocks: () => void = () => undefined;
  const blocksArrived = new Promise<void>((resolve) => (allBlocks = resolve));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.write(frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0)));
    socket.on('data', (chunk: Buffer) => {
      collector.push(chunk);
      if (collector.blocks.length >= requestCount) allBlocks();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const authority = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = http2.connect(`http://${authority}`);
  client.on('error', () => undefined);
  t.teardown(() => {
    client.destroy();
    for (const socket of sockets) socket.destroy();
    server.close();
  });

  const sent: Record<string, string | string[]>[] = [];
  for (let i = 1; i <= requestCount; i++) {
    const headers = variedRequestHeaders(i);
    sent.push(headers);
    const request = client.request(headers, { endStream: true });
    request.on('error', () => undefined);
  }
  await blocksArrived;

  const decoder = new HpackDecoder();
  let maxTableSize = 0;
  collector.blocks.forEach((received, i) => {
    const out: string[] = [];
    decoder.decode(received.block, out);
    maxTableSize = Math.max(maxTableSize, decoder.tableSize);
    const pseudo = Object.fromEntries(pairsOf(out).filter(([name]) => name.startsWith(':')));
    const regular = out.filter((_, k) => !out[k - (k % 2)]!.startsWith(':'));
    const { ':path': path, ...rest } = sent[i]!;
    t.same(pseudo, { ':method': 'GET', ':scheme': 'http', ':authority': authority, ':path': path }, `request ${i + 1} pseudo-headers`);
    t.same(regular, flattenRequest(rest), `request ${i + 1} regular headers, in order`);
  });
  t.equal(collector.blocks.length, requestCount);
  const firstRawOctets = flattenRequest(sent[0]!).reduce((sum, s) => sum + s.length, 0);
  t.ok(collector.blocks[0]!.block.length < firstRawOctets * 0.9, 'nghttp2 Huffman-coded the first block (no table yet)');
  t.ok(maxTableSize > 0, 'nghttp2 indexed fields into the dynamic table we track');
  t.ok(collector.blocks.some((b) => b.frameCount > 1), 'a header block spanned HEADERS + CONTINUATION');
});

t.test('a real nghttp2 server sees exactly the headers our encoder wrote', async (t) => {
  const server = http2.createServer();
  const seen: string[][] = [];
  let allStreams: () => void = () => undefined;
  const streamsArrived = new Promise<void>((resolve) => (allStreams = resolve));
  const requests: string[][] = [];
  for (let i = 0; i < 4; i++) {
    requests.push([
      ':method', i % 2 === 0 ? 'GET' : 'POST', ':scheme', 'http', ':path', i === 0 ? '/' : `/svc/${i}`,
      ':authority', 'backend.test:8080',
      'accept-encoding', 'gzip, deflate',
      'user-agent', 'meshlet/0.1',
      'content-type', 'application/grpc',
      'x-printable', Array.from({ length: 0x7e - 0x21 + 1 }, (_, k) => String.fromCharCode(0x21 + k)).join(''),
      'x-trace-bin', randomBytes(33).toString('base64'),
      'x-latin1', Buffer.from(`naïve ✓ 日本 ${i}`, 'utf8').toString('latin1'),
      'x-repeat', 'r', 'x-repeat', 's',
      'x-big', randomBytes(7_680).toString('base64'),
    ]);
  }
  server.on('stream', (stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    seen.push(rawHeaders);
    stream.on('error', () => undefined);
    stream.respond({ ':status': 204 }, { endStream: true });
    if (seen.length === requests.length) allStreams();
  });
  server.on('sessionError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.resume();
  t.teardown(() => {
    socket.destroy();
    server.close();
  });
  await once(socket, 'connect');

  const encoder = new HpackEncoder();
  const frames: Buffer[] = [CLIENT_PREFACE, frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))];
  requests.forEach((headers, i) => {
    const target = Buffer.alloc(HpackEncoder.maxEncodedLength(headers));
    const block = target.subarray(0, encoder.encode(headers, target, 0));
    t.ok(block.length <= DEFAULT_MAX_FRAME_BYTES, 'fits one HEADERS frame');
    frames.push(frame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 2 * i + 1, block));
  });
  socket.write(Buffer.concat(frames));
  await streamsArrived;
  t.same(seen, requests);
});

t.test('never-indexed fields are reported by position and re-encoded with the same marking (RFC 7541 6.2.3)', async (t) => {
  const decoder = new HpackDecoder();
  const out: string[] = [];
  const neverIndexed: number[] = [];
  // C.2.3's never-indexed "password: secret" between an indexed :method GET and a plain literal.
  decoder.decode(hex('82 1008 7061 7373 776f 7264 0673 6563 7265 74 0003 6162 6303 7879 7a'), out, Infinity, neverIndexed);
  t.same(pairsOf(out), [[':method', 'GET'], ['password', 'secret'], ['abc', 'xyz']]);
  t.same(neverIndexed, [2], 'the position of the never-indexed name in the flat array');
  t.equal(decoder.tableSize, 0, 'nothing entered the dynamic table');
  const target = Buffer.alloc(HpackEncoder.maxEncodedLength(out));
  const end = new HpackEncoder().encode(out, target, 0, neverIndexed);
  t.equal(target.subarray(0, end).toString('hex'), '82' + '1008' + '70617373776f7264' + '06' + '736563726574' + '0003616263' + '0378797a', 'same representation out');
  const withStaticName = Buffer.alloc(64);
  const n = new HpackEncoder().encode(['authorization', 'Bearer x', 'accept', '*/*'], withStaticName, 0, [0]);
  t.equal(withStaticName.subarray(0, n).toString('hex'), '1f08' + '08' + Buffer.from('Bearer x').toString('hex') + '0f04' + '03' + Buffer.from('*/*').toString('hex'), 'a static name index (authorization, 23) in the 4-bit never-indexed prefix; accept (19) stays a plain literal');
});
