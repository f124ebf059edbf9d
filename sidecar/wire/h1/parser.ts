import { METHODS } from 'node:http';

/**
 * An incremental, strict HTTP/1.1 message parser (RFC 9112) for request and response heads and
 * bodies. It is fed the socket's reads as they come and reports a head, body data (slices of the
 * reads, never copied), trailers and the end of each message. Anything two implementations could
 * frame differently is refused rather than guessed (request smuggling: RFC 9112 section 11.2):
 * Content-Length with Transfer-Encoding, duplicate or non-decimal Content-Length, obs-fold, bare CR
 * or LF, control characters, malformed chunk sizes. Node's llhttp (strict mode) is the reference
 * for what is accepted; test/sidecar/wire/h1/parser-differential.test.ts compares the two.
 */

/** Bytes a head (start line and fields) may take, like node:http's default --max-http-header-size. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Header fields a head may have (HAProxy allows 101, Envoy 100). Trailers count the same. */
export const MAX_HEADER_FIELDS = 100;
/** A chunk size beyond this is refused: 2^53 - 1, the largest count a JS number holds exactly. */
const MAX_CHUNK_SIZE = Number.MAX_SAFE_INTEGER;
/** Bytes a chunk-size line (size and extensions) may take. */
const MAX_CHUNK_LINE_BYTES = 4096;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const SEMICOLON = 0x3b;
const COLON = 0x3a;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/** tchar of RFC 9110 section 5.6.2, by byte. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;
/** field-vchar, SP and HTAB (RFC 9110 section 5.5): every byte but the controls and DEL. */
const FIELD_VALUE = new Uint8Array(256);
for (let c = 0x20; c <= 0xff; c++) FIELD_VALUE[c] = c === 0x7f ? 0 : 1;
FIELD_VALUE[HTAB] = 1;
/** Bytes allowed in a request target: visible ASCII, as llhttp allows (no obs-text). */
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;
/** The methods llhttp knows (node:http's METHODS); others are refused, as Node refuses them. */
const KNOWN_METHODS = new Set(METHODS);
/** Every prefix of a known method, to refuse an unknown one from its first bytes. */
const METHOD_PREFIXES = new Set(METHODS.flatMap((m) => Array.from({ length: m.length }, (_, i) => m.slice(0, i + 1))));
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}
/** scheme "://" at the start of an absolute-form target (RFC 3986 section 3.1). */
const ABSOLUTE_TARGET = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

const NO_BYTES = Buffer.alloc(0);

/** How a message body is delimited (RFC 9112 section 6.3). */
export const FRAMING = { none: 0, length: 1, chunked: 2, close: 3 } as const;
export type Framing = (typeof FRAMING)[keyof typeof FRAMING];

/** A parsed request or response head. Field names keep the case they were sent in. */
export interface H1Head {
  /** Request: the method; response: "". */
  method: string;
  /** Request: the request target as sent; response: "". */
  target: string;
  /** Response: the status code; request: 0. */
  status: number;
  /** Response: the reason phrase (may be empty). */
  reason: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  /** name, value, name, value, ... (values without surrounding whitespace). */
  fields: string[];
  framing: Framing;
  /** Content-Length when framing is `length`, else -1. */
  contentLength: number;
  /** The Transfer-Encoding value when framing is `chunked` (usually "chunked"). */
  transferEncoding: string;
  /** The Host field (requests), or undefined. */
  host: string | undefined;
  /** Connection tokens, lowercased ("close", "keep-alive", "upgrade", or field names). */
  connection: string[] | undefined;
  /** The Upgrade field, or undefined. */
  upgrade: string | undefined;
  /** The connection stays open after this message (RFC 9112 section 9.3). */
  keepAlive: boolean;
  /** A request asking to switch protocols (Connection: upgrade and Upgrade), or CONNECT. */
  isUpgrade: boolean;
}

/**
 * Where the bytes of the head being reported are, for an owner that forwards them as they came.
 * Valid only during onHead: the bytes may be a view of a read buffer that the next read reuses.
 */
