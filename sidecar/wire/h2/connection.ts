import type { Socket } from 'node:net';
import { MeshletError } from '../../../src/common/errors.js';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_WINDOW_BYTES,
  ERROR_CODE,
  FLAG,
  FRAME,
  FRAME_HEADER_BYTES,
  MAX_WINDOW_BYTES,
  SETTING,
  errorCodeName,
  writeFrameHeader,
} from './frame.js';
import { FrameWriter } from './frame-writer.js';
import { HeaderListTooLargeError, HpackDecoder, HpackEncoder, HpackError } from './hpack.js';

/** A header block larger than this (decoded, RFC 9113 6.5.2 accounting) ends the connection. */
export const MAX_HEADER_LIST_BYTES = 256 * 1024;
/** Encoded header bytes gathered across CONTINUATION frames, at most. */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;
/**
 * CONTINUATION frames per header block, at most: a legitimate block of MAX_HEADER_BLOCK_BYTES needs
 * 16 full frames; a stream of tiny or empty ones is the CONTINUATION flood (CVE-2024-27316).
 */
const MAX_CONTINUATION_FRAMES = 64;
/** Queued output above which a connection counts as full: senders wait for 'drain'. */
const SOCKET_HIGH_WATER_BYTES = 256 * 1024;
/** Our PINGs carry these 8 bytes (any answer with ACK counts). */
const PING_PAYLOAD = Buffer.from('meshlet!', 'latin1');
/** How long a connection that sent GOAWAY for an error waits for its peer to read it. */
const ERROR_CLOSE_DELAY_MS = 1_000;
/**
 * Control frames we owe the peer (SETTINGS and PING ACKs, RST_STREAM) that may wait unsent while
 * its socket does not take our output: past this, GOAWAY ENHANCE_YOUR_CALM (CVE-2019-9512,
 * CVE-2019-9515). nghttp2's max outbound ACKs and Envoy's max_outbound_control_frames are both 1000.
 */
export const MAX_QUEUED_CONTROL_FRAMES = 1000;
/**
 * Empty DATA frames (no payload, not ending their stream) a peer may send: a token bucket of this
 * many, refilled at EMPTY_DATA_FRAMES_PER_SECOND; an empty bucket ends the connection
 * (CVE-2019-9518: frames that cost work and carry nothing; no client needs them).
 */
export const EMPTY_DATA_FRAMES_BURST = 10_000;
export const EMPTY_DATA_FRAMES_PER_SECOND = 5_000;
/** A DATA frame carrying fewer payload bytes than this, and not ending its stream, counts as tiny. */
export const TINY_DATA_FRAME_BYTES = 16;
/**
 * Tiny DATA frames a peer may send, with its own bucket: generous, because a gRPC stream of small
 * messages (a 5-byte prefix and a few bytes each, one frame per message) is one of these per
 * message, and must not be cut off at any rate an app really streams at; a flood far above it (a
 * raw client writes millions per second) still ends. Memory is not what this guards: tiny
 * payloads are gathered into shared blocks (leg.ts), so they cost their bytes within the windows.
 */
export const TINY_DATA_FRAMES_BURST = 100_000;
export const TINY_DATA_FRAMES_PER_SECOND = 100_000;
/**
 * Streams the peer may reset before they completed (or make us reset by misusing them): a token
 * bucket of this many, refilled at RAPID_RESETS_PER_SECOND; an empty bucket ends the connection
 * (CVE-2023-44487, Rapid Reset). nghttp2's defaults (stream_reset_burst 1000, stream_reset_rate 33
 * per second).
 */
export const RAPID_RESET_BURST = 1000;
export const RAPID_RESETS_PER_SECOND = 33;

/** The peer broke the protocol: the connection ends with GOAWAY carrying `code` and this message. */
export class H2ProtocolError extends MeshletError {
  constructor(readonly h2Code: number, message: string, cause?: unknown) {
    super('MESHLET_H2_PROTOCOL', message, { cause });
  }
}

/** Something that waits for a connection to accept more DATA (window or socket space). */
export interface Writable {
  flush(): void;
}

