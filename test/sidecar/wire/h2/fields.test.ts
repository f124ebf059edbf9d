/**
 * The RFC 9113 8.2-8.3 checks char by char: every char code a name or value may carry is tried,
 * so a faster check that lets one more through (or refuses one it should pass) fails here.
 */
import t from 'tap';
import { requestProblem, responseProblem, trailersProblem } from '../../../../sidecar/wire/h2/fields.js';

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