export interface H1RawHead {
  /** The head is buf[start, end), its empty line included. */
  buf: Buffer;
  start: number;
  end: number;
  /**
   * Where field line i (fields[2i], fields[2i + 1]) starts in buf; it ends, CRLF included, where the
   * next starts, or at end - 2. Entries from fields.length / 2 on are left over from earlier heads.
   */
  lineStarts: number[];
  /** Every field line is already "name: value" (one space after the colon, no whitespace after the value). */
  isCanonical: boolean;
}

/** What a parser tells its owner. The owner may call pause() from any of these. */
export interface H1ParserEvents {
  onHead(head: H1Head, raw: H1RawHead): void;
  /** A slice of the read given to execute(): valid until the owner returns, unless it keeps the Buffer. */
  onBody(data: Buffer): void;
  /** The message is complete; `trailers` are those of a chunked body (name, value, ...), if any. */
  onEnd(trailers: string[] | undefined): void;
  /** The input is malformed: nothing more is parsed. `status` is what a server answers (400 or 431). */
  onError(status: number, reason: string): void;
}

const STATE = {
  head: 0,
  body: 1,
  chunkSize: 2,
  chunkExt: 3,
  chunkExtValue: 11,
  chunkExtQuoted: 12,
  chunkExtValueEnd: 13,
  chunkSizeLf: 4,
  chunkData: 5,
  chunkDataCr: 6,
  chunkDataLf: 7,
  trailers: 8,
  closeBody: 9,
  /** After an upgrade head, or an error: the parser takes nothing more. */
  done: 10,
} as const;
type State = (typeof STATE)[keyof typeof STATE];
/** In a chunk extension: after ";" (a name must follow), in its name, in its token value. */
const EXT = { start: 0, name: 1, value: 2 } as const;

/**
 * Parses one connection's messages in one direction. execute() consumes bytes until the input ends
 * or the owner pauses it, and returns how many it consumed; the owner keeps the rest and gives it
 * again after resume(). A response parser must be told each request's method (HEAD has no body).
 */
export class H1Parser {
  private state: State = STATE.head;
  private paused = false;
  /** An incomplete head (or trailer section) carried over from earlier reads. */
  private pending: Buffer | undefined = undefined;
  /** Bytes of `pending` already checked to be complete, valid lines. */
  private pendingScanned = 0;
  private remaining = 0;
  private chunkLineBytes = 0;
  private chunkDigits = 0;
  /** Where in a chunk extension the parser is. */
  private extPart: number = EXT.start;
  private head: H1Head | undefined = undefined;
  /** Where the head being reported lies; one per parser, rewritten for each head. */
  private readonly raw: H1RawHead = { buf: NO_BYTES, start: 0, end: 0, lineStarts: [], isCanonical: true };
  /** For a response parser: the method of the request being answered. */
  requestMethod = 'GET';

  constructor(
    readonly kind: 'request' | 'response',
    private readonly events: H1ParserEvents,
  ) {}

  /** Stops execute() after the current event; the rest of its input is left to the owner. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Between messages, with no byte of the next one seen. */
  get isIdle(): boolean {
    return this.state === STATE.head && this.pending === undefined;
  }

  /** Whether a message's body (or trailers) is being read. */
  get inBody(): boolean {
    return this.state !== STATE.head && this.state !== STATE.done;
  }

  /** The parser takes nothing more (after an upgrade, a CONNECT, or an error). */
  get isDone(): boolean {
    return this.state === STATE.done;
  }