/** What happens on a connection's streams; one implementation per side of the relay. */
export interface StreamEvents<S, C> {
  /**
   * `neverIndexed`: positions in `fields` the sender marked never-indexed, to forward as such.
   * `unchecked`: positions whose content the fields.ts checks must judge (the decoder judged the
   * rest when they entered its table); valid only during this call (the array is reused).
   */
  headers(conn: H2Connection<S, C>, streamId: number, fields: string[], endStream: boolean, neverIndexed: number[] | undefined, unchecked: readonly number[]): void;
  /** A header block on `streamId` was larger than MAX_HEADER_LIST_BYTES: only that stream fails. */
  oversizedHeaders(conn: H2Connection<S, C>, streamId: number, endStream: boolean, message: string): void;
  /** `flowBytes` counts padding too: the handler gives it back with credit() once forwarded. */
  data(conn: H2Connection<S, C>, streamId: number, payload: Buffer, flowBytes: number, endStream: boolean): void;
  reset(conn: H2Connection<S, C>, streamId: number, code: number): void;
  windowUpdate(conn: H2Connection<S, C>, streamId: number, increment: number): void;
  /** The peer changed SETTINGS_INITIAL_WINDOW_SIZE: every stream's send window moves by `delta`. */
  initialWindowChanged(conn: H2Connection<S, C>, delta: number): void;
  /** The peer sent a frame that is a stream error (RFC 9113 5.4.2): that stream ends with RST_STREAM `code`. */
  streamError(conn: H2Connection<S, C>, streamId: number, code: number, message: string): void;
  /** Every frame of one socket read was handled (streams opened during it may now start upstream). */
  readEnd(conn: H2Connection<S, C>): void;
  /** The peer will not process streams above `lastStreamId`. */
  goaway(conn: H2Connection<S, C>, lastStreamId: number, code: number, message: string): void;
  /** The connection is gone; `error` says why when it was not a clean close. */
  closed(conn: H2Connection<S, C>, error: Error | undefined): void;
}

export interface ConnectionOptions {
  role: 'server' | 'client';
  /** Our SETTINGS. */
  initialWindowBytes: number;
  connectionWindowBytes: number;
  maxConcurrentStreams?: number;
}

/**
 * One HTTP/2 connection at the frame level: parses frames, keeps HPACK state and the connection
 * flow-control windows, answers SETTINGS and PING, and reports stream traffic to its StreamEvents.
 * It creates no object per stream: `streams` maps stream ids to whatever the relay keeps per stream.
 */
export class H2Connection<S, C> {
  readonly streams = new Map<number, S>();
  readonly writer: FrameWriter;
  /** Peer SETTINGS, as last received. */
  peerInitialWindow = DEFAULT_WINDOW_BYTES;
  peerMaxFrame = DEFAULT_MAX_FRAME_BYTES;
  peerMaxStreams = Infinity;
  settingsReceived = false;
  /** What the peer lets us send on the connection. */
  sendWindow = DEFAULT_WINDOW_BYTES;
  /** Highest stream id the peer opened, as the relay accepted them (for our GOAWAY). */
  lastPeerStreamId = 0;
  /** We sent GOAWAY: no new peer streams. */
  goingAway = false;
  /** The peer sent GOAWAY: no new streams of ours. */
  peerGoingAway = false;
  isClosed = false;
  /** performance.now() when the peer last sent anything: a silent connection gets a PING. */
  lastReadAt = performance.now();
  /** performance.now() when the last stream closed (or the connection opened): for idle timeouts. */
  idleSince = this.lastReadAt;
  /** Frames of a socket read are being handled now. */
  isReading = false;
  /** Streams waiting for connection window or socket space. */
  readonly waiting = new Set<Writable>();
  /** Called on every SETTINGS from the peer and when GOAWAY or close changes usability. */
  onStateChange: ((conn: H2Connection<S, C>) => void) | undefined = undefined;

