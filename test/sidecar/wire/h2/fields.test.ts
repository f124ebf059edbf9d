/**
 * The RFC 9113 8.2-8.3 checks char by char: every char code a name or value may carry is tried,
 * so a faster check that lets one more through (or refuses one it should pass) fails here.
 */
import t from 'tap';
import { requestProblem, responseProblem, trailersProblem } from '../../../../sidecar/wire/h2/fields.js';
import { HpackDecoder } from '../../../../sidecar/wire/h2/hpack.js';

const REQUEST = [':method', 'GET', ':scheme', 'http', ':authority', 'example', ':path', '/'];
/** Char codes tried: all of Latin-1 (what HPACK strings decode to) and a few beyond. */
const CODES = [...Array.from({ length: 256 }, (_, c) => c), 0x100, 0x17f, 0x2028, 0xff21];

/** RFC 9113 8.2.1, spelled out: a regular field name is lowercase visible ASCII other than ':'. */
const isNameCharAllowed = (c: number) => c >= 0x21 && c <= 0x7e && c !== 0x3a && !(c >= 0x41 && c <= 0x5a);
/** RFC 9113 8.2.1: a value may not hold NUL, LF or CR. */
const isValueCharAllowed = (c: number) => c !== 0x00 && c !== 0x0a && c !== 0x0d;

t.test('a field name is refused for exactly the chars RFC 9113 8.2.1 forbids, in requests, responses and trailers', async (t) => {
  const wrong: string[] = [];
  for (const c of CODES) {
    const name = `x${String.fromCharCode(c)}y`;
    const expected = isNameCharAllowed(c);
    const problems = [requestProblem([...REQUEST, name, '1']), responseProblem([':status', '200', name, '1']), trailersProblem([name, '1'])];
    for (const problem of problems) {
      if ((problem === undefined) !== expected) wrong.push(`0x${c.toString(16)}: ${problem ?? 'accepted'}`);
      else if (problem !== undefined && !problem.includes('only lowercase visible ASCII')) wrong.push(`0x${c.toString(16)}: ${problem}`);
    }
  }
  t.same(wrong, [], 'every char code judged as the RFC says, with a message naming the rule');
});

t.test('a field value is refused for exactly NUL, CR and LF, in pseudo-headers and regular fields', async (t) => {
  const wrong: string[] = [];
  for (const c of CODES) {
    const value = `a${String.fromCharCode(c)}b`;
    const expected = isValueCharAllowed(c);
    const problems = [
      requestProblem([':method', 'GET', ':scheme', 'http', ':authority', value, ':path', '/']),
      requestProblem([...REQUEST, 'x-a', value]),
      responseProblem([':status', '200', 'x-a', value]),
      trailersProblem(['x-a', value]),
    ];
    for (const problem of problems) {
      if ((problem === undefined) !== expected) wrong.push(`0x${c.toString(16)}: ${problem ?? 'accepted'}`);
      else if (problem !== undefined && !problem.includes('NUL, CR or LF')) wrong.push(`0x${c.toString(16)}: ${problem}`);
    }
  }
  t.same(wrong, [], 'every char code judged as the RFC says, with a message naming the rule');
});

t.test(':status must be three digits from 100 to 599', async (t) => {
  const wrong: string[] = [];
  for (let n = 0; n < 1000; n++) {
    for (const status of [String(n), String(n).padStart(3, '0')]) {
      const expected = /^[1-5]\d\d$/.test(status);
      const problem = responseProblem([':status', status]);
      if ((problem === undefined) !== expected) wrong.push(`${JSON.stringify(status)}: ${problem ?? 'accepted'}`);
    }
  }
  for (const status of ['', '2000', ' 200', '200 ', '20a', '2\u00b30', '\u0662\u0660\u0660', '２００', '200\n', '+20', '1e2']) {
    const problem = responseProblem([':status', status]);
    if (problem === undefined || !problem.includes(`:status "${status}" is not valid`)) wrong.push(`${JSON.stringify(status)}: ${problem ?? 'accepted'}`);
  }
  t.same(wrong, [], 'only 100-599 as three ASCII digits pass; the rest are named in the problem');
});