  /** Parses from `data[start]` on; returns the offset where it stopped (data.length unless paused or done). */
  execute(data: Buffer, start = 0): number {
    let i = start;
    const end = data.length;
    while (i < end && !this.paused) {
      switch (this.state) {
        case STATE.head:
          i = this.readHead(data, i);
          break;
        case STATE.body: {
          const n = Math.min(this.remaining, end - i);
          this.remaining -= n;
          const slice = data.subarray(i, i + n);
          i += n;
          this.events.onBody(slice);
          if (this.remaining === 0 && this.state === STATE.body) this.finish(undefined);
          break;
        }
        case STATE.closeBody: {
          const slice = i === 0 ? data : data.subarray(i);
          i = end;
          this.events.onBody(slice);
          break;
        }
        case STATE.chunkData: {
          const n = Math.min(this.remaining, end - i);
          this.remaining -= n;
          const slice = data.subarray(i, i + n);
          i += n;
          if (this.remaining === 0) this.state = STATE.chunkDataCr;
          this.events.onBody(slice);
          break;
        }
        case STATE.trailers:
          i = this.readTrailers(data, i);
          break;
        case STATE.done:
          return i;
        default:
          i = this.readChunkFraming(data, i, end);
      }
    }
    return i;
  }

  /** The connection ended: a close-delimited body is complete; anything else half-read is an error. */
  finishOnClose(): boolean {
    if (this.state === STATE.closeBody) {
      this.finish(undefined);
      return true;
    }
    return this.isIdle;
  }

  /** Expects no more messages (after an upgrade or a protocol switch). */
  stop(): void {
    this.state = STATE.done;
  }

  private fail(status: number, reason: string): number {
    this.state = STATE.done;
    this.pending = undefined;
    this.events.onError(status, reason);
    return Number.MAX_SAFE_INTEGER;
  }

  private finish(trailers: string[] | undefined): void {
    this.state = STATE.head;
    this.head = undefined;
    this.events.onEnd(trailers);
  }

  // ---------------------------------------------------------------- heads

  /** Finds the end of a head (an empty line), checking every line ends in CRLF as it goes. */
  private readHead(data: Buffer, start: number): number {
    let from = start;
    if (this.pending === undefined && this.kind === 'request') {
      // RFC 9112 section 2.2: empty lines before a request line are ignored.
      while (from + 1 < data.length && data[from] === CR && data[from + 1] === LF) from += 2;
      if (from >= data.length) return data.length;
    }
    const block = this.scanBlock(data, start, from, HEAD_TEXTS);
    if (typeof block === 'number') return block;
    if (!this.parseHead(block.buf, block.from, block.end)) return Number.MAX_SAFE_INTEGER;
    return block.consumed;
  }

  /**
   * Scans the lines of a head or a trailer section from data[from..], after the bytes carried over
   * from earlier reads, up to the empty line that ends it, checking every line ends in CRLF. Gives
   * the block, or what the caller returns: data.length while it is incomplete (the rest is carried
   * over, at most MAX_HEAD_BYTES), or a failure's result.
   */
  private scanBlock(data: Buffer, start: number, from: number, texts: BlockTexts): Block | number {
    let buf = data;
    let lineStart = from;
    /** Where data[start] is in buf: after the carried-over bytes. */
    let shift = 0;
    if (this.pending !== undefined) {
      lineStart = this.pendingScanned;
      shift = this.pending.length;
      buf = Buffer.concat([this.pending, data.subarray(start)]);
      from = 0;
    }
    for (;;) {
      const lf = buf.indexOf(LF, lineStart);
      if (lf < 0 || lf - from >= MAX_HEAD_BYTES) {
        if (buf.length - from > MAX_HEAD_BYTES) return this.fail(this.kind === 'request' ? 431 : 502, texts.tooLarge);
        const cr = buf.indexOf(CR, lineStart);
        if (cr >= 0 && cr < buf.length - 1) return this.fail(400, texts.bareCr);
        if (texts.isHead && lineStart === from && this.kind === 'request' && !isMethodSoFar(buf, from)) return this.fail(400, `the request line does not start with a known method; allowed: ${METHODS.join(', ')}`);
        this.pending = buf === data ? Buffer.from(data.subarray(from)) : buf;
        this.pendingScanned = lineStart - from;
        return data.length;
      }
      if (lf === lineStart || buf[lf - 1] !== CR) return this.fail(400, texts.bareLf);
      if (buf.indexOf(CR, lineStart) !== lf - 1) return this.fail(400, texts.bareCr);
      if (lf === lineStart + 1) {
        const end = lf + 1;
        this.pending = undefined;
        this.pendingScanned = 0;
        return { buf, from, end, consumed: buf === data ? end : start + end - shift };
      }
      lineStart = lf + 1;
    }
  }