  private readonly decoder = new HpackDecoder();
  private readonly encoder = new HpackEncoder();
  private partial: Buffer | null = null;
  private prefaceBytesLeft: number;
  /** What the peer may still send on the connection before we give credit. */
  private recvWindow: number;
  private pendingCredit = 0;
  private readonly creditThreshold: number;
  /** A header block being gathered across CONTINUATION frames. */
  private headerStreamId = 0;
  private headerEndStream = false;
  private headerParts: Buffer[] = [];
  private headerBytes = 0;
  private headerFrames = 0;
  /** Scratch for the decoder's never-indexed positions (almost always left empty). */
  private readonly neverIndexed: number[] = [];
  /** Scratch for the positions of fields the checks must still judge (the decoder's `unchecked`). */
  private readonly uncheckedFields: number[] = [];
  private closeError: Error | undefined = undefined;
  /** performance.now() when our unanswered PING went out, or 0. */
  private pingSentAt = 0;
  /** The peer is an app (we are the server): the abuse budgets apply; endpoints are trusted more. */
  private readonly isAppFacing: boolean;
  /** Control frames written since the socket last had nothing queued. */
  private queuedControlFrames = 0;
  /** Reading stopped until 'drain': the peer does not take our output. */
  private isReadPaused = false;
  private emptyDataTokens = EMPTY_DATA_FRAMES_BURST;
  private tinyDataTokens = TINY_DATA_FRAMES_BURST;
  private resetTokens = RAPID_RESET_BURST;
  /** performance.now() when the token buckets were last refilled. */
  private refilledAt = this.lastReadAt;

  constructor(
    readonly socket: Socket,
    private readonly events: StreamEvents<S, C>,
    readonly options: ConnectionOptions,
    /** What the relay keeps per connection. */
    readonly context: C,
  ) {
    this.writer = new FrameWriter(socket);
    this.isAppFacing = options.role === 'server';
    this.prefaceBytesLeft = this.isAppFacing ? CLIENT_PREFACE.length : 0;
    this.recvWindow = options.connectionWindowBytes;
    this.creditThreshold = options.connectionWindowBytes >>> 4;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('drain', () => {
      this.queuedControlFrames = 0;
      if (this.isReadPaused) {
        this.isReadPaused = false;
        socket.resume();
      }
      try {
        this.wake();
      } catch (err) {
        this.fail(new H2ProtocolError(ERROR_CODE.INTERNAL_ERROR, `meshlet internal error: ${(err as Error).message}`, err));
      }
    });
    socket.on('error', (err) => {
      this.closeError ??= err;
    });
    socket.on('close', () => this.onSocketClose());
    this.writePreamble();
    socket.resume();
  }

  /** DATA bytes the peer sent that we have not passed on yet (they hold its connection window). */
  get unforwardedBytes(): number {
    return this.options.connectionWindowBytes - this.recvWindow - this.pendingCredit;
  }

  /** The socket has so much queued that streams should wait for 'drain'. */
  get isCongested(): boolean {
    return this.socket.writableLength > SOCKET_HIGH_WATER_BYTES;
  }

  // ------------------------------------------------------------------ writing

  writeHeaders(streamId: number, fields: readonly string[], endStream: boolean, neverIndexed?: readonly number[]): void {
    const writer = this.writer;
    const bound = HpackEncoder.maxEncodedLength(fields);
    const start = writer.reserve(FRAME_HEADER_BYTES + bound);
    const end = this.encoder.encode(fields, writer.slab, start + FRAME_HEADER_BYTES, neverIndexed);
    const blockLength = end - start - FRAME_HEADER_BYTES;
    const flags = endStream ? FLAG.END_STREAM : 0;
    if (blockLength <= this.peerMaxFrame) {
      writeFrameHeader(writer.slab, start, blockLength, FRAME.HEADERS, flags | FLAG.END_HEADERS, streamId);
      writer.commit(end - start);
      return;
    }
    // Rare: a block larger than one frame goes out as HEADERS + CONTINUATION frames.
    const block = Buffer.from(writer.slab.subarray(start + FRAME_HEADER_BYTES, end));
    for (let offset = 0; offset < block.length; offset += this.peerMaxFrame) {
      const piece = block.subarray(offset, offset + this.peerMaxFrame);
      const last = offset + this.peerMaxFrame >= block.length;
      const type = offset === 0 ? FRAME.HEADERS : FRAME.CONTINUATION;
      this.writeFrame(type, (offset === 0 ? flags : 0) | (last ? FLAG.END_HEADERS : 0), streamId, piece);
    }
  }

