import t, { type Test } from 'tap';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidDiscoveryInputError } from '../../../sidecar/discovery/errors.js';
import { StaticSource } from '../../../sidecar/discovery/static.js';
import { captureLogs } from '../../helpers/log-capture.js';
import { describeSet, waitForEndpoints } from '../../helpers/wait.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-static-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('an inline --upstream list takes every request, whatever it names', async (t) => {
  const source = StaticSource.fromList(['127.0.0.1:8081', '[::1]:8082', 'localhost:8083']);
  t.teardown(() => source.close());
  for (const hint of [{}, { authority: 'web.demo:80' }, { originalDst: { host: '198.18.0.9', port: 443 } }]) {
    const target = await source.resolve(hint);
    t.equal(target.id, 'static', `hint ${JSON.stringify(hint)}`);
    t.same(describeSet(target.endpoints), ['127.0.0.1:8081 ready', '[::1]:8082 ready', 'localhost:8083 ready']);
    t.ok(target.lastSyncedAt, 'confirmed current');
    t.equal(target.stale, false);
  }
});

t.test('a bad inline entry is refused with every offending value and what is allowed', async (t) => {
  const err = (() => {
    try {
      StaticSource.fromList(['127.0.0.1:8081', 'no-port', '127.0.0.1:99999']);
    } catch (caught) {
      return caught;
    }
    return undefined;
  })();
  t.type(err, InvalidDiscoveryInputError);
  const message = (err as Error).message;
  t.match(message, /--upstream\[1\]: "no-port" is not valid; allowed: HOST:PORT/);
  t.match(message, /--upstream\[2\]: "127\.0\.0\.1:99999"/);
  t.notMatch(message, /\[0\]/, 'good entries are not blamed');
});

t.test('an --upstream file change takes effect within a second', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'upstream.json');
  await writeFile(path, JSON.stringify(['127.0.0.1:9001']));
  const { log } = captureLogs();
  const source = await StaticSource.fromFile(path, log);
  t.teardown(() => source.close());
  const target = await source.resolve();
  t.same(describeSet(target.endpoints), ['127.0.0.1:9001 ready']);

  const started = Date.now();
  await writeFile(path, JSON.stringify(['127.0.0.1:9001', '127.0.0.1:9002']));
  await waitForEndpoints(target, (s) => s.size === 2, 1000, 'the added endpoint');
  t.ok(Date.now() - started < 1000, 'seen within a second');

  // Editors and ConfigMap volumes replace the file rather than writing into it.
  await writeFile(join(dir, 'next.json'), JSON.stringify(['127.0.0.1:9003']));
  await rename(join(dir, 'next.json'), path);
  const set = await waitForEndpoints(target, (s) => s.has('127.0.0.1:9003'), 1000, 'the replaced file');
  t.same(describeSet(set), ['127.0.0.1:9003 ready']);
});

t.test('a bad edit is logged with what is wrong and the last good set stays', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'upstream.json');
  await writeFile(path, JSON.stringify(['127.0.0.1:9001', '127.0.0.1:9002']));
  const { log, waitFor, waitForCount } = captureLogs();
  const source = await StaticSource.fromFile(path, log);
  t.teardown(() => source.close());
  const target = await source.resolve();

  await writeFile(path, '["127.0.0.1:9001", ');
  t.match(await waitFor((l) => l.level === 'error', 2000, 'the error line about invalid JSON'), { msg: 'bad edit ignored, keeping last good set', file: path, problems: [/not valid JSON/] });
  t.equal(target.endpoints.size, 2, 'still balancing over the last good set');

  await writeFile(path, JSON.stringify(['127.0.0.1:9001', 'web']));
  t.match((await waitForCount((l) => l.level === 'error', 2, 2000, 'the error line about the bad entry'))[1], { problems: ['the upstream file[1]: "web" is not valid; allowed: HOST:PORT, e.g. 127.0.0.1:15001 or [::1]:15001'] });
  t.equal(target.endpoints.size, 2);

  await writeFile(path, JSON.stringify({ upstream: ['127.0.0.1:9001'] }));
  t.match((await waitForCount((l) => l.level === 'error', 3, 2000, 'the error line about an object'))[2], { problems: [/must be a JSON array of "host:port" strings, got an object/] });

  await rm(path);
  await waitFor((l) => l.level === 'warn', 2000, 'the warning about the missing file');
  t.equal(target.endpoints.size, 2, 'a deleted file keeps the last good set too');

  await writeFile(path, JSON.stringify(['127.0.0.1:9005']));
  const fixed = await waitForEndpoints(target, (s) => s.has('127.0.0.1:9005'), 2000, 'the fixed file');
  t.same(describeSet(fixed), ['127.0.0.1:9005 ready'], 'a good edit after bad ones applies');
});

t.test('an unusable --upstream file at start fails with the path and the reason', async (t) => {
  const dir = await tempDir(t);
  const { log } = captureLogs();
  await t.rejects(StaticSource.fromFile(join(dir, 'missing.json'), log), { code: 'MESHLET_INVALID_DISCOVERY_INPUT', message: /missing\.json: cannot be read \(ENOENT\)/ });
  const path = join(dir, 'bad.json');
  await writeFile(path, '{"a":1}');
  await t.rejects(StaticSource.fromFile(path, log), { message: /bad\.json: the upstream file must be a JSON array/ });
});
