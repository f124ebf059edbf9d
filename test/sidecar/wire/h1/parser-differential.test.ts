import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { SMUGGLING_CASES, SMUGGLING_PREFIX } from '../../../helpers/h1-smuggling-cases.js';
import { H1Parser, MAX_HEADER_FIELDS } from '../../../../sidecar/wire/h1/parser.js';

/**
 * Differential test: the same bytes go to our parser and to Node's own (llhttp, through a real
 * node:http server on loopback). Both must agree on whether a request stream is acceptable, and
 * on every request they accept: method, target, fields, body and trailers. Our parser may be
 * stricter only where DELIBERATE_DIFFERENCES says so (each with its reason); it may never accept
 * what Node refuses (that is how proxies get desynchronised from their endpoints).
 */

interface Verdict {
  /** 'ok': every request complete; 'error': refused; 'incomplete': more bytes were expected. */
  kind: 'ok' | 'error' | 'incomplete';
  requests: string[];
}

function describe(method: string, target: string, fields: string[], body: string, trailers: string[]): string {
  return JSON.stringify([method, target, fields, body, trailers]);
}

function parseOurs(input: Buffer): Verdict {
  const requests: string[] = [];
  let head: { method: string; target: string; fields: string[] } | undefined;
  let body = '';
  let error = false;
  const parser = new H1Parser('request', {
    onHead: (h) => (head = h),
    onBody: (d) => (body += d.toString('latin1')),
    onEnd: (trailers) => {
      requests.push(describe(head!.method, head!.target, head!.fields, body, trailers ?? []));
      head = undefined;
      body = '';
    },
    onError: () => (error = true),
  });
  parser.execute(input);
  if (error) return { kind: 'error', requests };
  return { kind: parser.isIdle ? 'ok' : 'incomplete', requests };
}

/** Node's verdict: the requests its server saw, and whether it refused the stream or wanted more. */
async function parseNodes(port: number, seen: Map<number, string[]>, input: Buffer): Promise<Verdict> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const localPort = socket.localPort!;
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  socket.end(input);
  await once(socket, 'close');
  const reply = Buffer.concat(chunks).toString('latin1');
  const requests = seen.get(localPort) ?? [];
  seen.delete(localPort);
  if (/HTTP\/1\.1 4\d\d /.test(reply)) return { kind: reply.includes('x-incomplete') ? 'incomplete' : 'error', requests };
  return { kind: 'ok', requests };
}