  /** One DATA frame: the caller has checked both windows and the peer's max frame size. */
  writeData(streamId: number, payload: Buffer, endStream: boolean): void {
    this.sendWindow -= payload.length;
    this.writeFrame(FRAME.DATA, endStream ? FLAG.END_STREAM : 0, streamId, payload);
  }

  writeReset(streamId: number, code: number): void {
    this.queuedControlFrames++;
    this.writeU32Frame(FRAME.RST_STREAM, streamId, code);
  }

  /**
   * The peer reset a stream it had not seen completed, or made us reset one: one token of the
   * Rapid Reset budget. Throws (ending the connection with ENHANCE_YOUR_CALM) when it is spent.
   */
  chargePrematureReset(): void {
    if (--this.resetTokens >= 0) return;
    throw new H2ProtocolError(
      ERROR_CODE.ENHANCE_YOUR_CALM,
      `more than ${RAPID_RESET_BURST} streams reset before they completed, by the peer or for its errors (at most ${RAPID_RESETS_PER_SECOND} per second after that)`,
    );
  }

  writeWindowUpdate(streamId: number, increment: number): void {
    this.writeU32Frame(FRAME.WINDOW_UPDATE, streamId, increment);
  }

  /** Gives back connection-level credit for `bytes` the peer sent and we have passed on. */
  credit(bytes: number): void {
    const pending = this.pendingCredit + bytes;
    if (pending >= this.creditThreshold) {
      this.pendingCredit = 0;
      this.recvWindow += pending;
      if (!this.isClosed) this.writeWindowUpdate(0, pending);
    } else {
      this.pendingCredit = pending;
    }
  }

  /** Sends a PING unless one is still unanswered. */
  ping(): void {
    if (this.pingSentAt !== 0 || this.isClosed) return;
    this.pingSentAt = performance.now();
    this.writeFrame(FRAME.PING, 0, 0, PING_PAYLOAD);
  }

  /** How long our PING has gone unanswered (0: none outstanding). */
  get unansweredPingMs(): number {
    return this.pingSentAt === 0 ? 0 : performance.now() - this.pingSentAt;
  }

  /** Graceful end: GOAWAY, then the socket closes once no stream is left. */
  shutdown(): void {
    if (this.isClosed) return;
    if (!this.goingAway) {
      this.goingAway = true;
      this.writeGoaway(ERROR_CODE.NO_ERROR, '');
    }
    this.endIfIdle();
  }

  /** Closes the socket when going away and no stream is left. */
  endIfIdle(): void {
    if ((this.goingAway || this.peerGoingAway) && this.streams.size === 0 && !this.isClosed) {
      this.writer.flush();
      this.socket.end();
    }
  }

