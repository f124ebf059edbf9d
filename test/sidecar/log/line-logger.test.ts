import t from 'tap';
import { createLineLogger, type LineOutput } from '../../../sidecar/log/line-logger.js';
import type { Logger } from '../../../src/common/log-format.js';
import { captureLogs, type LogLine } from '../../helpers/log-capture.js';

/** The proxy's logger writing into memory. */
function lineLogs(level = 'debug'): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const output: LineOutput = {
    write: (line: string) => {
      if (line.indexOf('\n') !== line.length - 1) throw new Error(`not one line ending in a newline: ${JSON.stringify(line)}`);
      lines.push(JSON.parse(line) as LogLine);
    },
    flush: (callback) => callback?.(),
  };
  return { log: createLineLogger({ level, base: { pod: 'web-1' }, output }), lines };
}

class UpstreamError extends Error {
  code = 'ECONNREFUSED';
  port = 8080;
}

/** The same calls, made on a logger: what the two loggers must write alike. */
function exercise(log: Logger): void {
  const relay = log.child({ component: 'relay' }).child({ target: 'default/api:80' });
  log.info('listening');
  relay.warn({ endpoint: '198.18.0.7:8080', attempts: 2 }, 'endpoint ejected');
  relay.error({ err: new UpstreamError('connect refused') }, 'upstream connect failed');
  relay.error({ err: new Error('stream reset', { cause: new Error('GOAWAY received', { cause: new TypeError('socket closed') }) }) }, 'request failed');
  relay.error(new RangeError('frame too large'));
  log.warn({ err: new AggregateError([new Error('v4 refused'), new Error('v6 unreachable')], 'every address failed') }, 'connect failed');
  log.info({ authorization: 'Bearer abc', token: 'jwt', headers: { authorization: 'Basic x', accept: '*/*' }, request: { token: 't', key: 'k', privateKey: 'p', headers: { authorization: 'y' } } }, 'redacted');
  log.info({ peer: { host: 'api', port: 80 }, list: [1, 2], nothing: undefined, flag: false }, 'shapes');
  log.trace('below the level');
  log.debug({ n: 1 }, 'at the level');
}

/**
 * A line without what differs between two loggers called one after the other: the time, and in
 * stacks the line of this file each was called from.
 */
function timeless(line: LogLine): LogLine {
  const { time, ...rest } = line;
  if (typeof time !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(time)) throw new Error(`time is not ISO 8601 in UTC: ${String(time)}`);
  return JSON.parse(JSON.stringify(rest).replace(/line-logger\.test\.ts:\d+:\d+/g, 'line-logger.test.ts')) as LogLine;
}

t.test("the proxy's lines read exactly like pino's: levels, bindings, errors with causes, redaction", async (t) => {
  const ours = lineLogs();
  const pino = captureLogs('debug');
  const pinoRoot = pino.log.child({ pod: 'web-1' });
  exercise(ours.log);
  exercise(pinoRoot);
  await new Promise<void>((resolve) => pino.log.flush(() => resolve()));
  await pino.waitForCount(() => true, 9, 5_000, "pino's nine lines");
  t.equal(ours.lines.length, 9, 'nine lines: the trace line is below the level');
  t.same(ours.lines.map(timeless), pino.lines.map(timeless), 'the same fields, values and messages as pino');
});

t.test('what the lines say, field by field', async (t) => {
  const { log, lines } = lineLogs();
  exercise(log);
  t.match(lines[0], { level: 'info', pod: 'web-1', msg: 'listening' });
  t.match(lines[1], { level: 'warn', pod: 'web-1', component: 'relay', target: 'default/api:80', endpoint: '198.18.0.7:8080', msg: 'endpoint ejected' });
  t.match(lines[2]!.err, { type: 'UpstreamError', message: 'connect refused', code: 'ECONNREFUSED', port: 8080 }, "an error's own fields are kept");
  t.match(lines[3]!.err, { type: 'Error', message: 'stream reset: GOAWAY received: socket closed' }, 'causes are appended to the message');
  t.match(lines[3]!.err!.stack, /stream reset[\s\S]*caused by: Error: GOAWAY received[\s\S]*caused by: TypeError: socket closed/, 'and to the stack');
  t.match(lines[4], { level: 'error', msg: 'frame too large', err: { type: 'RangeError', message: 'frame too large' } }, 'an error alone is the err field and the message');
  t.equal((lines[5]!['err'] as unknown as { aggregateErrors: unknown[] }).aggregateErrors.length, 2, "an AggregateError's errors are listed");
  t.same(lines[6], { ...lines[6], authorization: '[redacted]', token: '[redacted]', headers: { authorization: '[redacted]', accept: '*/*' }, request: { token: '[redacted]', key: '[redacted]', privateKey: '[redacted]', headers: { authorization: '[redacted]' } } });
  t.notOk('nothing' in lines[7]!, 'undefined fields are left out');
});

t.test("redaction never changes the caller's objects", async (t) => {
  const { log, lines } = lineLogs();
  const headers = { authorization: 'Bearer abc' };
  const request = { headers, token: 't' };
  log.info({ request }, 'redacted copy');
  t.equal(headers.authorization, 'Bearer abc');
  t.equal(request.token, 't');
  t.same(lines[0]!['request'], { headers: { authorization: '[redacted]' }, token: '[redacted]' });
});

t.test('a field that is not JSON costs the fields, never the line', async (t) => {
  const { log, lines } = lineLogs();
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  log.warn({ size: 10n }, 'bigint field');
  log.warn({ cyclic }, 'cyclic field');
  log.error({ err: Object.assign(new Error('outer'), { cause: undefined as unknown }) }, 'after');
  t.equal(lines.length, 3);
  t.match(lines[0], { level: 'warn', msg: 'bigint field', logError: /could not be written as JSON: .*BigInt/ });
  t.match(lines[1], { level: 'warn', msg: 'cyclic field', logError: /could not be written as JSON: .*circular/i });
  t.match(lines[2], { level: 'error', msg: 'after', err: { message: 'outer' } });
});

t.test('a cause chain that loops is written once around, and a long one is cut', async (t) => {
  const { log, lines } = lineLogs();
  const a = new Error('a');
  const b = new Error('b', { cause: a });
  (a as { cause?: unknown }).cause = b;
  log.error({ err: a }, 'loop');
  let deep = new Error('e0');
  for (let i = 1; i < 50; i++) deep = new Error(`e${i}`, { cause: deep });
  log.error({ err: deep }, 'deep');
  t.equal(lines[0]!.err!.message, 'a: b');
  t.equal(lines[1]!.err!.message.split(': ').length, 9, 'the error and at most 8 causes');
});

t.test('levels: a child keeps the level it was made with; silent writes nothing; a bad level is named', async (t) => {
  const { log, lines } = lineLogs('warn');
  const child = log.child({ component: 'c' });
  log.info('dropped');
  log.level = 'info';
  log.info('written');
  child.info('child still at warn');
  log.level = 'silent';
  log.fatal('silent');
  t.same(
    lines.map((l) => l.msg),
    ['written'],
  );
  t.throws(() => createLineLogger({ level: 'verbose', output: { write: () => undefined, flush: () => undefined } }), /log level "verbose" is not valid; allowed: trace, debug, info, warn, error, fatal, silent/);
});