async function startNodeServer(t: Test): Promise<{ port: number; seen: Map<number, string[]> }> {
  const seen = new Map<number, string[]>();
  const server = http.createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      const list = seen.get(req.socket.remotePort!) ?? [];
      list.push(describe(req.method!, req.url!, req.rawHeaders, body, req.rawTrailers));
      seen.set(req.socket.remotePort!, list);
      res.end('ok');
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // The stream ended inside a message: Node's way of saying "incomplete".
    const incomplete = err.code === 'HPE_INVALID_EOF_STATE';
    if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\nconnection: close\r\n${incomplete ? 'x-incomplete: 1\r\n' : ''}\r\n`);
    else socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, seen };
}

const H = SMUGGLING_PREFIX;
/** Inputs both must agree on, valid and invalid (every smuggling vector among them). */
const CASES: Array<{ name: string; raw: string }> = [
  { name: 'GET', raw: 'GET /a?b=c HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\n\r\n' },
  { name: 'POST with Content-Length', raw: `${H}Content-Length: 4\r\n\r\nabcd` },
  { name: 'chunked with an extension and trailers', raw: `${H}Transfer-Encoding: chunked\r\n\r\n4;name=value\r\nabcd\r\n0\r\nX-T: 1\r\n\r\n` },
  { name: 'chunked, uppercase hex and leading zeros', raw: `${H}Transfer-Encoding: chunked\r\n\r\n0A\r\n0123456789\r\n00\r\n\r\n` },
  { name: 'Transfer-Encoding: gzip, chunked', raw: `${H}Transfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n` },
  { name: 'Transfer-Encoding in capitals', raw: `${H}Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n` },
  { name: 'pipelined requests', raw: `GET /1 HTTP/1.1\r\nHost: a\r\n\r\n${H}Content-Length: 1\r\n\r\nxGET /3 HTTP/1.1\r\nHost: a\r\n\r\n` },
  { name: 'HTTP/1.0 without Host', raw: 'GET / HTTP/1.0\r\n\r\n' },
  { name: 'an empty line before the request line', raw: '\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n' },
  { name: 'absolute-form', raw: 'GET http://shop.example:8080/x HTTP/1.1\r\nHost: other\r\n\r\n' },
  { name: 'OPTIONS *', raw: 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n' },
  { name: 'an empty header value and tabs around a value', raw: 'GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Tabs:\t v \t\r\n\r\n' },
  { name: 'obs-text in a header value', raw: 'GET / HTTP/1.1\r\nHost: a\r\nX-Name: Jos\xe9\r\n\r\n' },
  { name: 'an incomplete body', raw: `${H}Content-Length: 10\r\n\r\nabc` },
  { name: 'an incomplete head', raw: 'GET / HTTP/1.1\r\nHost: a\r\n' },
  { name: 'a Content-Length with a space inside', raw: `${H}Content-Length: 1 0\r\n\r\nabcdefghij` },
  { name: 'chunked then identity', raw: `${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n` },
  { name: 'Transfer-Encoding: xchunked', raw: `${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n` },
  { name: 'obs-fold', raw: `${H}X-Note: a\r\n b\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a space before the colon', raw: `${H}Content-Length : 4\r\n\r\nabcd` },
  { name: 'bare LF line endings', raw: 'POST /upload HTTP/1.1\nHost: shop\nContent-Length: 4\n\nabcd' },
  { name: 'a bare CR in a header value', raw: `${H}X-Note: a\rb\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a NUL in a header value', raw: `${H}X-Note: a\0b\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a space in a header name', raw: `${H}X Note: a\r\nContent-Length: 0\r\n\r\n` },
  { name: 'a non-hex chunk size', raw: `${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n` },
  { name: 'a 0x-prefixed chunk size', raw: `${H}Transfer-Encoding: chunked\r\n\r\n0x4\r\nabcd\r\n0\r\n\r\n` },
  { name: 'an overflowing chunk size', raw: `${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabcd\r\n0\r\n\r\n` },
  { name: 'chunk data longer than its size', raw: `${H}Transfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n` },
  { name: 'a space in the request target', raw: 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n' },
  { name: 'HTTP/1.2', raw: 'GET / HTTP/1.2\r\nHost: a\r\n\r\n' },
  { name: 'a lowercase version', raw: 'GET / http/1.1\r\nHost: a\r\n\r\n' },
  { name: 'a header line without a colon', raw: 'GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n' },
  ...SMUGGLING_CASES,
];

/**
 * Where our parser is stricter than Node's on purpose. Each is a request we refuse and Node
 * accepts; the test checks that this is still the only difference for these inputs.
 */
const DELIBERATE_DIFFERENCES: Array<{ name: string; raw: string; why: string }> = [
  { name: 'two Host headers', raw: 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', why: 'RFC 9112 section 3.2: a server MUST answer 400; routing by one and forwarding the other is a classic bypass' },
  { name: `more than ${MAX_HEADER_FIELDS} fields`, raw: `GET / HTTP/1.1\r\nHost: a\r\n${'X-A: 1\r\n'.repeat(MAX_HEADER_FIELDS)}\r\n`, why: 'a bound on per-request work and memory (HAProxy: 101, Envoy: 100); 431' },
  { name: 'no space between the target and the version', raw: 'GET /aHTTP/1.1\r\nHost: a\r\n\r\n', why: 'llhttp reads it as a target without a version; a request line must be "METHOD target HTTP/1.x" (RFC 9112 section 3)' },
  { name: 'two spaces before the version', raw: 'GET /a  HTTP/1.1\r\nHost: a\r\n\r\n', why: 'exactly one SP separates the parts of the request line (RFC 9112 section 3)' },
  { name: 'an empty chunk extension', raw: `${H}Transfer-Encoding: chunked\r\n\r\n1;;=1\r\na\r\n0\r\n\r\n`, why: 'chunk-ext is ";" token ["=" value] (RFC 9112 section 7.1.1); llhttp refuses ";=1" but not ";;=1"' },
];

/** Single-byte mutations of valid requests: every position, each of these bytes. */
const MUTATION_BYTES = ['\r', '\n', '\0', ' ', '\t', ':', ',', ';', '-', 'x', '\x80', '0'];
const MUTATED = [`${H}Content-Length: 4\r\n\r\nabcd`, `${H}Transfer-Encoding: chunked\r\n\r\n4;e=1\r\nabcd\r\n0\r\nX-T: 1\r\n\r\n`];

t.test('our parser and Node\'s agree on every case, and on single-byte mutations of valid requests', async (t) => {
  const { port, seen } = await startNodeServer(t);
  for (const c of CASES) {
    const input = Buffer.from(c.raw, 'latin1');
    const [ours, nodes] = [parseOurs(input), await parseNodes(port, seen, input)];
    t.same(ours, nodes, c.name);
  }
  let compared = 0;
  let stricter = 0;
  const disagreements: string[] = [];
  for (const base of MUTATED) {
    for (let at = 0; at < base.length; at++) {
      for (const byte of MUTATION_BYTES) {
        if (base[at] === byte) continue;
        const raw = base.slice(0, at) + byte + base.slice(at + 1);
        const input = Buffer.from(raw, 'latin1');
        const [ours, nodes] = [parseOurs(input), await parseNodes(port, seen, input)];
        compared++;
        if (JSON.stringify(ours) === JSON.stringify(nodes)) continue;
        // Stricter than Node is allowed only in the request line and chunk extensions (see above).
        const isStricter = ours.kind === 'error' && nodes.kind === 'ok';
        if (isStricter && (at < base.indexOf('\r\n') || /;;/.test(raw))) {
          stricter++;
          continue;
        }
        disagreements.push(`${JSON.stringify(raw)}: ours ${ours.kind} ${ours.requests.length}, node ${nodes.kind} ${nodes.requests.length}`);
      }
    }
  }
  t.same(disagreements, [], `${compared} mutated inputs: no disagreement (${stricter} refused by us only, in the request line or a chunk extension)`);
  t.ok(compared > 1000, 'the mutations were all compared');
});

t.test('where we are deliberately stricter than Node, Node accepts and we refuse', async (t) => {
  const { port, seen } = await startNodeServer(t);
  for (const d of DELIBERATE_DIFFERENCES) {
    const input = Buffer.from(d.raw, 'latin1');
    t.equal((await parseNodes(port, seen, input)).kind, 'ok', `${d.name}: Node accepts`);
    t.equal(parseOurs(input).kind, 'error', `${d.name}: we refuse (${d.why})`);
  }
});
