/**
 * A request body is kept, up to MAX_REPLAY_BYTES, until the upstream answers, so a request the
 * endpoint provably never processed can be retried once on another endpoint with its body.
 */
export const MAX_REPLAY_BYTES = 64 * 1024;
/**
 * What each kept chunk costs beyond its bytes (its Buffer and array slot): a body sent as many
 * tiny pieces reaches the bound by its chunk count, not only by its bytes.
 */
export const REPLAY_CHUNK_OVERHEAD_BYTES = 128;
/** Kept chunks smaller than this are copied, so they never pin the larger socket reads they came in... */
const REPLAY_COPY_BELOW_BYTES = 8 * 1024;
/**
 * ...unless the read they came in is itself no larger than this: then the chunk is kept as it is
 * and charged the whole read it pins. The common request (a small body that arrived in one read
 * with its head, a few KiB with the requests beside it) then costs no copy and no allocation.
 */
const REPLAY_PIN_READS_UP_TO_BYTES = 16 * 1024;

/** The replay of a request that has kept no chunk yet: shared, never written to. */
export const NO_REPLAY_CHUNKS: Buffer[] = [];

/** What a forwarded request keeps for a retry: the chunks so far, or null once it grew too big. */
export interface Replayable {
  /** NO_REPLAY_CHUNKS until a chunk is kept; null once the body outgrew the bound. */
  replay: Buffer[] | null;
  /** The body bytes kept. */
  replayBytes: number;
  /** What they cost in memory, bounded by MAX_REPLAY_BYTES: bytes, reads pinned and per-chunk overhead. */
  replayCharge: number;
}

/**
 * Keeps `chunk` for a retry, or gives up on retrying once the body outgrows the bound. Returns the
 * chunk as kept (a small chunk from a large read is a copy of its own), which the caller may hold
 * as it is for as long as the replay does; undefined when it was not kept.
 */
export function keepForReplay(fwd: Replayable, chunk: Buffer): Buffer | undefined {
  let replay = fwd.replay;
  const length = chunk.length;
  if (replay === null || length === 0) return undefined;
  const pinned = chunk.buffer.byteLength;
  const isCopied = length < REPLAY_COPY_BELOW_BYTES && pinned > REPLAY_PIN_READS_UP_TO_BYTES;
  const charge = (isCopied || length >= REPLAY_COPY_BELOW_BYTES ? length : pinned) + REPLAY_CHUNK_OVERHEAD_BYTES;
  if (fwd.replayCharge + charge > MAX_REPLAY_BYTES) {
    fwd.replay = null;
    return undefined;
  }
  const kept = isCopied ? Buffer.from(chunk) : chunk;
  if (replay === NO_REPLAY_CHUNKS) fwd.replay = replay = [];
  replay.push(kept);
  fwd.replayBytes += length;
  fwd.replayCharge += charge;
  return kept;
}