  /** Ends the connection for a protocol error: GOAWAY naming it, then close. */
  fail(error: H2ProtocolError): void {
    if (this.isClosed) return;
    this.closeError ??= error;
    if (!this.goingAway) {
      this.goingAway = true;
      this.writeGoaway(error.h2Code, error.message);
    }
    this.writer.flush();
    // Nothing more it sends is wanted: it stays in the kernel until the socket is destroyed.
    this.socket.pause();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), ERROR_CLOSE_DELAY_MS).unref();
    this.onSocketClose();
  }

  /** Drops the connection at once (peer gone, or the proxy is closing). */
  destroy(error?: Error): void {
    this.closeError ??= error;
    this.socket.destroy();
  }

  private writeFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    const writer = this.writer;
    const offset = writer.reserve(FRAME_HEADER_BYTES);
    writeFrameHeader(writer.slab, offset, payload.length, type, flags, streamId);
    writer.commit(FRAME_HEADER_BYTES);
    writer.append(payload);
  }

  /** A frame whose payload is one 32-bit value (RST_STREAM, WINDOW_UPDATE), packed into the slab. */
  private writeU32Frame(type: number, streamId: number, value: number): void {
    const offset = this.writer.reserve(FRAME_HEADER_BYTES + 4);
    const slab = this.writer.slab;
    writeFrameHeader(slab, offset, 4, type, 0, streamId);
    slab.writeUInt32BE(value, offset + FRAME_HEADER_BYTES);
    this.writer.commit(FRAME_HEADER_BYTES + 4);
  }

  private writeGoaway(code: number, message: string): void {
    const debug = Buffer.from(message, 'utf8');
    const payload = Buffer.allocUnsafe(8 + debug.length);
    payload.writeUInt32BE(this.lastPeerStreamId, 0);
    payload.writeUInt32BE(code, 4);
    debug.copy(payload, 8);
    this.writeFrame(FRAME.GOAWAY, 0, 0, payload);
  }

  private writePreamble(): void {
    const options = this.options;
    const settings: number[] = [SETTING.INITIAL_WINDOW_SIZE, options.initialWindowBytes];
    if (options.role === 'client') settings.push(SETTING.ENABLE_PUSH, 0);
    if (options.maxConcurrentStreams !== undefined) settings.push(SETTING.MAX_CONCURRENT_STREAMS, options.maxConcurrentStreams);
    settings.push(SETTING.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_BYTES);
    if (options.role === 'client') this.writer.append(CLIENT_PREFACE);
    const payload = Buffer.allocUnsafe((settings.length / 2) * 6);
    for (let i = 0; i < settings.length; i += 2) {
      payload.writeUInt16BE(settings[i]!, i * 3);
      payload.writeUInt32BE(settings[i + 1]!, i * 3 + 2);
    }
    this.writeFrame(FRAME.SETTINGS, 0, 0, payload);
    if (options.connectionWindowBytes > DEFAULT_WINDOW_BYTES) this.writeWindowUpdate(0, options.connectionWindowBytes - DEFAULT_WINDOW_BYTES);
  }

  // ------------------------------------------------------------------ reading

  private read(chunk: Buffer): void {
    const now = performance.now();
    this.lastReadAt = now;
    this.refill(now);
    if (this.socket.writableLength === 0) this.queuedControlFrames = 0;
    let buf = chunk;
    if (this.partial !== null) {
      buf = Buffer.concat([this.partial, chunk]);
      this.partial = null;
    }
    let pos = 0;
    this.isReading = true;
    try {
      if (this.prefaceBytesLeft > 0) {
        pos = this.readPreface(buf);
        if (this.prefaceBytesLeft > 0) return;
      }
      const length = buf.length;
      while (!this.isClosed && length - pos >= FRAME_HEADER_BYTES) {
        const frameLength = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
        if (frameLength > DEFAULT_MAX_FRAME_BYTES) {
          throw new H2ProtocolError(ERROR_CODE.FRAME_SIZE_ERROR, `a ${frameLength}-byte frame; frames may carry at most ${DEFAULT_MAX_FRAME_BYTES} bytes (SETTINGS_MAX_FRAME_SIZE)`);
        }
        if (length - pos - FRAME_HEADER_BYTES < frameLength) break;
        const start = pos + FRAME_HEADER_BYTES;
        pos = start + frameLength;
        this.onFrame(buf[start - 6]!, buf[start - 5]!, buf.readUInt32BE(start - 4) & 0x7fffffff, buf, start, pos);
        if (this.queuedControlFrames > MAX_QUEUED_CONTROL_FRAMES && this.isAppFacing) {
          throw new H2ProtocolError(ERROR_CODE.ENHANCE_YOUR_CALM, `more than ${MAX_QUEUED_CONTROL_FRAMES} control frames (SETTINGS or PING ACKs, resets) waiting for the peer to read them`);
        }
      }
      this.events.readEnd(this);
    } catch (err) {
      // A bug of ours must cost this connection, never the process serving everyone else.
      this.fail(err instanceof H2ProtocolError ? err : new H2ProtocolError(ERROR_CODE.INTERNAL_ERROR, `meshlet internal error: ${(err as Error).message}`, err));
      return;
    } finally {
      this.isReading = false;
    }
    if (this.isClosed) return;
    if (pos < buf.length) this.partial = buf.subarray(pos);
    // An app that does not read what we send gets nothing more read from it until it does
    // ('drain' resumes: above the socket's high-water mark a write has returned false).
    if (this.isAppFacing && this.isCongested) {
      this.isReadPaused = true;
      this.socket.pause();
    }
  }

  /** One DATA frame of under TINY_DATA_FRAME_BYTES that does not end its stream: past its budget, the connection ends. */
  private chargeSmallData(flowBytes: number): void {
    if (flowBytes === 0) {
      if (--this.emptyDataTokens >= 0) return;
      throw new H2ProtocolError(ERROR_CODE.ENHANCE_YOUR_CALM, `more than ${EMPTY_DATA_FRAMES_BURST} empty DATA frames (at most ${EMPTY_DATA_FRAMES_PER_SECOND} per second after that)`);
    }
    if (--this.tinyDataTokens >= 0) return;
    throw new H2ProtocolError(
      ERROR_CODE.ENHANCE_YOUR_CALM,
      `more than ${TINY_DATA_FRAMES_BURST} DATA frames of under ${TINY_DATA_FRAME_BYTES} bytes (at most ${TINY_DATA_FRAMES_PER_SECOND} per second after that)`,
    );
  }

  /** Refills the token buckets for the time since the last read. */
  private refill(now: number): void {
    const seconds = (now - this.refilledAt) / 1000;
    if (seconds < 0.01) return;
    this.refilledAt = now;
    const empty = this.emptyDataTokens + seconds * EMPTY_DATA_FRAMES_PER_SECOND;
    this.emptyDataTokens = empty > EMPTY_DATA_FRAMES_BURST ? EMPTY_DATA_FRAMES_BURST : empty;
    const tiny = this.tinyDataTokens + seconds * TINY_DATA_FRAMES_PER_SECOND;
    this.tinyDataTokens = tiny > TINY_DATA_FRAMES_BURST ? TINY_DATA_FRAMES_BURST : tiny;
    const resets = this.resetTokens + seconds * RAPID_RESETS_PER_SECOND;
    this.resetTokens = resets > RAPID_RESET_BURST ? RAPID_RESET_BURST : resets;
  }

  private readPreface(buf: Buffer): number {
    const offset = CLIENT_PREFACE.length - this.prefaceBytesLeft;
    const n = Math.min(this.prefaceBytesLeft, buf.length);
    for (let i = 0; i < n; i++) {
      if (buf[i] !== CLIENT_PREFACE[offset + i]) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'the connection did not start with the HTTP/2 client preface');
    }
    this.prefaceBytesLeft -= n;
    return n;
  }

  private onFrame(type: number, flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (this.headerStreamId !== 0) {
      if (type !== FRAME.CONTINUATION || streamId !== this.headerStreamId) {
        throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `a header block on stream ${this.headerStreamId} was interrupted by another frame; only CONTINUATION frames of that stream may follow`);
      }
      this.gatherHeaderBlock(buf, start, end, flags);
      return;
    }
    switch (type) {
      case FRAME.DATA:
        return this.onData(flags, streamId, buf, start, end);
      case FRAME.HEADERS:
        return this.onHeaders(flags, streamId, buf, start, end);
      case FRAME.PRIORITY:
        return this.onPriority(streamId, buf, start, end);
      case FRAME.RST_STREAM:
        if (streamId === 0 || end - start !== 4) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'RST_STREAM must carry 4 bytes on a stream other than 0');
        this.events.reset(this, streamId, buf.readUInt32BE(start));
        return;
      case FRAME.SETTINGS:
        return this.onSettings(flags, streamId, buf, start, end);
      case FRAME.PUSH_PROMISE:
        throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'PUSH_PROMISE received, but push is disabled');
      case FRAME.PING:
        return this.onPing(flags, streamId, buf, start, end);
      case FRAME.GOAWAY:
        return this.onGoaway(streamId, buf, start, end);
      case FRAME.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, buf, start, end);
      case FRAME.CONTINUATION:
        throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `CONTINUATION on stream ${streamId} without a HEADERS frame before it`);
      default:
        return; // Unknown frame types are ignored (RFC 9113 4.1).
    }
  }

  /** PRIORITY is ignored (RFC 9113 5.3.2), but must still be well formed (6.3). */
  private onPriority(streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId === 0) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'PRIORITY on stream 0');
    if (end - start !== 5) {
      this.events.streamError(this, streamId, ERROR_CODE.FRAME_SIZE_ERROR, `PRIORITY of ${end - start} bytes on stream ${streamId}; it must carry 5`);
    } else if ((buf.readUInt32BE(start) & 0x7fffffff) === streamId) {
      this.events.streamError(this, streamId, ERROR_CODE.PROTOCOL_ERROR, `PRIORITY makes stream ${streamId} depend on itself`);
    }
  }

  private onData(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId === 0) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'DATA on stream 0');
    const flowBytes = end - start;
    if (flowBytes < TINY_DATA_FRAME_BYTES && (flags & FLAG.END_STREAM) === 0 && this.isAppFacing) this.chargeSmallData(flowBytes);
    this.recvWindow -= flowBytes;
    if (this.recvWindow < 0) throw new H2ProtocolError(ERROR_CODE.FLOW_CONTROL_ERROR, 'DATA beyond the connection flow-control window');
    let payloadEnd = end;
    if ((flags & FLAG.PADDED) !== 0) {
      const padding = flowBytes > 0 ? buf[start]! : 0;
      if (flowBytes === 0 || padding >= flowBytes) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'DATA padding longer than the frame');
      start++;
      payloadEnd -= padding;
    }
    this.events.data(this, streamId, buf.subarray(start, payloadEnd), flowBytes, (flags & FLAG.END_STREAM) !== 0);
  }

  private onHeaders(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId === 0) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let blockEnd = end;
    if ((flags & FLAG.PADDED) !== 0) {
      const padding = end > start ? buf[start]! : 0;
      start++;
      blockEnd -= padding;
    }
    if ((flags & FLAG.PRIORITY) !== 0) start += 5;
    if (blockEnd < start) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `HEADERS on stream ${streamId}: padding and priority longer than the frame`);
    this.headerEndStream = (flags & FLAG.END_STREAM) !== 0;
    this.headerStreamId = streamId;
    this.gatherHeaderBlock(buf, start, blockEnd, flags);
  }

  /** A HEADERS or CONTINUATION fragment at buf[start, end); decoded in place when it is the whole block. */
  private gatherHeaderBlock(buf: Buffer, start: number, end: number, flags: number): void {
    const streamId = this.headerStreamId;
    let block = buf;
    let blockStart = start;
    let blockEnd = end;
    if ((flags & FLAG.END_HEADERS) === 0 || this.headerFrames > 0) {
      const length = end - start;
      this.headerBytes += length;
      if (this.headerBytes > MAX_HEADER_BLOCK_BYTES) {
        throw new H2ProtocolError(ERROR_CODE.ENHANCE_YOUR_CALM, `a header block on stream ${streamId} larger than ${MAX_HEADER_BLOCK_BYTES} bytes`);
      }
      if (++this.headerFrames > MAX_CONTINUATION_FRAMES + 1) {
        throw new H2ProtocolError(ERROR_CODE.ENHANCE_YOUR_CALM, `a header block on stream ${streamId} in more than ${MAX_CONTINUATION_FRAMES} CONTINUATION frames`);
      }
      if (length > 0) {
        const part = Buffer.allocUnsafe(length);
        buf.copy(part, 0, start, end);
        this.headerParts.push(part);
      }
      if ((flags & FLAG.END_HEADERS) === 0) return;
      block = this.headerParts.length === 1 ? this.headerParts[0]! : Buffer.concat(this.headerParts);
      blockStart = 0;
      blockEnd = block.length;
      this.headerParts = [];
      this.headerBytes = 0;
      this.headerFrames = 0;
    }
    this.headerStreamId = 0;
    const fields: string[] = [];
    const neverIndexed = this.neverIndexed;
    neverIndexed.length = 0;
    const unchecked = this.uncheckedFields;
    unchecked.length = 0;
    try {
      this.decoder.decodeRange(block, blockStart, blockEnd, fields, MAX_HEADER_LIST_BYTES, neverIndexed, unchecked);
    } catch (err) {
      if (err instanceof HeaderListTooLargeError) {
        this.events.oversizedHeaders(this, streamId, this.headerEndStream, err.message);
        return;
      }
      if (err instanceof HpackError) throw new H2ProtocolError(ERROR_CODE.COMPRESSION_ERROR, `stream ${streamId}: ${err.message}`);
      throw err;
    }
    this.events.headers(this, streamId, fields, this.headerEndStream, neverIndexed.length > 0 ? neverIndexed.slice() : undefined, unchecked);
  }

  private onSettings(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId !== 0) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'SETTINGS on a stream other than 0');
    if ((flags & FLAG.ACK) !== 0) {
      if (end !== start) throw new H2ProtocolError(ERROR_CODE.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if ((end - start) % 6 !== 0) throw new H2ProtocolError(ERROR_CODE.FRAME_SIZE_ERROR, 'SETTINGS payload not a multiple of 6 bytes');
    for (let pos = start; pos < end; pos += 6) {
      const id = buf.readUInt16BE(pos);
      const value = buf.readUInt32BE(pos + 2);
      if (id === SETTING.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW_BYTES) throw new H2ProtocolError(ERROR_CODE.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} above 2^31-1`);
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        if (delta !== 0) this.events.initialWindowChanged(this, delta);
      } else if (id === SETTING.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME_BYTES || value > 0xffffff) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} outside 16384..16777215`);
        this.peerMaxFrame = value;
      } else if (id === SETTING.MAX_CONCURRENT_STREAMS) {
        this.peerMaxStreams = value;
      } else if (id === SETTING.ENABLE_PUSH && value > 1) {
        throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}; allowed: 0 or 1`);
      }
    }
    this.queuedControlFrames++;
    const offset = this.writer.reserve(FRAME_HEADER_BYTES);
    writeFrameHeader(this.writer.slab, offset, 0, FRAME.SETTINGS, FLAG.ACK, 0);
    this.writer.commit(FRAME_HEADER_BYTES);
    this.settingsReceived = true;
    this.onStateChange?.(this);
  }

  private onPing(flags: number, streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId !== 0 || end - start !== 8) throw new H2ProtocolError(ERROR_CODE.FRAME_SIZE_ERROR, 'PING must carry 8 bytes on stream 0');
    if ((flags & FLAG.ACK) !== 0) {
      this.pingSentAt = 0;
      return;
    }
    this.queuedControlFrames++;
    const offset = this.writer.reserve(FRAME_HEADER_BYTES + 8);
    const slab = this.writer.slab;
    writeFrameHeader(slab, offset, 8, FRAME.PING, FLAG.ACK, 0);
    buf.copy(slab, offset + FRAME_HEADER_BYTES, start, end);
    this.writer.commit(FRAME_HEADER_BYTES + 8);
  }

  private onGoaway(streamId: number, buf: Buffer, start: number, end: number): void {
    if (streamId !== 0 || end - start < 8) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'GOAWAY must carry at least 8 bytes on stream 0');
    const lastStreamId = buf.readUInt32BE(start) & 0x7fffffff;
    const code = buf.readUInt32BE(start + 4);
    const message = buf.toString('utf8', start + 8, end);
    this.peerGoingAway = true;
    this.onStateChange?.(this);
    this.events.goaway(this, lastStreamId, code, message || errorCodeName(code));
    this.endIfIdle();
  }

  private onWindowUpdate(streamId: number, buf: Buffer, start: number, end: number): void {
    if (end - start !== 4) throw new H2ProtocolError(ERROR_CODE.FRAME_SIZE_ERROR, 'WINDOW_UPDATE must carry 4 bytes');
    const increment = buf.readUInt32BE(start) & 0x7fffffff;
    if (increment === 0 && streamId !== 0) {
      this.events.streamError(this, streamId, ERROR_CODE.PROTOCOL_ERROR, `WINDOW_UPDATE of 0 on stream ${streamId}`);
      return;
    }
    if (streamId === 0) {
      if (increment === 0) throw new H2ProtocolError(ERROR_CODE.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW_BYTES) throw new H2ProtocolError(ERROR_CODE.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      this.wake();
      return;
    }
    this.events.windowUpdate(this, streamId, increment);
  }

  /** Lets the streams that waited for window or socket space write again. */
  wake(): void {
    if (this.waiting.size === 0 || this.sendWindow <= 0 || this.isCongested) return;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const w of waiting) w.flush();
  }

  private onSocketClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.waiting.clear();
    this.onStateChange?.(this);
    this.events.closed(this, this.closeError);
  }
}
