import t, { type Test } from 'tap';
import { ERROR_CODE } from '../../../sidecar/wire/h2/frame.js';
import {
  controlBurst,
  controlFlood,
  dataToSink,
  ejectionCount,
  emptyDataFlood,
  procMemoryBytes,
  rapidReset,
  startAbuseBackend,
  startProxyProcess,
  steadyClient,
  type AbuseBackend,
  type AttackResult,
  type SteadyResult,
} from '../../helpers/abuse-scenario.js';
import type { MeshletProcess } from '../../../tools/meshlet-process.js';

/**
 * One attack class per test, each against a fresh `meshlet proxy` child process (its peak RSS is
 * its own) with two healthy backends and a well-behaved client on another connection throughout.
 * What a user would notice: the abusive connection is ended (with the code RFC 9113 / the CVE
 * mitigations name, where the attacker reads), the proxy's peak RSS stays below the Pod limit's
 * safe share, the other client loses nothing, and no endpoint is ejected.
 */

/** The sidecar's memory limit is 256 MiB; the goal for every attack. */
const PEAK_RSS_LIMIT_BYTES = 160 * 1024 * 1024;
/** How long one attack may write before it is stopped (the proxy normally ends it much sooner). */
const ATTACK_TIMEOUT_MS = 15_000;
/** The well-behaved client must get answers before and after the attack within this long. */
const ANSWER_TIMEOUT_MS = 10_000;

interface Scenario {
  proxy: MeshletProcess;
  backends: AbuseBackend[];
  port: number;
  pid: number;
}

async function scenario(t: Test): Promise<Scenario> {
  const backends = [await startAbuseBackend('a'), await startAbuseBackend('b')];
  const proxy = await startProxyProcess(backends);
  t.teardown(async () => {
    await proxy.stop();
    for (const b of backends) await b.close();
  });
  return { proxy, backends, port: proxy.listening.port as number, pid: proxy.child.pid! };
}

/** Runs `attack` while the well-behaved client sends; checks what every attack must leave intact. */
async function underAttack(t: Test, s: Scenario, attack: () => Promise<AttackResult>): Promise<AttackResult> {
  const steady = steadyClient(s.port);
  let result: AttackResult;
  let steadyResult: SteadyResult;
  try {
    await steady.answered(1, ANSWER_TIMEOUT_MS);
    result = await attack();
    await steady.answered(3, ANSWER_TIMEOUT_MS);
  } finally {
    steadyResult = await steady.stop();
  }
  const peak = procMemoryBytes(s.pid, 'VmHWM');
  t.ok(peak < PEAK_RSS_LIMIT_BYTES, `proxy peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB stays below ${PEAK_RSS_LIMIT_BYTES / 2 ** 20} MiB (${result.framesSent} frames sent)`);
  t.same(steadyResult.lost, [], `the well-behaved client lost nothing (${steadyResult.answered} of ${steadyResult.sent} answered)`);
  t.equal(await ejectionCount(s.proxy), 0, 'no endpoint was ejected');
  return result;
}

t.test('Rapid Reset: HEADERS + RST_STREAM pairs end the connection with ENHANCE_YOUR_CALM; the endpoints barely see them', async (t) => {
  const s = await scenario(t);
  const result = await underAttack(t, s, () => rapidReset(s.port, 200_000, ATTACK_TIMEOUT_MS));
  t.ok(result.closed, 'the abusive connection was closed');
  t.equal(result.goawayCode, ERROR_CODE.ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM');
  t.ok(result.framesSent < 400_000, `the proxy stopped it before all 200000 pairs (${result.framesSent / 2} sent)`);
  const reached = s.backends.reduce((n, b) => n + b.streams, 0);
  t.ok(reached < 1_100, `cancelled streams mostly never reached an endpoint (${reached} streams arrived, including the well-behaved client's)`);
});

t.test('PING flood from a client that never reads: the connection is closed, memory stays bounded', async (t) => {
  const s = await scenario(t);
  const result = await underAttack(t, s, () => controlFlood(s.port, 'ping', 5_000_000, ATTACK_TIMEOUT_MS));
  t.ok(result.closed, `the abusive connection was closed after ${result.framesSent} PINGs`);
});

t.test('SETTINGS flood from a client that never reads: the connection is closed, memory stays bounded', async (t) => {
  const s = await scenario(t);
  const result = await underAttack(t, s, () => controlFlood(s.port, 'settings', 5_000_000, ATTACK_TIMEOUT_MS));
  t.ok(result.closed, `the abusive connection was closed after ${result.framesSent} SETTINGS frames`);
});

t.test('more PINGs or SETTINGS in one burst than ACKs may wait: GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  const s = await scenario(t);
  for (const kind of ['ping', 'settings'] as const) {
    const result = await underAttack(t, s, () => controlBurst(s.port, kind, 4_000));
    t.ok(result.closed, `${kind}: the connection was closed`);
    t.equal(result.goawayCode, ERROR_CODE.ENHANCE_YOUR_CALM, `${kind}: GOAWAY ENHANCE_YOUR_CALM`);
  }
});

t.test('empty DATA frames (CVE-2019-9518) end the connection with ENHANCE_YOUR_CALM', async (t) => {
  const s = await scenario(t);
  const result = await underAttack(t, s, () => emptyDataFlood(s.port, 3_000_000, ATTACK_TIMEOUT_MS));
  t.ok(result.closed, 'the abusive connection was closed');
  t.equal(result.goawayCode, ERROR_CODE.ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM');
  t.ok(result.framesSent < 3_000_000, `stopped after ${result.framesSent} of 3000000 frames`);
});

t.test('1-byte DATA frames to a backend that never reads end the connection; memory stays bounded', async (t) => {
  const s = await scenario(t);
  const result = await underAttack(t, s, () => dataToSink(s.port, 1, 8, (1 << 20) - 1, ATTACK_TIMEOUT_MS));
  t.ok(result.closed, 'the abusive connection was closed');
  t.equal(result.goawayCode, ERROR_CODE.ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM');
});

t.test('16-byte DATA frames filling every window towards a backend that never reads: memory stays bounded', async (t) => {
  const s = await scenario(t);
  // 8 streams of 1 MiB: the whole 8 MiB connection window, in 16-byte frames (half a million).
  const result = await underAttack(t, s, () => dataToSink(s.port, 16, 8, (1 << 20) - 16, ATTACK_TIMEOUT_MS));
  t.ok(result.framesSent > 400_000, `the client could send its windows' worth (${result.framesSent} frames)`);
  t.notOk(result.closed, 'a client within its windows is not cut off');
  const rss = procMemoryBytes(s.pid, 'VmRSS');
  t.ok(rss < PEAK_RSS_LIMIT_BYTES, `the proxy holds the 8 MiB it buffered in ${(rss / 2 ** 20).toFixed(0)} MiB of RSS`);
});