  /** Parses a complete head buf[start, end) (ending in CRLFCRLF); reports it or an error. */
  private parseHead(buf: Buffer, start: number, end: number): boolean {
    const text = buf.toString('latin1', start, end - 2);
    const firstEnd = text.indexOf('\r\n');
    const head: H1Head = {
      method: '',
      target: '',
      status: 0,
      reason: '',
      minor: 1,
      fields: [],
      framing: FRAMING.none,
      contentLength: -1,
      transferEncoding: '',
      host: undefined,
      connection: undefined,
      upgrade: undefined,
      keepAlive: true,
      isUpgrade: false,
    };
    const startLine = text.slice(0, firstEnd);
    const problem = this.kind === 'request' ? parseRequestLine(startLine, head) : parseStatusLine(startLine, head);
    if (problem !== undefined) {
      this.fail(this.kind === 'request' ? 400 : 502, problem);
      return false;
    }
    const raw = this.raw;
    raw.isCanonical = true;
    const fieldProblem = parseFields(text, firstEnd + 2, head.fields, raw, start);
    if (fieldProblem !== undefined) {
      this.fail(fieldProblem === TOO_MANY_FIELDS && this.kind === 'request' ? 431 : this.kind === 'request' ? 400 : 502, fieldProblem);
      return false;
    }
    const framingProblem = this.kind === 'request' ? frameRequest(head) : this.frameResponse(head);
    if (framingProblem !== undefined) {
      this.fail(this.kind === 'request' ? 400 : 502, framingProblem);
      return false;
    }
    this.head = head;
    const isInterim = this.kind === 'response' && head.status < 200;
    if (head.isUpgrade || (this.kind === 'response' && head.status === 101)) this.state = STATE.done;
    else if (isInterim) this.state = STATE.head;
    else this.enterBody(head);
    raw.buf = buf;
    raw.start = start;
    raw.end = end;
    this.events.onHead(head, raw);
    // Not kept past the event: a carried-over head's buffer is freed.
    raw.buf = NO_BYTES;
    if (!isInterim && this.state === STATE.head && this.head === head) this.finish(undefined);
    return true;
  }

  private enterBody(head: H1Head): void {
    switch (head.framing) {
      case FRAMING.length:
        if (head.contentLength === 0) {
          this.state = STATE.head;
        } else {
          this.remaining = head.contentLength;
          this.state = STATE.body;
        }
        break;
      case FRAMING.chunked:
        this.startChunkSize();
        break;
      case FRAMING.close:
        this.state = STATE.closeBody;
        break;
      default:
        this.state = STATE.head;
    }
  }

  /** RFC 9112 section 6.3 for a response: HEAD, 1xx, 204 and 304 have no body whatever they say. */
  private frameResponse(head: H1Head): string | undefined {
    const info = analyseFields(head);
    if (typeof info === 'string') return info;
    const status = head.status;
    if (status < 200 || status === 204 || status === 304 || this.requestMethod === 'HEAD') {
      head.framing = FRAMING.none;
      return undefined;
    }
    if (info.te !== undefined) {
      if (info.cl !== undefined) return 'a response with both Content-Length and Transfer-Encoding';
      head.framing = isChunkedLast(info.te) ? FRAMING.chunked : FRAMING.close;
      head.transferEncoding = info.te;
      if (head.framing === FRAMING.close) head.keepAlive = false;
      return undefined;
    }
    if (info.cl !== undefined) {
      head.framing = FRAMING.length;
      head.contentLength = info.cl;
      return undefined;
    }
    head.framing = FRAMING.close;
    head.keepAlive = false;
    return undefined;
  }

  // ---------------------------------------------------------------- chunked bodies

