// Imported, not the global: in Node 20 globalThis.Buffer is a getter run on every use.
import { Buffer } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import { FRAMING, isNamed, type H1Head, type H1RawHead } from './parser.js';

/**
 * Heads as the other hop gets them: hop-by-hop fields (RFC 9110 section 7.6.1) and those the
 * Connection field names are dropped, everything else keeps its name, case and order; framing and
 * connection fields are written for this hop.
 */

/** Whether `name` (any case) is a hop-by-hop field; cheap for the usual names, by length first. */
function isHopByHop(name: string, connection: string[] | undefined): boolean {
  switch (name.length) {
    case 2:
      if (isNamed(name, 'te')) return true;
      break;
    case 7:
      if (isNamed(name, 'trailer') || isNamed(name, 'upgrade')) return true;
      break;
    case 10:
      if (isNamed(name, 'connection') || isNamed(name, 'keep-alive')) return true;
      break;
    case 16:
      if (isNamed(name, 'proxy-connection')) return true;
      break;
    case 17:
      if (isNamed(name, 'transfer-encoding')) return true;
      break;
    default:
  }
  if (connection === undefined) return false;
  for (let i = 0; i < connection.length; i++) {
    const token = connection[i]!;
    if (token.length === name.length && token === name.toLowerCase()) return true;
  }
  return false;
}

/** Forwarded fields as "name: value\r\n" lines; `skipHost` leaves Host out (it is replaced). */
function fieldLines(fields: string[], connection: string[] | undefined, skipHost: boolean): string {
  let out = '';
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (isHopByHop(name, connection)) continue;
    if (skipHost && isNamed(name, 'host')) continue;
    out += `${name}: ${fields[i + 1]!}\r\n`;
  }
  return out;
}

/**
 * The request head sent to an endpoint: HTTP/1.1, origin-form `path`, and for an absolute-form
 * request Host set to the URI's authority. A chunked body stays chunked; Content-Length passes as is.
 */
export function serializeRequestHead(head: H1Head, path: string, host: string | undefined, chunked: boolean): string {
  let out = `${head.method} ${path} HTTP/1.1\r\n`;
  if (host !== undefined) out += `Host: ${host}\r\n`;
  out += fieldLines(head.fields, head.connection, host !== undefined);
  if (chunked) out += `Transfer-Encoding: ${head.transferEncoding}\r\n`;
  return `${out}\r\n`;
}

/** An Upgrade request as the endpoint gets it: every field as sent (Connection and Upgrade included). */
export function serializeUpgradeHead(head: H1Head, path: string, host: string | undefined): string {
  let out = `${head.method} ${path} HTTP/1.${head.minor}\r\n`;
  if (host !== undefined) out += `Host: ${host}\r\n`;
  const fields = head.fields;
  for (let i = 0; i < fields.length; i += 2) {
    if (host !== undefined && isNamed(fields[i]!, 'host')) continue;
    out += `${fields[i]!}: ${fields[i + 1]!}\r\n`;
  }
  return `${out}\r\n`;
}

/**
 * The response head for the app. `connectionLines` say whether this hop stays open;
 * `transferEncoding` is set when the body goes out chunked (the endpoint's codings, ending in chunked).
 */
export function serializeResponseHead(head: H1Head, transferEncoding: string | undefined, connectionLines: string): string {
  let out = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
  out += fieldLines(head.fields, head.connection, false);
  if (transferEncoding !== undefined) out += `Transfer-Encoding: ${transferEncoding}\r\n`;
  return `${out}${connectionLines}\r\n`;
}

/** Bytes of "HTTP/1.1 200 " : a status line shorter than this (no space before an empty reason) is rewritten. */
const MIN_STATUS_LINE_BYTES = 13;

/**
 * The response head for the app as the endpoint sent it, its hop-by-hop lines cut out and
 * `connectionEnd` (connection lines and the empty line) put at the end: the same bytes
 * serializeResponseHead gives with no Transfer-Encoding to write, copied rather than rebuilt as a
 * string. Undefined when the head needs rewriting: an HTTP/1.0 status line, or one without the
 * space before its reason, or a field line not already "name: value".
 */
