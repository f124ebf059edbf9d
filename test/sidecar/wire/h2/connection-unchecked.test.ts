/**
 * A real H2Connection on loopback reports, with each header block, which fields the RFC 9113 checks
 * must still judge: what its HPACK decoder could not vouch for. Blocks are written byte by byte, so
 * a bad value can enter the dynamic table and come back indexed, whole or across CONTINUATION frames.
 */
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { H2Connection, type StreamEvents } from '../../../../sidecar/wire/h2/connection.js';
import { requestProblem } from '../../../../sidecar/wire/h2/fields.js';
import { F, T, frame, rawClient } from '../../../helpers/h2-raw.js';

interface HeadersEvent {
  streamId: number;
  fields: string[];
  /** Copied: the connection reuses its array after the call. */
  unchecked: number[];
  problem: string | undefined;
}

/** Records header blocks; every other event is ignored (no stream is ever answered). */
class RecordingEvents implements StreamEvents<never, undefined> {
  readonly blocks: HeadersEvent[] = [];
  private wanted = 0;
  private onEnough: () => void = () => undefined;

  headers(_conn: H2Connection<never, undefined>, streamId: number, fields: string[], _endStream: boolean, _neverIndexed: number[] | undefined, unchecked: readonly number[]): void {
    this.blocks.push({ streamId, fields, unchecked: [...unchecked], problem: requestProblem(fields, unchecked) });
    if (this.blocks.length === this.wanted) this.onEnough();
  }

  /** Resolves once `count` header blocks arrived. */
  until(count: number): Promise<void> {
    this.wanted = count;
    return this.blocks.length >= count ? Promise.resolve() : new Promise((resolve) => (this.onEnough = resolve));
  }

  oversizedHeaders(): void {}
  data(): void {}
  reset(): void {}
  windowUpdate(): void {}
  initialWindowChanged(): void {}
  streamError(): void {}
  readEnd(): void {}
  goaway(): void {}
  closed(): void {}
}

/** HPACK octets: one-octet lengths, raw strings. */
const str = (s: string) => [s.length, ...Buffer.from(s, 'latin1')];
/** :method GET, :scheme http, :path / from the static table. */
const HEAD = [0x82, 0x86, 0x84];
const block = (...octets: number[]) => Buffer.from(octets);

t.test('a bad value that entered the dynamic table is reported on first use and on each indexed reuse, in one frame or across CONTINUATION', async (t) => {
  const events = new RecordingEvents();
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    new H2Connection(socket, events, { role: 'server', initialWindowBytes: 65_535, connectionWindowBytes: 65_535 }, undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { socket } = await rawClient((server.address() as AddressInfo).port);
  t.teardown(() => {
    socket.destroy();
    server.close();
  });
  socket.on('error', () => undefined);

  const endAll = F.END_HEADERS | F.END_STREAM;
  // Stream 1: :authority with indexing (static name 1; a good value), x-evil with indexing (a CR LF value).
  const first = block(...HEAD, 0x41, ...str('example'), 0x40, ...str('x-evil'), ...str('a\r\nb'));
  // Stream 3: both again, indexed: :authority is now 63, x-evil the newest, 62.
  const reuse = block(...HEAD, 0x80 | 63, 0x80 | 62);
  // Stream 5: the same reuse plus a good literal without indexing, split over HEADERS + CONTINUATION.
  const split = block(...HEAD, 0x80 | 63, 0x80 | 62, 0x00, ...str('x-ok'), ...str('1'));
  socket.write(
    Buffer.concat([
      frame(T.HEADERS, endAll, 1, first),
      frame(T.HEADERS, endAll, 3, reuse),
      frame(T.HEADERS, F.END_STREAM, 5, split.subarray(0, 4)),
      frame(T.CONTINUATION, F.END_HEADERS, 5, split.subarray(4)),
    ]),
  );
  await events.until(3);

  const [one, three, five] = events.blocks;
  t.same(one!.fields, [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'example', 'x-evil', 'a\r\nb']);
  t.same(one!.unchecked, [8], 'first use: only x-evil (the :authority entry passed when it entered the table)');
  t.match(one!.problem, /field x-evil: its value holds NUL, CR or LF/, 'refused on first use');
  t.same(three!.fields, one!.fields, 'the indexed reuse decodes to the same fields');
  t.same(three!.unchecked, [8], 'indexed reuse: x-evil is still reported');
  t.match(three!.problem, /field x-evil: its value holds NUL, CR or LF/, 'refused on reuse');
  t.same(five!.unchecked, [8, 10], 'across CONTINUATION: x-evil and the literal x-ok');
  t.match(five!.problem, /field x-evil: its value holds NUL, CR or LF/, 'refused across CONTINUATION');
  t.same([one!.streamId, three!.streamId, five!.streamId], [1, 3, 5]);
});
