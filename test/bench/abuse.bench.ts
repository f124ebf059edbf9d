/**
 * `npm run bench` (abuse part): each HTTP/2 and HTTP/1.1 attack of issue 12 against a fresh built `meshlet proxy`
 * process (with the injector's Node flags), two loopback backends, and a well-behaved client sending
 * a request every 50 ms on another connection. One line per attack: frames the attacker got in, how
 * its connection ended, the proxy's RSS before and its peak (VmHWM) during the attack (goal: under
 * 160 MiB), what the well-behaved client lost, and endpoint ejections. Asserts nothing.
 *
 * Run alone: npm run build && node --import tsx test/bench/abuse.bench.ts
 */
import { MESHLET_BUILT_ARGS } from '../../tools/meshlet-process.js';
import { PROXY_NODE_ARGS, PROXY_RUN_ENV } from './bench-kit.js';
import {
  controlFlood,
  dataToSink,
  ejectionCount,
  emptyDataFlood,
  idleConnections,
  procMemoryBytes,
  rapidReset,
  slowHeads,
  startAbuseBackend,
  startProxyProcess,
  steadyClient,
  type AttackResult,
} from '../helpers/abuse-scenario.js';

/** The issue's goal for the proxy's peak RSS under every attack. */
const PEAK_RSS_GOAL_BYTES = 160 * 2 ** 20;
/** One attack writes for at most this long. */
const ATTACK_TIMEOUT_MS = 30_000;

/** The attacks at the sizes the issue measured them. */
const ATTACKS: Array<{ name: string; run(port: number): Promise<AttackResult> }> = [
  { name: 'Rapid Reset, 200k HEADERS+RST_STREAM', run: (port) => rapidReset(port, 200_000, ATTACK_TIMEOUT_MS) },
  { name: 'PING flood, 10M, never read', run: (port) => controlFlood(port, 'ping', 10_000_000, ATTACK_TIMEOUT_MS) },
  { name: 'SETTINGS flood, 3M, never read', run: (port) => controlFlood(port, 'settings', 3_000_000, ATTACK_TIMEOUT_MS) },
  { name: 'empty DATA, 3M, backend answers after body', run: (port) => emptyDataFlood(port, 3_000_000, ATTACK_TIMEOUT_MS) },
  { name: '1-byte DATA, 8 streams, backend never reads', run: (port) => dataToSink(port, 1, 8, (1 << 20) - 1, ATTACK_TIMEOUT_MS) },
  { name: '16-byte DATA, 8 streams x 1 MiB, never read', run: (port) => dataToSink(port, 16, 8, (1 << 20) - 16, ATTACK_TIMEOUT_MS) },
  { name: '500 HTTP/2 connections idle after preface, 5 s', run: (port) => idleConnections(port, 500, 5_000) },
  { name: 'HTTP/1.1: 300 heads, 1 byte per 500 ms (bytes)', run: (port) => slowHeads(port, 300, 500, ATTACK_TIMEOUT_MS) },
];

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

async function main(): Promise<void> {
  const backends = [await startAbuseBackend('a'), await startAbuseBackend('b')];
  console.log(`Attacks on the app listener, one fresh proxy each (node ${PROXY_NODE_ARGS.join(' ')}); peak RSS goal < ${mib(PEAK_RSS_GOAL_BYTES)}:`);
  console.log(`  ${'attack'.padEnd(46)} ${'frames in'.padStart(10)}  ${'ended by proxy'.padEnd(22)} ${'RSS before'.padStart(10)} ${'peak'.padStart(8)}  well-behaved client     ejections`);
  try {
    for (const attack of ATTACKS) {
      const proxy = await startProxyProcess(backends, [...PROXY_NODE_ARGS, ...MESHLET_BUILT_ARGS], PROXY_RUN_ENV);
      try {
        const port = proxy.listening.port as number;
        const pid = proxy.child.pid!;
        const steady = steadyClient(port);
        await steady.answered(1, 10_000);
        const before = procMemoryBytes(pid, 'VmRSS');
        const started = Date.now();
        const result = await attack.run(port);
        const seconds = (Date.now() - started) / 1000;
        await steady.answered(3, 10_000).catch(() => undefined);
        const steadyResult = await steady.stop();
        const peak = procMemoryBytes(pid, 'VmHWM');
        const ended = result.closed ? `yes${result.goawayCode === undefined ? '' : ` (GOAWAY ${result.goawayCode})`} ${seconds.toFixed(1)} s` : `no (${seconds.toFixed(1)} s)`;
        const lost = steadyResult.lost.length === 0 ? 'lost 0' : `lost ${steadyResult.lost.length}`;
        console.log(
          `  ${attack.name.padEnd(46)} ${String(result.framesSent).padStart(10)}  ${ended.padEnd(22)} ${mib(before).padStart(10)} ${mib(peak).padStart(8)}  ${`${lost} of ${steadyResult.sent}`.padEnd(22)}  ${await ejectionCount(proxy)}`,
        );
      } finally {
        await proxy.stop();
      }
    }
  } finally {
    for (const b of backends) await b.close();
  }
}

await main();