t.test('request pseudo-headers: only the four of RFC 9113 8.3.1, each once, before regular fields', async (t) => {
  t.equal(requestProblem(REQUEST), undefined, 'a complete request passes');
  t.match(requestProblem([...REQUEST, ':status', '200']), /pseudo-header ":status" is not allowed in a request/);
  t.match(requestProblem([...REQUEST, ':Method', 'GET']), /pseudo-header ":Method" is not allowed/);
  t.match(requestProblem([':method', 'GET', ...REQUEST]), /:method given twice/);
  t.match(requestProblem([...REQUEST.slice(2), 'x-a', '1', ':method', 'GET']), /:method after a regular field/);
  t.equal(requestProblem([':method', 'CONNECT', ':authority', 'example:443']), undefined, 'CONNECT carries only :method and :authority');
  t.match(requestProblem([':method', 'CONNECT', ':authority', 'example:443', ':path', '/']), /CONNECT request with :scheme or :path/);
});

// ------------------------------------------------------------------ with the decoder's `unchecked`
// The decoder judges each table entry once and reports only the fields the checks must still judge.
// These cases go through the real HpackDecoder, so a table entry that skipped a check it needed fails here.

/** An HPACK string: raw octets (latin1), length below 127 so the length is one octet. */
function hpackString(s: string): number[] {
  return [s.length, ...Buffer.from(s, 'latin1')];
}
const literalWithIndexing = (name: string, value: string) => [0x40, ...hpackString(name), ...hpackString(value)];
const literalWithoutIndexing = (name: string, value: string) => [0x00, ...hpackString(name), ...hpackString(value)];
/** An indexed field; indexes below 127 take one octet. */
const indexed = (index: number) => [0x80 | index];
/** The request head as indexed static fields: :method GET, :scheme http, :path /, then :authority as a literal. */
const REQUEST_HEAD = [...indexed(2), ...indexed(6), ...indexed(4), ...literalWithoutIndexing(':authority', 'example')];
/** HPACK index of the newest dynamic table entry. */
const NEWEST = 62;

/** Decodes `block` with `decoder`; the fields and the positions it reports as unchecked. */
function decodeBlock(decoder: HpackDecoder, block: number[]): { fields: string[]; unchecked: number[] } {
  const fields: string[] = [];
  const unchecked: number[] = [];
  decoder.decode(Buffer.from(block), fields, Infinity, undefined, unchecked);
  return { fields, unchecked };
}

t.test('a malformed field that entered the dynamic table is refused on first use and on every indexed reuse, for every char code', async (t) => {
  const wrong: string[] = [];
  for (let c = 0; c < 256; c++) {
    const ch = String.fromCharCode(c);
    const cases = [
      { what: 'name', name: `x${ch}y`, value: '1', expected: isNameCharAllowed(c) },
      { what: 'value', name: 'x-a', value: `a${ch}b`, expected: isValueCharAllowed(c) },
    ];
    for (const { what, name, value, expected } of cases) {
      // One decoder per kind of block, as a connection has one per direction.
      const kinds = [
        { kind: 'request', head: REQUEST_HEAD, check: requestProblem },
        { kind: 'response', head: indexed(8), check: responseProblem },
        { kind: 'trailers', head: [], check: trailersProblem },
      ];
      for (const { kind, head, check } of kinds) {
        const decoder = new HpackDecoder();
        const first = decodeBlock(decoder, [...head, ...literalWithIndexing(name, value)]);
        const reuses = [1, 2, 3].map(() => decodeBlock(decoder, [...head, ...indexed(NEWEST)]));
        for (const [use, { fields, unchecked }] of [first, ...reuses].entries()) {
          const problem = check(fields, unchecked);
          if ((problem === undefined) !== expected) wrong.push(`${kind} ${what} 0x${c.toString(16)} use ${use + 1}: ${problem ?? 'accepted'}`);
          else if (problem !== check(fields)) wrong.push(`${kind} ${what} 0x${c.toString(16)} use ${use + 1}: "${problem}" differs from the full check`);
        }
      }
    }
  }
  t.same(wrong, [], 'refused exactly when the RFC says, on the literal and on each indexed reuse, with the full check\'s message');
});

t.test('connection-specific fields and te other than trailers stay refused when they come from a table', async (t) => {
  const decoder = new HpackDecoder();
  // Static index 57 is transfer-encoding: HTTP/2 forbids it (RFC 9113 8.2.2) though the table has it.
  let block = decodeBlock(decoder, [...REQUEST_HEAD, ...indexed(57)]);
  t.match(requestProblem(block.fields, block.unchecked), /connection-specific field "transfer-encoding"/);
  for (const [name, value, pattern] of [
    ['connection', 'keep-alive', /connection-specific field "connection"/],
    ['te', 'gzip', /field te: "gzip" is not allowed/],
    ['upgrade', 'h2c', /connection-specific field "upgrade"/],
  ] as const) {
    decodeBlock(decoder, [...REQUEST_HEAD, ...literalWithIndexing(name, value)]);
    block = decodeBlock(decoder, [...REQUEST_HEAD, ...indexed(NEWEST)]);
    t.match(requestProblem(block.fields, block.unchecked), pattern, `${name}: ${value} from the dynamic table`);
  }
  decodeBlock(decoder, [...REQUEST_HEAD, ...literalWithIndexing('te', 'trailers')]);
  block = decodeBlock(decoder, [...REQUEST_HEAD, ...indexed(NEWEST)]);
  t.equal(requestProblem(block.fields, block.unchecked), undefined, 'te: trailers from the dynamic table passes');
  t.same(block.unchecked, [6], 'only the :authority literal is left to judge');
});

