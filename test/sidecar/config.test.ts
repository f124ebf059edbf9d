import t from 'tap';
import { parseCommand } from '../../src/common/config.js';
import { InvalidConfigError } from '../../src/common/errors.js';
import { PROXY_COMMAND, parseProxyConfig } from '../../sidecar/config.js';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}, files: string[] = []) =>
  parseProxyConfig(parseCommand(PROXY_COMMAND, argv, env).values, (p) => files.includes(p));

t.test('standalone with an inline upstream list', async (t) => {
  const config = parse(['--listen', '127.0.0.1:8080', '--upstream', '127.0.0.1:9001,[::1]:9002']);
  t.equal(config.mode, 'standalone');
  t.same(config.listen, { host: '127.0.0.1', port: 8080 });
  t.same(config.discovery.upstreamList, ['127.0.0.1:9001', '[::1]:9002']);
  t.equal(config.discovery.upstreamFile, undefined);
  t.equal(config.lbPolicy, 'peak-ewma', 'peak-ewma is the default');
  t.equal(config.slowStartMs, 10_000, 'slow start is on by default');
  t.same(config.admin, { host: '0.0.0.0', port: 15090 });
  t.same(config.debugAdmin, { host: '127.0.0.1', port: 15091 });
});

t.test('--upstream naming an existing file is the watched file, even if it looks like host:port', async (t) => {
  t.equal(parse(['--listen', '127.0.0.1:0', '--upstream', 'endpoints.json'], {}, ['endpoints.json']).discovery.upstreamFile, 'endpoints.json');
  t.equal(parse(['--listen', '127.0.0.1:0', '--upstream', 'a:1'], {}, ['a:1']).discovery.upstreamFile, 'a:1');
});

t.test('in-Pod mode: no --listen means 127.0.0.1:15001, in-cluster when the token exists', async (t) => {
  const config = parse([], { MESHLET_POD_NAMESPACE: 'shop', MESHLET_LB_POLICY: 'least-request' }, ['/var/run/secrets/meshlet/serviceaccount/token']);
  t.equal(config.mode, 'pod');
  t.same(config.listen, { host: '127.0.0.1', port: 15001 });
  t.equal(config.discovery.inCluster, true);
  t.equal(config.discovery.namespace, 'shop');
  t.equal(config.discovery.clusterDomain, 'cluster.local');
  t.equal(config.lbPolicy, 'least-request');
  t.equal(parse([], { MESHLET_SLOW_START_MS: '0' }).slowStartMs, 0, 'the injector turns slow start off through MESHLET_SLOW_START_MS');
  t.equal(parse(['--kubeconfig', 'kc'], {}, ['kc', '/var/run/secrets/meshlet/serviceaccount/token']).discovery.inCluster, false, 'not with --kubeconfig');
});

t.test('every bad value is reported, once, naming what is allowed', async (t) => {
  const err = t.throws(() =>
    parse(['--listen', 'nope', '--upstream', 'missing.json', '--lb-policy', 'random', '--log-level', 'loud', '--admin', '1.2.3.4', '--debug-admin', '0.0.0.0:15091', '--detect-timeout-ms=-5', '--services', 'nofile.json', '--slow-start-ms', '5s']),
  ) as InvalidConfigError;
  t.type(err, InvalidConfigError);
  t.match(err.problems, [
    /--listen: "nope" is not valid; allowed: HOST:PORT/,
    /--admin: "1.2.3.4" is not valid/,
    /--debug-admin: "0.0.0.0:15091" is not valid; allowed: a loopback address/,
    /--lb-policy: "random" is not valid; allowed: round-robin, least-request, peak-ewma/,
    /--slow-start-ms: "5s" is not valid; allowed: a whole number from 0 to 600000/,
    /--log-level: "loud" is not valid/,
    /--detect-timeout-ms: "-5" is not valid/,
    /--upstream: "missing.json" is not valid; allowed: an existing JSON file/,
    /--services: "nofile.json" does not exist/,
  ]);
});

t.test('standalone without any endpoints is refused', async (t) => {
  t.throws(() => parse(['--listen', '127.0.0.1:8080']), /--listen given without endpoints/);
});

t.test('the debug table can be turned off', async (t) => {
  t.equal(parse(['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--debug-admin', 'off']).debugAdmin, undefined);
});

t.test('DNS servers and the re-resolve interval reach discovery; host names are refused as servers', async (t) => {
  const config = parse(['--listen', '127.0.0.1:0', '--upstream-dns', 'web-headless:8080', '--dns-server', '127.0.0.1:5353', '--dns-server', '::1', '--dns-interval-ms', '250']);
  t.same(config.discovery.dnsServers, ['127.0.0.1:5353', '::1']);
  t.equal(config.discovery.dnsIntervalMs, 250);
  t.same(parse([], { MESHLET_DNS_SERVERS: '198.18.0.53,198.18.0.54:53' }).discovery.dnsServers, ['198.18.0.53', '198.18.0.54:53'], 'from the environment');
  t.throws(() => parse(['--listen', '127.0.0.1:0', '--upstream-dns', 'web:80', '--dns-server', 'dns.example:53']), /--dns-server: "dns.example:53" is not valid; allowed: an IP address/);
});

t.test('--upstream-ping-ms: 10 s unless told, from 100 ms up', async (t) => {
  t.equal(parse(['--listen', '127.0.0.1:0', '--upstream', 'a:1']).upstreamPingMs, 10_000);
  t.equal(parse(['--listen', '127.0.0.1:0', '--upstream', 'a:1'], { MESHLET_UPSTREAM_PING_MS: '2500' }).upstreamPingMs, 2_500, 'from the environment the injector sets');
  t.throws(() => parse(['--listen', '127.0.0.1:0', '--upstream', 'a:1', '--upstream-ping-ms', '5']), /--upstream-ping-ms: "5" is not valid; allowed: a whole number from 100 to 600000/);
});