  private startChunkSize(): void {
    this.state = STATE.chunkSize;
    this.remaining = 0;
    this.chunkDigits = 0;
    this.chunkLineBytes = 0;
  }

  /** chunk-size [ chunk-ext ] CRLF, and the CRLF after chunk data (RFC 9112 section 7.1). */
  private readChunkFraming(data: Buffer, start: number, end: number): number {
    let i = start;
    while (i < end) {
      const c = data[i]!;
      switch (this.state) {
        case STATE.chunkSize: {
          const digit = HEX[c]!;
          if (digit >= 0) {
            if (this.remaining > (MAX_CHUNK_SIZE - digit) / 16) return this.fail(400, `a chunk size larger than ${MAX_CHUNK_SIZE}`);
            this.remaining = this.remaining * 16 + digit;
            this.chunkDigits++;
          } else if (this.chunkDigits === 0) {
            return this.fail(400, 'a chunk size that is not hexadecimal digits');
          } else if (c === CR) {
            this.state = STATE.chunkSizeLf;
          } else if (c === SEMICOLON) {
            this.state = STATE.chunkExt;
            this.extPart = EXT.start;
          } else {
            return this.fail(400, 'a chunk size that is not hexadecimal digits');
          }
          break;
        }
        // chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] ), no whitespace, as llhttp wants.
        case STATE.chunkExt:
          if (TOKEN[c] === 1) this.extPart = EXT.name;
          else if (this.extPart !== EXT.name) return this.fail(400, 'a chunk extension without a name');
          else if (c === CR) this.state = STATE.chunkSizeLf;
          else if (c === SEMICOLON) this.extPart = EXT.start;
          else if (c === EQUALS) this.state = STATE.chunkExtValue;
          else return this.fail(400, 'a chunk extension that is not token[=token or quoted-string]');
          break;
        case STATE.chunkExtValue:
          if (c === DQUOTE && this.extPart === EXT.name) this.state = STATE.chunkExtQuoted;
          else if (TOKEN[c] === 1) this.extPart = EXT.value;
          else if (this.extPart !== EXT.value) return this.fail(400, 'a chunk extension with an empty value');
          else if (c === CR) this.state = STATE.chunkSizeLf;
          else if (c === SEMICOLON) {
            this.state = STATE.chunkExt;
            this.extPart = EXT.start;
          } else return this.fail(400, 'a chunk extension that is not token[=token or quoted-string]');
          break;
        case STATE.chunkExtQuoted:
          if (c === DQUOTE) this.state = STATE.chunkExtValueEnd;
          else if (c === BACKSLASH || FIELD_VALUE[c] === 0) return this.fail(400, 'a chunk extension value with a control character or escape');
          break;
        case STATE.chunkExtValueEnd:
          if (c === CR) this.state = STATE.chunkSizeLf;
          else if (c === SEMICOLON) {
            this.state = STATE.chunkExt;
            this.extPart = EXT.start;
          } else return this.fail(400, 'a chunk extension that is not token[=token or quoted-string]');
          break;
        case STATE.chunkSizeLf:
          if (c !== LF) return this.fail(400, 'a chunk size line not ended by CRLF');
          if (this.remaining === 0) {
            this.state = STATE.trailers;
            return i + 1;
          }
          this.state = STATE.chunkData;
          return i + 1;
        case STATE.chunkDataCr:
          if (c !== CR) return this.fail(400, 'chunk data longer than its size, or not followed by CRLF');
          this.state = STATE.chunkDataLf;
          break;
        case STATE.chunkDataLf:
          if (c !== LF) return this.fail(400, 'chunk data not followed by CRLF');
          this.startChunkSize();
          break;
        default:
          return i;
      }
      i++;
      if (++this.chunkLineBytes > MAX_CHUNK_LINE_BYTES) return this.fail(400, `a chunk size line longer than ${MAX_CHUNK_LINE_BYTES} bytes`);
    }
    return i;
  }