t.test('pseudo-header order, duplicates and names are judged on every block, whatever the table judged', async (t) => {
  const decoder = new HpackDecoder();
  decodeBlock(decoder, [...REQUEST_HEAD, ...literalWithIndexing('x-a', '1')]);
  // x-a (62) then :method from the static table: a pseudo-header after a regular field.
  let block = decodeBlock(decoder, [...indexed(6), ...indexed(4), ...indexed(NEWEST), ...indexed(2)]);
  t.same(block.unchecked, [], 'every field came from a table entry that passed');
  t.match(requestProblem(block.fields, block.unchecked), /:method after a regular field/);
  block = decodeBlock(decoder, [...REQUEST_HEAD, ...indexed(3)]);
  t.match(requestProblem(block.fields, block.unchecked), /:method given twice/);
  block = decodeBlock(decoder, [...REQUEST_HEAD, ...indexed(8)]);
  t.match(requestProblem(block.fields, block.unchecked), /pseudo-header ":status" is not allowed in a request/);
  block = decodeBlock(decoder, [...indexed(8), ...indexed(9)]);
  t.match(responseProblem(block.fields, block.unchecked), /:status after another field/);
  block = decodeBlock(decoder, [...indexed(NEWEST), ...indexed(8)]);
  t.match(trailersProblem(block.fields, block.unchecked), /pseudo-header :status in trailers/);
});

t.test('over 3000 random header blocks, judging only the unchecked fields gives the full check\'s verdict', async (t) => {
  // A small deterministic generator (xorshift32) so a failure can be replayed.
  let state = 0x2545f491;
  const random = (n: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  /** Mostly regular fields after a valid head, so that the content of each field decides the verdict. */
  const NAMES = ['x-a', 'x-b', 'user-agent', 'content-type', 'grpc-status', 'te', 'connection', 'X-Up', 'x:c', 'keep-alive', '', ':path'];
  const VALUES = ['1', 'trailers', 'abc', '/', 'application/grpc', '0', 'gzip', 'a\r\nx-evil: 1', 'a\x00b', 'a\nb', 'caf\xe9', '0', ''];
  const KINDS = [
    { check: requestProblem, head: REQUEST_HEAD },
    { check: responseProblem, head: indexed(8) },
    { check: trailersProblem, head: [] },
  ];
  const wrong: string[] = [];
  let refused = 0;
  let accepted = 0;
  for (const { check, head } of KINDS) {
    const decoder = new HpackDecoder(256); // small, so entries are evicted and slots reused
    for (let n = 0; n < 1000; n++) {
      const block = [...head];
      const fields = 1 + random(4);
      for (let f = 0; f < fields; f++) {
        const name = NAMES[random(NAMES.length)]!;
        const value = VALUES[random(VALUES.length)]!;
        const kind = random(5);
        const dynamic = random(3);
        if (kind === 0) block.push(...literalWithIndexing(name, value));
        else if (kind === 1) block.push(...literalWithoutIndexing(name, value));
        else if (kind === 2) block.push(...indexed(15 + random(47))); // static regular fields, transfer-encoding among them
        else if (decoder.tableEntry(dynamic) !== undefined) block.push(...indexed(NEWEST + dynamic));
      }
      const decoded = decodeBlock(decoder, block);
      const full = check(decoded.fields);
      const partial = check(decoded.fields, decoded.unchecked);
      if (full === undefined) accepted++;
      else refused++;
      if (partial !== full) wrong.push(`${check.name} ${JSON.stringify(decoded.fields)}: ${partial ?? 'accepted'} / full: ${full ?? 'accepted'}`);
    }
  }
  t.same(wrong, [], 'the same verdict and message for every block');
  t.ok(refused > 500 && accepted > 500, `both verdicts are common enough to mean something (${refused} refused, ${accepted} accepted)`);
});