export function forwardResponseHead(head: H1Head, raw: H1RawHead, connectionEnd: Buffer): Buffer | undefined {
  const statusEnd = head.fields.length > 0 ? raw.lineStarts[0]! : raw.end - 2;
  // minor 1: the status line starts "HTTP/1.1 " (parseStatusLine), as the one written would.
  if (!raw.isCanonical || head.minor !== 1 || statusEnd - 2 - raw.start < MIN_STATUS_LINE_BYTES) return undefined;
  return copyEndToEnd(head, raw, connectionEnd);
}

/**
 * The request head for an endpoint as the app sent it, its hop-by-hop lines cut out: the bytes
 * serializeRequestHead gives for an origin-form request without a new Host and not chunked.
 * Undefined when the head needs rewriting: HTTP/1.0, a chunked body (its Transfer-Encoding line is
 * written last), or a field line not already "name: value".
 */
export function forwardRequestHead(head: H1Head, raw: H1RawHead): Buffer | undefined {
  if (!raw.isCanonical || head.minor !== 1 || head.framing === FRAMING.chunked) return undefined;
  return copyEndToEnd(head, raw, EMPTY_LINE);
}

const EMPTY_LINE = Buffer.from('\r\n', 'latin1');

/** The start line and the end-to-end field lines of `raw`, then `ending` (which ends the head). */
function copyEndToEnd(head: H1Head, raw: H1RawHead, ending: Buffer): Buffer {
  const { buf, start, end, lineStarts } = raw;
  const fieldsEnd = end - 2;
  const fields = head.fields;
  const lines = fields.length >> 1;
  const connection = head.connection;
  let size = fieldsEnd - start + ending.length;
  for (let i = 0; i < lines; i++) {
    if (isHopByHop(fields[2 * i]!, connection)) size -= (i + 1 < lines ? lineStarts[i + 1]! : fieldsEnd) - lineStarts[i]!;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let runStart = start;
  for (let i = 0; i < lines; i++) {
    if (!isHopByHop(fields[2 * i]!, connection)) continue;
    const lineStart = lineStarts[i]!;
    at += buf.copy(out, at, runStart, lineStart);
    runStart = i + 1 < lines ? lineStarts[i + 1]! : fieldsEnd;
  }
  at += buf.copy(out, at, runStart, fieldsEnd);
  ending.copy(out, at);
  return out;
}

/** A 1xx interim response (100 Continue, 103 Early Hints) as the endpoint sent it, minus hop-by-hop fields. */
export function serializeInterimHead(head: H1Head): string {
  return `HTTP/1.1 ${head.status} ${head.reason}\r\n${fieldLines(head.fields, head.connection, false)}\r\n`;
}

/** Trailer fields, then the empty line that ends a chunked body. */
export function serializeLastChunk(trailers: string[] | undefined): string {
  if (trailers === undefined) return '0\r\n\r\n';
  let out = '0\r\n';
  for (let i = 0; i < trailers.length; i += 2) out += `${trailers[i]!}: ${trailers[i + 1]!}\r\n`;
  return `${out}\r\n`;
}

/** The chunk-size line before `bytes` of chunk data. */
export function chunkSizeLine(bytes: number): string {
  return `${bytes.toString(16)}\r\n`;
}

/** A reply of the proxy's own: text/plain `message`, with the given connection lines. */
export function serializeReply(status: number, message: string, connectionLines: string): string {
  const body = `${message}\n`;
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\ndate: ${new Date().toUTCString()}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${connectionLines}\r\n${body}`;
}

export const CLOSE_LINES = 'connection: close\r\n';
/** CLOSE_LINES and the empty line that ends a head, for forwardResponseHead. */
export const CLOSE_HEAD_END = Buffer.from(`${CLOSE_LINES}\r\n`, 'latin1');

/** Connection lines of a kept-alive response, telling the app how long the proxy keeps it idle. */
export function keepAliveLines(idleTimeoutMs: number): string {
  return `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(idleTimeoutMs / 1000)}\r\n`;
}