  /** The trailer section after the last chunk: fields, then an empty line. */
  private readTrailers(data: Buffer, start: number): number {
    // Most bodies have no trailers: the last chunk is followed by CRLF at once.
    if (this.pending === undefined && data.length - start >= 2 && data[start] === CR && data[start + 1] === LF) {
      this.finish(undefined);
      return start + 2;
    }
    const block = this.scanBlock(data, start, start, TRAILER_TEXTS);
    if (typeof block === 'number') return block;
    const fields: string[] = [];
    if (block.end - block.from > 2) {
      const problem = parseFields(block.buf.toString('latin1', block.from, block.end - 2), 0, fields);
      if (problem !== undefined) return this.fail(problem === TOO_MANY_FIELDS && this.kind === 'request' ? 431 : 400, `trailers: ${problem}`);
    }
    this.finish(fields.length > 0 ? fields : undefined);
    return block.consumed;
  }
}

/** A head or trailer section found by scanBlock: buf[from, end) ends in its empty line. */
interface Block {
  buf: Buffer;
  from: number;
  end: number;
  /** Where the caller's data was read up to. */
  consumed: number;
}

/** What scanBlock says of the section it scans. */
interface BlockTexts {
  isHead: boolean;
  tooLarge: string;
  bareCr: string;
  bareLf: string;
}

const HEAD_TEXTS: BlockTexts = {
  isHead: true,
  tooLarge: `the head is larger than ${MAX_HEAD_BYTES} bytes`,
  bareCr: 'a bare CR in the head (lines must end in CRLF)',
  bareLf: 'a line of the head ends in a bare LF (lines must end in CRLF)',
};

const TRAILER_TEXTS: BlockTexts = {
  isHead: false,
  tooLarge: `the trailers are larger than ${MAX_HEAD_BYTES} bytes`,
  bareCr: 'a bare CR in the trailers (lines must end in CRLF)',
  bareLf: 'a trailer line ends in a bare LF (lines must end in CRLF)',
};

// ---------------------------------------------------------------- start lines and fields

const TOO_MANY_FIELDS = `more than ${MAX_HEADER_FIELDS} header fields`;

/** method SP request-target SP HTTP-version (RFC 9112 section 3). */
function parseRequestLine(line: string, head: H1Head): string | undefined {
  const sp1 = line.indexOf(' ');
  if (sp1 <= 0) return 'the request line is not "METHOD target HTTP/1.1"';
  const method = line.slice(0, sp1);
  // The usual two without hashing the string for the set.
  if (method !== 'GET' && method !== 'POST' && !KNOWN_METHODS.has(method)) return `method "${line.slice(0, Math.min(sp1, 20))}" is not known; allowed: ${METHODS.join(', ')}`;
  const sp2 = line.indexOf(' ', sp1 + 1);
  if (sp2 < 0 || sp2 === sp1 + 1) return 'the request line is not "METHOD target HTTP/1.1"';
  for (let i = sp1 + 1; i < sp2; i++) if (TARGET[line.charCodeAt(i)] === 0) return 'a control character or space in the request target';
  const version = line.slice(sp2 + 1);
  if (version === 'HTTP/1.1') head.minor = 1;
  else if (version === 'HTTP/1.0') head.minor = 0;
  else return `HTTP version "${version.slice(0, 20)}" is not supported; allowed: HTTP/1.1, HTTP/1.0`;
  head.method = method;
  const target = line.slice(sp1 + 1, sp2);
  const c0 = target.charCodeAt(0);
  if (head.method === 'CONNECT') {
    // authority-form (RFC 9112 section 3.2.3): the relay refuses CONNECT, but the line is well-formed.
  } else if (c0 !== 0x2f && !(target === '*' && head.method === 'OPTIONS') && !ABSOLUTE_TARGET.test(target)) {
    return `request target "${target.slice(0, 200)}" is not origin-form "/path", absolute-form "scheme://authority/path" or "*"`;
  }
  head.target = target;
  return undefined;
}

