/**
 * What a request keeps for its one retry: bounded by the memory it holds (bytes, the socket reads
 * it pins, and a per-chunk overhead), copied only when a small piece would pin a large read.
 */
import t from 'tap';
import { MAX_REPLAY_BYTES, NO_REPLAY_CHUNKS, REPLAY_CHUNK_OVERHEAD_BYTES, keepForReplay, type Replayable } from '../../../sidecar/request/replay.js';

function fresh(): Replayable {
  return { replay: NO_REPLAY_CHUNKS, replayBytes: 0, replayCharge: 0 };
}

/** `length` bytes at the start of a read of `readBytes` (as a socket read delivers it). */
function pieceOfRead(length: number, readBytes: number): Buffer {
  return Buffer.alloc(readBytes, 7).subarray(0, length);
}

t.test('a small body from a small read is kept as it is: no copy, charged the read it pins', async (t) => {
  const request = fresh();
  const body = pieceOfRead(17, 3000);
  const kept = keepForReplay(request, body);
  t.equal(kept, body, 'the same Buffer, not a copy');
  t.same(request.replay, [body]);
  t.equal(request.replayBytes, 17);
  t.equal(request.replayCharge, 3000 + REPLAY_CHUNK_OVERHEAD_BYTES);
  t.same(NO_REPLAY_CHUNKS, [], 'the shared empty replay was never written to');
});

t.test('a small piece of a large read is copied, so it does not pin the read', async (t) => {
  const request = fresh();
  const body = pieceOfRead(10, 64 * 1024);
  const kept = keepForReplay(request, body);
  t.not(kept, body);
  t.equal(kept!.buffer === body.buffer, false, 'backed by memory of its own');
  t.same(kept, body, 'same bytes');
  t.equal(request.replayCharge, 10 + REPLAY_CHUNK_OVERHEAD_BYTES);
});

t.test('a body in many tiny pieces stops being replayable at the bound, counting pieces as well as bytes', async (t) => {
  const request = fresh();
  let kept = 0;
  for (let i = 0; i < 10_000 && request.replay !== null; i++) {
    if (keepForReplay(request, pieceOfRead(1, 64 * 1024)) !== undefined) kept++;
  }
  t.equal(request.replay, null, 'no retry for this request any more');
  t.ok(kept > 0 && kept <= Math.floor(MAX_REPLAY_BYTES / (1 + REPLAY_CHUNK_OVERHEAD_BYTES)), `kept ${kept} one-byte pieces, as many as the bound allows`);
  t.equal(keepForReplay(request, pieceOfRead(1, 100)), undefined, 'nothing is kept after giving up');
});

t.test('empty chunks are never kept', async (t) => {
  const request = fresh();
  t.equal(keepForReplay(request, Buffer.alloc(0)), undefined);
  t.equal(request.replay, NO_REPLAY_CHUNKS);
});
