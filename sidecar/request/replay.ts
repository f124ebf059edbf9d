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
/** Kept chunks smaller than this are copied, so they never pin the larger socket reads they came in. */
const REPLAY_COPY_BELOW_BYTES = 8 * 1024;

/** What a forwarded request keeps for a retry: the chunks so far, or null once it grew too big. */
export interface Replayable {
  replay: Buffer[] | null;
  replayBytes: number;
}

/**
 * Keeps `chunk` for a retry, or gives up on retrying once the body outgrows the bound. Returns the
 * chunk as kept: a small one is a copy of its own, which the caller may queue instead of copying
 * it again.
 */
export function keepForReplay(fwd: Replayable, chunk: Buffer): Buffer {
  const replay = fwd.replay;
  const length = chunk.length;
  if (replay === null || length === 0) return chunk;
  if (fwd.replayBytes + length + (replay.length + 1) * REPLAY_CHUNK_OVERHEAD_BYTES <= MAX_REPLAY_BYTES) {
    const kept = length < REPLAY_COPY_BELOW_BYTES ? Buffer.from(chunk) : chunk;
    replay.push(kept);
    fwd.replayBytes += length;
    return kept;
  }
  fwd.replay = null;
  return chunk;
}