/** HTTP-version SP 3DIGIT SP [ reason-phrase ] (RFC 9112 section 4); the SP before an empty reason may be missing. */
function parseStatusLine(line: string, head: H1Head): string | undefined {
  if (line.startsWith('HTTP/1.1 ')) head.minor = 1;
  else if (line.startsWith('HTTP/1.0 ')) head.minor = 0;
  else return `the status line "${line.slice(0, 40)}" does not start with HTTP/1.1 or HTTP/1.0`;
  const code = line.slice(9, 12);
  if (code.length !== 3 || !isDigits(code) || code.charCodeAt(0) === 0x30) return `the status code "${code}" is not three digits`;
  if (line.length > 12 && line.charCodeAt(12) !== SP) return 'the status code is not followed by a space';
  const reason = line.slice(13);
  for (let i = 0; i < reason.length; i++) if (FIELD_VALUE[reason.charCodeAt(i)] === 0) return 'a control character in the reason phrase';
  head.status = Number(code);
  head.reason = reason;
  return undefined;
}

/** Whether field name `name` is `lower` (lowercase letters and "-"), ignoring ASCII case, without allocating. */
export function isNamed(name: string, lower: string): boolean {
  const n = lower.length;
  if (name.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    // Token characters never turn into a letter or "-" by setting 0x20 unless they are that letter.
    if ((c | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Whether the start of an incomplete request line can still become a known method and a space. */
function isMethodSoFar(buf: Buffer, from: number): boolean {
  const sp = buf.indexOf(SP, from);
  const end = sp < 0 ? Math.min(buf.length, from + 20) : sp;
  const method = buf.toString('latin1', from, end);
  return sp < 0 ? METHOD_PREFIXES.has(method) : KNOWN_METHODS.has(method);
}

/**
 * field-name ":" OWS field-value OWS, one per CRLF-ended line, from text[from] to the end. The
 * lines were checked by scanBlock to end in CRLF with no other CR or LF, so each line is read in
 * one pass: the name up to the colon, the value up to the CR (or the end of the text). With `raw`,
 * where each line starts (text[0] being buf[offset]) and whether all are canonical are noted there.
 */
function parseFields(text: string, from: number, out: string[], raw?: H1RawHead, offset = 0): string | undefined {
  let pos = from;
  const end = text.length;
  while (pos < end) {
    const first = text.charCodeAt(pos);
    if (first === SP || first === HTAB) return 'obs-fold (a header line starting with whitespace) is not allowed (RFC 9112 section 5.2)';
    let i = pos;
    while (i < end && TOKEN[text.charCodeAt(i)] === 1) i++;
    if (i === end || text.charCodeAt(i) !== COLON) return fieldNameProblem(text, pos);
    if (i === pos) return 'an empty header name';
    const colon = i++;
    let c = 0;
    while (i < end && ((c = text.charCodeAt(i)) === SP || c === HTAB)) i++;
    const vs = i;
    while (i < end && FIELD_VALUE[text.charCodeAt(i)] === 1) i++;
    if (i < end && text.charCodeAt(i) !== CR) return `the value of "${text.slice(pos, colon)}" has a control character (CR, LF, NUL and other controls are not allowed)`;
    let ve = i;
    while (ve > vs && ((c = text.charCodeAt(ve - 1)) === SP || c === HTAB)) ve--;
    if (out.length >= MAX_HEADER_FIELDS * 2) return TOO_MANY_FIELDS;
    if (raw !== undefined) {
      raw.lineStarts[out.length >> 1] = offset + pos;
      if (vs !== colon + 2 || text.charCodeAt(colon + 1) !== SP || ve !== i) raw.isCanonical = false;
    }
    out.push(text.slice(pos, colon), text.slice(vs, ve));
    pos = i + 2;
  }
  return undefined;
}

/** What is wrong with the name of the line at text[pos], whose name is not a token followed by a colon. */
function fieldNameProblem(text: string, pos: number): string {
  let lineEnd = text.indexOf('\r\n', pos);
  if (lineEnd < 0) lineEnd = text.length;
  const colon = text.indexOf(':', pos);
  if (colon < 0 || colon > lineEnd) return 'a header line without a colon';
  if (colon === pos) return 'an empty header name';
  return `header name "${text.slice(pos, colon).slice(0, 100)}" has a character not allowed in a token (no spaces, no whitespace before the colon)`;
}

/** Whether `value` is one or more decimal digits (an empty value is not). */
function isDigits(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** The tokens of a Connection value, lowercased and trimmed; one token (the usual case) without split(). */
function connectionTokens(value: string): string[] {
  const lower = value.toLowerCase();
  if (lower.indexOf(',') < 0) return [lower.trim()];
  const tokens = lower.split(',');
  for (let t = 0; t < tokens.length; t++) tokens[t] = tokens[t]!.trim();
  return tokens;
}

interface FieldInfo {
  cl: number | undefined;
  te: string | undefined;
}

/** Reads the fields that decide framing and the connection's fate; refuses ambiguous ones. */
function analyseFields(head: H1Head): FieldInfo | string {
  const fields = head.fields;
  let cl: number | undefined;
  let te: string | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    switch (name.length) {
      case 4:
        if (isNamed(name, 'host')) {
          if (head.host !== undefined) return 'more than one Host header';
          head.host = value;
        }
        break;
      case 7:
        if (isNamed(name, 'upgrade')) head.upgrade = value;
        break;
      case 10:
        if (isNamed(name, 'connection')) {
          const tokens = connectionTokens(value);
          head.connection = head.connection === undefined ? tokens : head.connection.concat(tokens);
        }
        break;
      case 14:
        if (isNamed(name, 'content-length')) {
          if (cl !== undefined) return 'more than one Content-Length header';
          if (value.length > 15 || !isDigits(value)) return `Content-Length "${value.slice(0, 40)}" is not a decimal number of at most 15 digits`;
          cl = Number(value);
        }
        break;
      case 17:
        if (isNamed(name, 'transfer-encoding')) {
          if (te !== undefined) return 'more than one Transfer-Encoding header';
          te = value;
        }
        break;
      default:
    }
  }
  const connection = head.connection;
  if (head.minor === 0) head.keepAlive = connection !== undefined && connection.includes('keep-alive');
  else head.keepAlive = connection === undefined || !connection.includes('close');
  return { cl, te };
}

/** RFC 9112 section 6.1-6.3 for a request: chunked last, or Content-Length, or no body. */
function frameRequest(head: H1Head): string | undefined {
  const info = analyseFields(head);
  if (typeof info === 'string') return info;
  if (head.minor === 1 && head.host === undefined) return 'an HTTP/1.1 request without a Host header (RFC 9112 section 3.2)';
  if (info.te !== undefined) {
    if (info.cl !== undefined) return 'both Content-Length and Transfer-Encoding (RFC 9112 section 6.1)';
    if (!isChunkedLast(info.te)) return `Transfer-Encoding "${info.te.slice(0, 60)}" is not allowed; allowed: codings ending in chunked, chunked once`;
    head.framing = FRAMING.chunked;
    head.transferEncoding = info.te;
  } else if (info.cl !== undefined) {
    head.framing = FRAMING.length;
    head.contentLength = info.cl;
  }
  const connection = head.connection;
  head.isUpgrade = head.method === 'CONNECT' || (head.upgrade !== undefined && connection !== undefined && connection.includes('upgrade'));
  return undefined;
}

/** "chunked" as the last coding, appearing once, every coding a token (empty list elements are skipped, RFC 9110 section 5.6.1). */
function isChunkedLast(te: string): boolean {
  const codings = te.split(',');
  let last = '';
  for (let i = 0; i < codings.length; i++) {
    const coding = codings[i]!.trim().toLowerCase();
    if (coding.length === 0) continue;
    if (last === 'chunked') return false;
    for (let c = 0; c < coding.length; c++) if (TOKEN[coding.charCodeAt(c)] === 0) return false;
    last = coding;
  }
  return last === 'chunked';
}
