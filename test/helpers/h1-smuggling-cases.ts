/**
 * Request smuggling vectors: requests a proxy and an endpoint could frame differently (conflicting
 * Content-Length / Transfer-Encoding, duplicate or malformed Content-Length, obs-fold, bare LF/CR,
 * NUL, bad chunk framing). Every one must be refused; shared by the relay's and the parser's tests.
 */
export const SMUGGLING_PREFIX = 'POST /upload HTTP/1.1\r\nHost: shop\r\n';
const H = SMUGGLING_PREFIX;
export const SMUGGLING_CASES: ReadonlyArray<{ name: string; raw: string }> = [
  { name: 'Content-Length and Transfer-Encoding: chunked', raw: `${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n` },
  { name: 'Transfer-Encoding: chunked then Content-Length', raw: `${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n` },
  { name: 'two Content-Length values that differ', raw: `${H}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde` },
  { name: 'two Content-Length headers that agree', raw: `${H}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd` },
  { name: 'a Content-Length list', raw: `${H}Content-Length: 4, 4\r\n\r\nabcd` },
  { name: 'a signed Content-Length', raw: `${H}Content-Length: +4\r\n\r\nabcd` },
  { name: 'a negative Content-Length', raw: `${H}Content-Length: -1\r\n\r\nabcd` },
  { name: 'a non-numeric Content-Length', raw: `${H}Content-Length: abc\r\n\r\nabcd` },
  { name: 'a Content-Length with a space inside', raw: `${H}Content-Length: 1 0\r\n\r\nabcdefghij` },
  { name: 'a Transfer-Encoding other than chunked last', raw: `${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n` },
  { name: 'Transfer-Encoding: xchunked', raw: `${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n` },
  { name: 'Transfer-Encoding: chunkedx', raw: `${H}Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n` },
  { name: 'Transfer-Encoding folded onto the next line', raw: `${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n` },
  { name: 'obs-fold in another header', raw: `${H}X-Note: a\r\n b\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a space before the colon of Transfer-Encoding', raw: `${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n` },
  { name: 'a space before the colon of Content-Length', raw: `${H}Content-Length : 4\r\n\r\nabcd` },
  { name: 'bare LF line endings', raw: 'POST /upload HTTP/1.1\nHost: shop\nContent-Length: 4\n\nabcd' },
  { name: 'a bare CR in a header value', raw: `${H}X-Note: a\rb\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a NUL in a header value', raw: `${H}X-Note: a\0b\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a space in a header name', raw: `${H}X Note: a\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a non-hex chunk size', raw: `${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n` },
  { name: 'a 0x-prefixed chunk size', raw: `${H}Transfer-Encoding: chunked\r\n\r\n0x4\r\nabcd\r\n0\r\n\r\n` },
  { name: 'a negative chunk size', raw: `${H}Transfer-Encoding: chunked\r\n\r\n-4\r\nabcd\r\n0\r\n\r\n` },
  { name: 'an overflowing chunk size', raw: `${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabcd\r\n0\r\n\r\n` },
  { name: 'Transfer-Encoding: chunked twice', raw: `${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n` },
  { name: 'a chunk size line ended by a bare LF', raw: `${H}Transfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n` },
  { name: 'an HTTP/1.1 request without Host', raw: 'POST /upload HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd' },
];

