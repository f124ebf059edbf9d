/**
 * A request body is kept, up to MAX_REPLAY_BYTES, until the upstream answers, so a request the
 * endpoint provably never processed can be retried once on another endpoint with its body.
 */
export const MAX_REPLAY_BYTES = 64 * 1024;

/** What a forwarded request keeps for a retry: the chunks so far, or null once it grew too big. */
export interface Replayable {
  replay: Buffer[] | null;
  replayBytes: number;
}

/** Keeps `chunk` for a retry, or gives up on retrying once the body outgrows the bound. */
export function keepForReplay(fwd: Replayable, chunk: Buffer): void {
  const replay = fwd.replay;
  if (replay === null) return;
  if (fwd.replayBytes + chunk.length <= MAX_REPLAY_BYTES) {
    replay.push(chunk);
    fwd.replayBytes += chunk.length;
  } else {
    fwd.replay = null;
  }
}
