import t from 'tap';
import { parseCommand } from '../../../src/common/config.js';
import { InvalidConfigError } from '../../../src/common/errors.js';
import { INJECTOR_FLAGS, parseInjectorConfig } from '../../../src/inject/settings.js';
import { PROXY_COMMAND, parseProxyConfig } from '../../../sidecar/config.js';

const API_TOKEN = '/var/run/secrets/meshlet/serviceaccount/token';
const DISCOVERY_TOKEN = '/var/run/secrets/meshlet/serviceaccount/discovery-token';
const parse = (argv: string[], env: NodeJS.ProcessEnv = {}, files: string[] = []) => parseProxyConfig(parseCommand(PROXY_COMMAND, argv, env).values, (p) => files.includes(p));

t.test('in a Pod, MESHLET_DISCOVERY_SERVER (set by the injector) selects the shared watcher, with the projected token beside the API token', async (t) => {
  const config = parse([], { MESHLET_DISCOVERY_SERVER: 'meshlet-discovery.meshlet-system.svc:15010', MESHLET_POD_NAMESPACE: 'shop' }, [API_TOKEN, DISCOVERY_TOKEN]);
  t.same(config.discovery.discoveryServer, { host: 'meshlet-discovery.meshlet-system.svc', port: 15010 });
  t.equal(config.discovery.discoveryTokenFile, DISCOVERY_TOKEN);
  t.equal(config.discovery.discoveryFallbackMs, 30_000, 'falls back to direct watches after 30 s by default');
  t.equal(config.discovery.inCluster, true, 'the API token is still there for the fallback');
  t.equal(parse([], {}, [API_TOKEN]).discovery.discoveryServer, undefined, 'without it, direct watches as before');
});

t.test('standalone, --discovery-server is a source of its own', async (t) => {
  const config = parse(['--listen', '127.0.0.1:0', '--discovery-server', '[::1]:15010', '--discovery-token-file', 'token', '--discovery-fallback-ms', '0'], {}, ['token']);
  t.same(config.discovery.discoveryServer, { host: '::1', port: 15010 });
  t.equal(config.discovery.discoveryTokenFile, 'token');
  t.equal(config.discovery.discoveryFallbackMs, 0);
});

t.test('bad discovery values are reported naming what is allowed', async (t) => {
  const err = t.throws(() => parse(['--discovery-server', 'nowhere', '--discovery-token-file', 'missing', '--discovery-fallback-ms', 'soon'])) as InvalidConfigError;
  t.type(err, InvalidConfigError);
  t.match(err.message, /--discovery-server: "nowhere" is not valid; allowed: HOST:PORT/);
  t.match(err.message, /--discovery-token-file: "missing" does not exist; allowed: a path to an existing file/);
  t.match(err.message, /--discovery-fallback-ms: "soon" is not valid; allowed: a whole number from 0 to 86400000/);
});

t.test('the injector takes --discovery-server as HOST:PORT and refuses anything else', async (t) => {
  const parseInjector = (argv: string[]) => parseInjectorConfig(parseCommand({ name: 'webhook', summary: '', flags: INJECTOR_FLAGS }, argv, {}));
  t.equal(parseInjector(['--discovery-server', 'meshlet-discovery.meshlet-system.svc:15010']).discoveryServer, 'meshlet-discovery.meshlet-system.svc:15010');
  t.equal(parseInjector([]).discoveryServer, undefined, 'unset: proxies watch the API themselves');
  t.throws(() => parseInjector(['--discovery-server', 'meshlet-discovery']), /--discovery-server: "meshlet-discovery" is not valid; allowed: HOST:PORT/);
});
