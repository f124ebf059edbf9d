import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { HostPort } from '../../src/common/values.js';
import { MAX_MESSAGE_BYTES, NDJSON_CONTENT_TYPE, SUBSCRIPTIONS_PATH, type ClientCommand, type ServerMessage } from './shared-protocol.js';

export interface StreamEvents {
  /** The server accepted us (200): commands may flow. */
  onOpen(): void;
  onMessage(message: ServerMessage): void;
  /** Called once. `refusal` is set when the server answered with an error status instead of a stream. */
  onClose(err: Error | undefined, refusal?: { statusCode: number; message: string }): void;
}

export interface StreamOptions {
  server: HostPort;
  token: string;
  /** No 200 within this long: give up on this attempt. */
  connectTimeoutMs: number;
  /** Nothing (not even a ping) for this long: the stream is presumed dead. */
  stallTimeoutMs: number;
}

const MAX_REFUSAL_BODY_BYTES = 4096;

/**
 * One subscription stream to `meshlet discovery` (protocol: ./shared-protocol.ts): a POST whose body
 * stays open for commands, and whose answer is a stream of JSON lines. Ends on the first broken line,
 * a line over MAX_MESSAGE_BYTES, or silence beyond the stall timeout.
 */
export class SharedWatcherStream {
  private readonly req: ClientRequest;
  private stallTimer: NodeJS.Timeout | undefined;
  private isDone = false;
  private isOpen = false;

  constructor(
    private readonly options: StreamOptions,
    private readonly events: StreamEvents,
  ) {
    this.req = request({
      host: options.server.host,
      port: options.server.port,
      method: 'POST',
      path: SUBSCRIPTIONS_PATH,
      agent: false,
      headers: { authorization: `Bearer ${options.token}`, 'content-type': NDJSON_CONTENT_TYPE, 'transfer-encoding': 'chunked', 'user-agent': 'meshlet-proxy' },
    });
    this.req.on('error', (err) => this.finish(err));
    this.req.on('response', (res) => this.onResponse(res));
    this.req.flushHeaders();
    this.armStall(options.connectTimeoutMs, `no answer within ${options.connectTimeoutMs} ms`);
  }

  get isConnected(): boolean {
    return this.isOpen && !this.isDone;
  }

  send(command: ClientCommand): void {
    if (this.isOpen && !this.isDone) this.req.write(`${JSON.stringify(command)}\n`);
  }

  close(): void {
    this.finish(undefined);
  }

  private onResponse(res: IncomingMessage): void {
    res.on('error', (err) => this.finish(err));
    if (res.statusCode !== 200) {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_REFUSAL_BODY_BYTES) chunks.push(chunk);
      });
      res.on('end', () => this.finish(undefined, { statusCode: res.statusCode ?? 0, message: Buffer.concat(chunks).toString('utf8').trim() }));
      return;
    }
    this.isOpen = true;
    this.armStall(this.options.stallTimeoutMs, `silent for ${this.options.stallTimeoutMs} ms`);
    this.events.onOpen();
    let pending = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (this.isDone) return;
      this.armStall(this.options.stallTimeoutMs, `silent for ${this.options.stallTimeoutMs} ms`);
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0 && !this.isDone) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.length > 0) {
          let message: ServerMessage;
          try {
            message = JSON.parse(line) as ServerMessage;
          } catch (err) {
            return this.finish(new Error(`a line from the discovery server is not JSON (${(err as Error).message})`));
          }
          this.events.onMessage(message);
        }
        newline = pending.indexOf('\n');
      }
      if (pending.length > MAX_MESSAGE_BYTES) this.finish(new Error(`a message from the discovery server longer than ${MAX_MESSAGE_BYTES} bytes`));
    });
    res.on('end', () => this.finish(new Error('the discovery server ended the stream')));
    res.on('close', () => this.finish(new Error('connection to the discovery server lost')));
  }

  private armStall(ms: number, why: string): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => this.finish(new Error(why)), ms);
    this.stallTimer.unref();
  }

  private finish(err: Error | undefined, refusal?: { statusCode: number; message: string }): void {
    if (this.isDone) return;
    this.isDone = true;
    clearTimeout(this.stallTimer);
    this.req.destroy();
    this.events.onClose(err, refusal);
  }
}
