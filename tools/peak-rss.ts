/**
 * Peak RSS of fresh compiled proxies at 1,000 req/s, several ways of running them side by side:
 * `npm run build && node --import tsx tools/peak-rss.ts`. Each round starts one proxy per
 * configuration (static list of 4 loopback gRPC-shaped HTTP/2 backends), sends one h2load stream at
 * 1,000 req/s for 5 s as test/bench/proxy.bench.ts does, and reads VmHWM, split into anonymous and
 * file-backed RSS. Rounds alternate the configurations so a noisy moment does not land on one.
 *
 * PEAK_CONFIGS (JSON) replaces the configurations: [[label, nodeArgs[], env{}, bin?], ...], where
 * bin is another checkout's bin/meshlet.js (to compare builds). PEAK_ROUNDS (default 3).
 * Asserts nothing; needs h2load (apt-get install nghttp2-client).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROXY_ENV, PROXY_NODE_FLAGS } from '../src/common/contract.js';
import { MESHLET_BUILT_ARGS, startMeshlet } from './meshlet-process.js';

type Config = [label: string, nodeArgs: string[], env: Record<string, string>, bin?: string];

const RATE_RPS = 1000;
const SECONDS = 5;
const BACKENDS = 4;
const ROUNDS = Number(process.env.PEAK_ROUNDS ?? 3);
const CONFIGS: Config[] = process.env.PEAK_CONFIGS
  ? (JSON.parse(process.env.PEAK_CONFIGS) as Config[])
  : [
      ['as injected', [...PROXY_NODE_FLAGS], { ...PROXY_ENV }],
      ["Node's defaults", [], {}],
    ];
const run = promisify(execFile);

/** A field of /proc/<pid>/status, in MiB. */
async function statusMiB(pid: number, field: 'VmHWM' | 'RssAnon' | 'RssFile'): Promise<number> {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`/proc/${pid}/status has no ${field} line`);
  return Number(match[1]) / 1024;
}

const reply = Buffer.from(JSON.stringify({ backend: 'b' }));
const frame = Buffer.alloc(5 + reply.length);
frame.writeUInt32BE(reply.length, 1);
reply.copy(frame, 5);
const servers: http2.Http2Server[] = [];
const ports: number[] = [];
for (let i = 0; i < BACKENDS; i++) {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  ports.push((server.address() as AddressInfo).port);
}
const dir = await mkdtemp(join(tmpdir(), 'meshlet-peak-'));
const dataFile = join(dir, 'request.bin');
await writeFile(dataFile, frame);

console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`peak RSS (VmHWM) of a fresh compiled proxy after ${SECONDS} s of one gRPC-shaped h2load stream at ${RATE_RPS} req/s; ${ROUNDS} alternating rounds (MiB)`);
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [label, nodeArgs, env, bin] of CONFIGS) {
      const args = ['proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', 'off', '--upstream', ports.map((p) => `127.0.0.1:${p}`).join(',')];
      const proxy = await startMeshlet(args, { command: [...nodeArgs, bin ?? MESHLET_BUILT_ARGS[0]!], env });
      try {
        const pid = proxy.child.pid!;
        const listening = [await statusMiB(pid, 'VmHWM'), await statusMiB(pid, 'RssAnon'), await statusMiB(pid, 'RssFile')];
        const url = `http://127.0.0.1:${proxy.listening['port']}`;
        const { stdout } = await run('h2load', ['-c', '1', '-m', '1', '-n', String(RATE_RPS * SECONDS), `--rps=${RATE_RPS}`, '-d', dataFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', url]);
        const ok = /(\d+) succeeded, (\d+) failed/.exec(stdout);
        const peak = [await statusMiB(pid, 'VmHWM'), await statusMiB(pid, 'RssAnon'), await statusMiB(pid, 'RssFile')];
        console.log(
          `  round ${round}  ${label.padEnd(36)} listening ${listening[0]!.toFixed(1)}  peak ${peak[0]!.toFixed(1)}  (anonymous ${listening[1]!.toFixed(1)} -> ${peak[1]!.toFixed(1)}, file ${listening[2]!.toFixed(1)} -> ${peak[2]!.toFixed(1)}; ${ok?.[1] ?? '?'} ok, ${ok?.[2] ?? '?'} failed)`,
        );
      } finally {
        await proxy.stop();
      }
    }
  }
} finally {
  for (const server of servers) server.close();
  await rm(dir, { recursive: true, force: true });
}
console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
process.exit(0);
