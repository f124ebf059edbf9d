import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createEchoClient, startEchoBackend, unaryCall, waitForReady, type EchoBackend } from '../helpers/grpc-echo.js';
import { runMeshlet, startMeshlet, type MeshletProcess } from '../../tools/meshlet-process.js';
import { waitUntil } from '../helpers/wait.js';

/** `meshlet proxy` as a real process: the listening line, the watched upstream file, SIGTERM. */

/** `meshlet proxy <args>` on kernel-picked loopback ports, with the debug view. */
function startProxy(args: string[]): Promise<MeshletProcess> {
  return startMeshlet(['proxy', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--debug-admin', '127.0.0.1:0', ...args], { startTimeoutMs: 20_000 });
}

const dir = mkdtempSync(join(tmpdir(), 'meshlet-proxy-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Replaces the upstream file atomically, as an editor or a ConfigMap swap would. */
function writeUpstream(file: string, backends: EchoBackend[]): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(backends.map((b) => b.address)));
  renameSync(`${file}.tmp`, file);
}

t.test('logs one listening line with the bound address, port and admin; serves /ready /live /metrics', async (t) => {
  const backend = await startEchoBackend('solo');
  const m = await startProxy(['--upstream', backend.address]);
  t.teardown(async () => {
    await m.stop();
    await backend.close();
  });
  t.match(m.listening, { level: 'info', address: '127.0.0.1', port: Number, admin: { address: '127.0.0.1', port: Number }, debugAdmin: { address: '127.0.0.1', port: Number } });
  t.not(m.listening.port, 0);
  const admin = `http://127.0.0.1:${m.listening.admin.port}`;
  t.equal((await fetch(`${admin}/ready`)).status, 200);
  t.equal((await fetch(`${admin}/live`)).status, 200);
  const client = createEchoClient(`127.0.0.1:${m.listening.port}`);
  await unaryCall(client, {});
  client.close();
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  t.match(metrics, new RegExp(`meshlet_requests_total\\{target="static",endpoint="${backend.address}",protocol="grpc"\\} 1`));
  t.match(metrics, /meshlet_responses_total\{target="static",endpoint="[^"]+",code="200",grpc_status="0"\} 1/);
  t.match(metrics, /meshlet_request_duration_seconds_bucket\{target="static",endpoint="[^"]+",le="\+Inf"\} 1/);
  t.equal((await fetch(`${admin}/debug/endpoints`)).status, 404, 'the debug table is not on the public admin port');
  const debug = (await (await fetch(`http://127.0.0.1:${m.listening.debugAdmin.port}/debug/endpoints`)).json()) as { targets: unknown[] };
  t.match(debug.targets[0], { target: 'static', policy: 'peak-ewma', endpoints: [{ endpoint: backend.address, state: 'ready' }] });
});

t.test('the upstream file is watched: endpoints added and removed without restart or failed calls', async (t) => {
  const backends = await Promise.all(['f1', 'f2', 'f3'].map((n) => startEchoBackend(n)));
  const file = join(dir, 'endpoints.json');
  writeUpstream(file, [backends[0]!]);
  const m = await startProxy(['--upstream', file, '--lb-policy', 'round-robin']);
  const client = createEchoClient(`127.0.0.1:${m.listening.port}`);
  t.teardown(async () => {
    client.close();
    await m.stop();
    await Promise.all(backends.map((b) => b.close()));
  });
  await waitForReady(client);
  let failures = 0;
  let stop = false;
  const served = new Set<string>();
  const loop = (async () => {
    while (!stop) {
      try {
        served.add((await unaryCall(client, {})).backend);
      } catch {
        failures++;
      }
    }
  })();
  writeUpstream(file, backends);
  await t.resolves(waitUntil(() => backends[2]!.calls > 0 && backends[1]!.calls > 0, 5000, 'calls on f2 and f3'), 'added endpoints get traffic');
  writeUpstream(file, [backends[1]!, backends[2]!]);
  await m.waitForLine((l) => l.msg === 'endpoints updated' && l.removed === 1, 10_000, 'the removal of f1 applied');
  // The loop makes one call at a time: two more calls on the others, and the one in flight at the change has ended.
  const othersCalls = () => backends[1]!.calls + backends[2]!.calls;
  const othersAtChange = othersCalls();
  await waitUntil(() => othersCalls() >= othersAtChange + 2, 5000, 'two calls after the change');
  const f1Calls = backends[0]!.calls;
  await waitUntil(() => othersCalls() >= othersAtChange + 52, 10_000, '50 more calls on f2 and f3');
  stop = true;
  await loop;
  t.equal(backends[0]!.calls, f1Calls, 'the removed endpoint gets nothing after the change took effect');
  t.equal(failures, 0, 'no failed call');
});

t.test('SIGTERM: keeps serving the open connection (new requests too) until the app closes it, then exits 0', async (t) => {
  const backend = await startEchoBackend('last');
  const m = await startProxy(['--upstream', backend.address, '--shutdown-grace-seconds', '20']);
  const session = http2.connect(`http://127.0.0.1:${m.listening.port}`);
  t.teardown(async () => {
    await m.stop();
    await backend.close();
  });
  const client = createEchoClient(`127.0.0.1:${m.listening.port}`);
  await unaryCall(client, { text: 'before' });
  m.child.kill('SIGTERM');
  t.ok(await m.waitForLine((l) => String(l.msg).startsWith('shutting down'), 5000, '"shutting down"'), 'shutdown began');
  const after = await Promise.all(Array.from({ length: 5 }, (_, i) => unaryCall(client, { text: `after${i}` })));
  t.same(after.map((r) => r.text), ['after0', 'after1', 'after2', 'after3', 'after4'], 'new calls after SIGTERM are served');
  let exitedEarly = false;
  void m.exited.then(() => (exitedEarly = true));
  // Absence over time is the check: the process must not exit within 300 ms while the app is connected.
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(exitedEarly, 'still running while the app has connections');
  client.close();
  session.close();
  t.equal(await m.exited, 0, 'exits 0 once the app closed its connections');
});

t.test('bad flags: exit 2 with every problem on stderr', async (t) => {
  const run = await runMeshlet(['proxy', '--listen', 'nowhere', '--lb-policy', 'fastest']);
  t.equal(run.code, 2);
  t.match(run.stderr, /--listen: "nowhere" is not valid/);
  t.match(run.stderr, /--lb-policy: "fastest" is not valid; allowed: round-robin, least-request, peak-ewma/);
});
