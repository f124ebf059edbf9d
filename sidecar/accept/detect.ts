import type { Socket } from 'node:net';

/** A client that sends nothing for this long is treated as opaque (server-speaks-first protocols). */
export const DETECT_TIMEOUT_MS = 1_000;
/** Bytes looked at, at most: the longest thing we recognise is the 24-byte HTTP/2 preface. */
const MAX_DETECT_BYTES = 24;

export type Classification = 'http2' | 'http1' | 'opaque' | 'need-more';
/** 'closed': the client ended its side before its first bytes said anything; nothing to relay. */
export type DetectedProtocol = Exclude<Classification, 'need-more'> | 'closed';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Request methods we recognise, each with the space that must follow it. */
const HTTP1_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'].map((m) => Buffer.from(`${m} `, 'latin1'));

/** What the first bytes of a connection say, or 'need-more' while they are still a prefix of something we know. */
export function classify(bytes: Buffer): Classification {
  if (bytes.length === 0) return 'need-more';
  let couldBeMore = false;
  if (isPrefixMatch(bytes, H2_PREFACE)) {
    if (bytes.length >= H2_PREFACE.length) return 'http2';
    couldBeMore = true;
  }
  for (const method of HTTP1_METHODS) {
    if (isPrefixMatch(bytes, method)) {
      if (bytes.length >= method.length) return 'http1';
      couldBeMore = true;
    }
  }
  return couldBeMore ? 'need-more' : 'opaque';
}

/** Whether the shorter of `bytes` and `pattern` is a prefix of the other. */
function isPrefixMatch(bytes: Buffer, pattern: Buffer): boolean {
  const n = Math.min(bytes.length, pattern.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== pattern[i]) return false;
  return true;
}

/**
 * Reads the first bytes of `socket` until they are recognised (or `timeoutMs` passes, or the client
 * stops at a prefix), then puts them back with unshift so the chosen relay reads everything. The
 * socket is left paused. A client that half-closes before saying anything is opaque (it may wait for
 * the server to speak); one that half-closes in the middle of a prefix is 'closed'.
 */
export function detectProtocol(socket: Socket, timeoutMs: number = DETECT_TIMEOUT_MS): Promise<DetectedProtocol> {
  return new Promise((resolve) => {
    let seen: Buffer = Buffer.alloc(0);
    const done = (protocol: DetectedProtocol) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (seen.length > 0 && protocol !== 'closed') socket.unshift(seen);
      resolve(protocol);
    };
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const result = classify(seen.length > MAX_DETECT_BYTES ? seen.subarray(0, MAX_DETECT_BYTES) : seen);
      if (result !== 'need-more') done(result);
    };
    const onEnd = () => done(seen.length === 0 ? 'opaque' : 'closed');
    const timer = setTimeout(() => done('opaque'), timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}
