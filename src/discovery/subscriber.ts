import { isIP } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../common/logger.js';
import { MAX_COMMAND_LINE_BYTES, MAX_SUBSCRIPTIONS_PER_CONNECTION, type ClientCommand, type ServerMessage, type SubscriptionKind } from '../../sidecar/discovery/shared-protocol.js';

/** What a subscriber asks of the server it belongs to. */
export interface SubscriberHost {
  watch(subscriber: Subscriber, kind: SubscriptionKind, key: string): void;
  unwatch(subscriber: Subscriber, kind: SubscriptionKind, key: string): void;
  /** The connection ended (the sidecar left, was dropped, or the server is closing). */
  closed(subscriber: Subscriber): void;
}

/** A Kubernetes object name (DNS-1123 label or subdomain), as `namespace/name`. */
const SERVICE_KEY = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * One sidecar's stream: reads its commands (one JSON line each, bounded), keeps what it watches
 * (bounded), and writes it messages. A reader that lets more than `maxBufferedBytes` pile up unread
 * is disconnected: the server never buffers for it without bound.
 */
export class Subscriber {
  readonly services = new Set<string>();
  readonly addresses = new Set<string>();
  private pending = '';
  private isClosed = false;
  /** Disconnected by the server for not reading (counted in its metrics). */
  wasDropped = false;

  constructor(
    readonly id: number,
    readonly user: string,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly host: SubscriberHost,
    private readonly maxBufferedBytes: number,
    private readonly log: Logger,
  ) {
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => this.read(chunk));
    req.on('error', () => this.close());
    res.on('error', () => this.close());
    res.on('close', () => this.close());
  }

  get subscriptionCount(): number {
    return this.services.size + this.addresses.size;
  }

  /**
   * Writes one encoded message line; false when the subscriber was dropped instead, because what it
   * left unread from earlier messages exceeds `maxBufferedBytes` (so at most that plus one message
   * is ever held for it).
   */
  write(line: string): boolean {
    if (this.isClosed) return false;
    if (this.res.writableLength > this.maxBufferedBytes) {
      this.log.warn({ connId: this.id, user: this.user, bufferedBytes: this.res.writableLength, maxBufferedBytes: this.maxBufferedBytes }, 'subscriber not reading; disconnected');
      this.wasDropped = true;
      this.close();
      return false;
    }
    this.res.write(line);
    return true;
  }

  send(message: ServerMessage): boolean {
    return this.write(`${JSON.stringify(message)}\n`);
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.res.destroy();
    this.req.destroy();
    this.host.closed(this);
  }

  /** Ends the stream cleanly (server shutdown): the sidecar reconnects, to another replica. */
  end(): void {
    if (this.isClosed) return;
    this.res.end();
  }

  private read(chunk: string): void {
    if (this.isClosed) return;
    this.pending += chunk;
    let newline = this.pending.indexOf('\n');
    while (newline >= 0 && !this.isClosed) {
      const line = this.pending.slice(0, newline).trim();
      this.pending = this.pending.slice(newline + 1);
      if (line.length > MAX_COMMAND_LINE_BYTES) return this.refuseLine(line.length);
      if (line.length > 0) this.handle(line);
      newline = this.pending.indexOf('\n');
    }
    if (this.pending.length > MAX_COMMAND_LINE_BYTES) this.refuseLine(this.pending.length);
  }

  private refuseLine(length: number): void {
    this.send({ type: 'error', message: `a command line of ${length} bytes or more; allowed: at most ${MAX_COMMAND_LINE_BYTES} bytes per line; closing` });
    this.log.warn({ connId: this.id, user: this.user, lineBytes: length }, 'command line too long; disconnected');
    this.res.end();
    this.close();
  }

  private handle(line: string): void {
    const command = parseCommand(line);
    if (typeof command === 'string') {
      this.send({ type: 'error', message: command });
      return;
    }
    const { op, kind, key } = command;
    const set = kind === 'service' ? this.services : this.addresses;
    if (op === 'unwatch') {
      if (set.delete(key)) this.host.unwatch(this, kind, key);
      return;
    }
    if (set.has(key)) return;
    if (this.subscriptionCount >= MAX_SUBSCRIPTIONS_PER_CONNECTION) {
      this.send({ type: 'error', key, message: `watch ${kind} ${key}: this connection already watches ${MAX_SUBSCRIPTIONS_PER_CONNECTION}; allowed: at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} per connection (unwatch some first)` });
      return;
    }
    set.add(key);
    this.host.watch(this, kind, key);
  }
}

/** A command line, or the message saying what is wrong with it. */
function parseCommand(line: string): ClientCommand | string {
  const allowed = 'allowed: {"op":"watch"|"unwatch","kind":"service","key":"namespace/name"} or {"op":...,"kind":"address","key":"<IPv4 or IPv6 address>"}';
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return `command ${JSON.stringify(line.slice(0, 80))} is not JSON; ${allowed}`;
  }
  const { op, kind, key } = (value ?? {}) as Record<string, unknown>;
  if ((op !== 'watch' && op !== 'unwatch') || (kind !== 'service' && kind !== 'address') || typeof key !== 'string') {
    return `command ${JSON.stringify(line.slice(0, 80))} is not valid; ${allowed}`;
  }
  if (kind === 'service' && !SERVICE_KEY.test(key)) return `service key ${JSON.stringify(key)} is not valid; allowed: namespace/name`;
  if (kind === 'address' && isIP(key) === 0) return `address ${JSON.stringify(key)} is not valid; allowed: an IPv4 or IPv6 address`;
  return { op, kind, key };
}
