import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { parseCommand } from '../../src/common/config.js';
import {
  ADMIN_PATH,
  ANNOTATION,
  DEFAULT_LB_POLICY,
  DEFAULT_LOG_LEVEL,
  ENV,
  IMAGE_ENTRYPOINT,
  INIT_CONTAINER_NAME,
  INJECT_ENABLED,
  LB_POLICIES,
  LOG_LEVELS,
  METRICS,
  PROXY_ADMIN_PORT,
  PROXY_CONTAINER_NAME,
  PROXY_ENV,
  PROXY_NODE_FLAGS,
  PROXY_OUTBOUND_PORT,
  PROXY_TOKEN_DIR,
  PROXY_UID,
} from '../../src/common/contract.js';
import { InvalidConfigError } from '../../src/common/errors.js';
import { injectPod } from '../../src/inject/injector.js';
import { command as injectCommand } from '../../src/inject/manual.js';
import { DEFAULT_INJECTOR_CONFIG, parseInjectorConfig } from '../../src/inject/settings.js';
import { command as webhookCommand, parseWebhookOptions } from '../../src/webhook/main.js';
import { createPolicy, policyNames } from '../../sidecar/balance/policy.js';
import { registerBuiltinPolicies } from '../../sidecar/balance/setup.js';
import { PROXY_COMMAND, parseProxyConfig } from '../../sidecar/config.js';
import { command as initCommand, parseInitConfig } from '../../sidecar/init/main.js';
import { REPO_ROOT } from '../../tools/meshlet-process.js';
import { startTestProxy, TestSource } from '../helpers/proxy-harness.js';

/** Values that are not in the contract's lists: near misses a user might write. */
const NOT_POLICIES = ['fastest', 'random', 'Round-Robin', 'peak_ewma', 'least-requests'];
const NOT_LOG_LEVELS = ['loud', 'silent', 'INFO', 'warning', 'verbose'];

/** What one place that reads a policy name or a log level made of a value: the value it took, or its message. */
type Taken = { ok: true; value: string } | { ok: false; message: string };

/** One place a user writes a policy name or a log level. */
interface Surface {
  name: string;
  take(value: string): Taken;
}

function taken(read: () => string): Taken {
  try {
    return { ok: true, value: read() };
  } catch (err) {
    if (err instanceof InvalidConfigError) return { ok: false, message: err.problems.join('\n') };
    if (err instanceof Error) return { ok: false, message: err.message };
    throw err;
  }
}

/** What the kubelet puts in the downward-API variables of the injected proxy. */
const DOWNWARD_VALUES: Record<string, string> = {
  'metadata.name': 'shop',
  'metadata.namespace': 'demo',
  'status.podIP': '10.1.2.3',
  'spec.serviceAccountName': 'default',
};

function opted(annotations: Record<string, string> = {}): V1Pod {
  return {
    metadata: { name: 'shop', namespace: 'demo', annotations: { [ANNOTATION.inject]: INJECT_ENABLED, ...annotations } },
    spec: { containers: [{ name: 'app', image: 'registry.example/shop:2.3.1' }] },
  };
}

/** The injector's two containers, or the reason it denied the Pod. */
function inject(pod: V1Pod): { init: V1Container; proxy: V1Container } | { denied: string } {
  const outcome = injectPod(pod, 'demo', DEFAULT_INJECTOR_CONFIG, '0.1.0');
  if (outcome.kind === 'denied') return { denied: outcome.message };
  if (outcome.kind !== 'injected') throw new Error(`the Pod was ${outcome.kind}`);
  const containers = [...(outcome.pod.spec?.initContainers ?? []), ...(outcome.pod.spec?.containers ?? [])];
  const init = containers.find((c) => c.name === INIT_CONTAINER_NAME);
  const proxy = containers.find((c) => c.name === PROXY_CONTAINER_NAME);
  if (!init || !proxy) throw new Error('the meshed Pod lacks the init or the proxy container');
  return { init, proxy };
}

/** The environment the proxy container starts with, downward-API values resolved as the kubelet would. */
function environmentOf(container: V1Container): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const e of container.env ?? []) env[e.name] = e.value ?? DOWNWARD_VALUES[e.valueFrom?.fieldRef?.fieldPath ?? ''];
  return env;
}

/** The proxy's configuration as `meshlet proxy` parses it inside the injected container. */
function proxyConfigIn(container: V1Container) {
  const env = environmentOf(container);
  if (container.args?.[0] !== 'proxy') throw new Error(`the proxy container runs "${container.args?.[0]}", not meshlet proxy`);
  return parseProxyConfig(parseCommand(PROXY_COMMAND, container.args!.slice(1), env).values, (path) => path === env[ENV.tokenFile]);
}

function standaloneProxy(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return parseProxyConfig(parseCommand(PROXY_COMMAND, ['--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:1', ...argv], env).values, () => false);
}

const webhookArgs = ['--cert', '/tls/tls.crt', '--key', '/tls/tls.key'];

const policySurfaces: Surface[] = [
  { name: "the balancer's registry (createPolicy)", take: (v) => taken(() => createPolicy(v, { slowStartMs: 0 }).name) },
  { name: 'meshlet proxy --lb-policy', take: (v) => taken(() => standaloneProxy(['--lb-policy', v]).lbPolicy) },
  { name: `meshlet proxy ${ENV.lbPolicy}`, take: (v) => taken(() => standaloneProxy([], { [ENV.lbPolicy]: v }).lbPolicy) },
  { name: 'meshlet webhook --lb-policy', take: (v) => taken(() => parseWebhookOptions(parseCommand(webhookCommand, [...webhookArgs, '--lb-policy', v], {})).injector.lbPolicy) },
  { name: 'meshlet inject --lb-policy', take: (v) => taken(() => parseInjectorConfig(parseCommand(injectCommand, ['--lb-policy', v], {})).lbPolicy) },
  {
    name: `${ANNOTATION.lbPolicy}, as the injected proxy reads it`,
    take: (v) => {
      const injected = inject(opted({ [ANNOTATION.lbPolicy]: v }));
      return 'denied' in injected ? { ok: false, message: injected.denied } : taken(() => proxyConfigIn(injected.proxy).lbPolicy);
    },
  },
];

const logLevelSurfaces: Surface[] = [
  { name: 'meshlet proxy --log-level', take: (v) => taken(() => standaloneProxy(['--log-level', v]).logLevel) },
  { name: `meshlet proxy ${ENV.logLevel}`, take: (v) => taken(() => standaloneProxy([], { [ENV.logLevel]: v }).logLevel) },
  {
    name: 'meshlet webhook --log-level',
    take: (v) =>
      taken(() => {
        const parsed = parseCommand(webhookCommand, [...webhookArgs, '--log-level', v], {});
        parseWebhookOptions(parsed);
        return String(parsed.values['log-level']);
      }),
  },
  { name: 'meshlet webhook --proxy-log-level', take: (v) => taken(() => parseWebhookOptions(parseCommand(webhookCommand, [...webhookArgs, '--proxy-log-level', v], {})).injector.proxyLogLevel) },
  { name: 'meshlet inject --proxy-log-level', take: (v) => taken(() => parseInjectorConfig(parseCommand(injectCommand, ['--proxy-log-level', v], {})).proxyLogLevel) },
  {
    name: `${ANNOTATION.proxyLogLevel}, as the injected proxy reads it`,
    take: (v) => {
      const injected = inject(opted({ [ANNOTATION.proxyLogLevel]: v }));
      return 'denied' in injected ? { ok: false, message: injected.denied } : taken(() => proxyConfigIn(injected.proxy).logLevel);
    },
  },
];

registerBuiltinPolicies();

t.test("the balancer registers exactly the contract's policies, each under its own name", async (t) => {
  t.same(policyNames(), [...LB_POLICIES]);
  for (const name of LB_POLICIES) t.equal(createPolicy(name, { slowStartMs: 0 }).name, name, `${name} is the policy it names`);
});

for (const [what, allowed, others, surfaces] of [
  ['policy', LB_POLICIES, NOT_POLICIES, policySurfaces],
  ['log level', LOG_LEVELS, NOT_LOG_LEVELS, logLevelSurfaces],
] as const) {
  for (const surface of surfaces) {
    t.test(`${surface.name} takes every ${what} of the contract, and refuses any other naming them all`, async (t) => {
      for (const value of allowed) t.same(surface.take(value), { ok: true, value }, `"${value}" is taken as is`);
      for (const value of others) {
        const result = surface.take(value);
        t.equal(result.ok, false, `"${value}" is refused`);
        if (!result.ok) {
          t.match(result.message, `"${value}" is not valid`, 'the message names the value');
          t.match(result.message, allowed.join(', '), `and every ${what} allowed, in the contract's order`);
        }
      }
    });
  }
}

t.test('without a choice, the proxy and the injector default to the same policy and log level', async (t) => {
  const standalone = standaloneProxy([]);
  t.equal(standalone.lbPolicy, DEFAULT_LB_POLICY);
  t.equal(standalone.logLevel, DEFAULT_LOG_LEVEL);
  const injected = inject(opted());
  if ('denied' in injected) throw new Error(injected.denied);
  const inPod = proxyConfigIn(injected.proxy);
  t.equal(inPod.lbPolicy, DEFAULT_LB_POLICY);
  t.equal(inPod.logLevel, DEFAULT_LOG_LEVEL);
});

t.test('the injected init and proxy containers agree on the UID, the ports and the token', async (t) => {
  const injected = inject(opted());
  if ('denied' in injected) throw new Error(injected.denied);
  const { init, proxy } = injected;
  t.equal(init.args?.[0], 'init', 'the init container runs meshlet init');
  const redirect = parseInitConfig(parseCommand(initCommand, init.args!.slice(1), {}));
  const config = proxyConfigIn(proxy);

  t.equal(proxy.securityContext?.runAsUser, PROXY_UID, 'the proxy runs as PROXY_UID');
  t.equal(redirect.proxyUid, PROXY_UID, 'and meshlet init exempts that UID');
  t.equal(config.mode, 'pod');
  t.same(config.listen, { host: '127.0.0.1', port: PROXY_OUTBOUND_PORT }, 'the proxy accepts on PROXY_OUTBOUND_PORT');
  t.equal(redirect.proxyPort, PROXY_OUTBOUND_PORT, 'where meshlet init redirects to');

  const adminPort = proxy.ports?.find((p) => p.containerPort === config.admin.port);
  t.ok(adminPort, `the container declares the admin port the proxy listens on (${config.admin.port})`);
  t.equal(config.admin.port, PROXY_ADMIN_PORT);
  for (const probe of [proxy.startupProbe, proxy.readinessProbe, proxy.livenessProbe]) t.equal(probe?.httpGet?.port, adminPort?.name, 'probed on the admin port');

  const mount = proxy.volumeMounts?.find((m) => m.mountPath === PROXY_TOKEN_DIR);
  t.ok(mount, 'the token volume is mounted at PROXY_TOKEN_DIR');
  t.equal(config.discovery.inCluster, true, `the proxy finds its token where ${ENV.tokenFile} says, inside that mount`);
  t.equal(environmentOf(proxy)[ENV.tokenFile], join(PROXY_TOKEN_DIR, 'token'));
  t.equal(config.discovery.namespace, DOWNWARD_VALUES['metadata.namespace'], `short names resolve in the Pod's namespace (${ENV.podNamespace})`);
});

t.test("the injected proxy command is the image's entrypoint, with node flags and an environment the proxy starts with", async (t) => {
  const injected = inject(opted());
  if ('denied' in injected) throw new Error(injected.denied);
  const { proxy } = injected;
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
  t.same(JSON.parse(entrypoint ?? 'null'), IMAGE_ENTRYPOINT, "the Dockerfile's ENTRYPOINT is IMAGE_ENTRYPOINT");
  const command = proxy.command ?? [];
  t.equal(command[0], IMAGE_ENTRYPOINT[0], 'the command runs node');
  t.equal(command.at(-1), IMAGE_ENTRYPOINT[1], 'on the image\'s meshlet script');
  t.same(command.slice(1, -1), PROXY_NODE_FLAGS, 'with the proxy\'s node flags between them');
  t.same(proxy.args, ['proxy']);
  for (const [name, value] of Object.entries(PROXY_ENV)) t.equal(environmentOf(proxy)[name], value, `the container sets ${name}`);
  // The same command, with this checkout in place of /app: node must accept every flag (NODE_OPTIONS
  // would refuse --initial-old-space-size, hence the command line).
  const run = spawnSync(process.execPath, [...command.slice(1, -1), join(REPO_ROOT, 'bin', 'meshlet.js'), '--version'], { env: { ...process.env, ...PROXY_ENV }, encoding: 'utf8', timeout: 30_000 });
  t.equal(run.status, 0, `node ${command.slice(1, -1).join(' ')} bin/meshlet.js --version exits 0: ${run.stderr}`);
  t.match(run.stdout, /^\d+\.\d+\.\d+/);
});

t.test("the injected probes' paths are served by the proxy's admin server, and /metrics has the contract's metrics", async (t) => {
  const injected = inject(opted());
  if ('denied' in injected) throw new Error(injected.denied);
  const { proxy: container } = injected;
  const { proxy } = await startTestProxy(new TestSource(['127.0.0.1:9']));
  t.teardown(() => proxy.close());
  const paths = [container.startupProbe, container.readinessProbe, container.livenessProbe].map((p) => p?.httpGet?.path);
  t.same([...new Set(paths)].sort(), [ADMIN_PATH.live, ADMIN_PATH.ready].sort());
  for (const path of paths) t.equal((await fetch(`http://127.0.0.1:${proxy.admin.port}${path}`)).status, 200, `GET ${path}`);
  const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin.port}${ADMIN_PATH.metrics}`)).text();
  for (const name of Object.values(METRICS)) t.match(metrics, `# TYPE ${name} `, `${ADMIN_PATH.metrics} declares ${name}`);
});

t.test("the README's annotation table lists the contract's policies and log levels, and their defaults", async (t) => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const row = (key: string) => {
    const line = readme.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
    if (!line) throw new Error(`README has no annotation row for ${key}`);
    const [, , defaultCell, allowedCell] = line.split('|');
    const words = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    return { defaultValue: words(defaultCell!)[0], allowed: words(allowedCell!) };
  };
  t.same(row(ANNOTATION.lbPolicy), { defaultValue: DEFAULT_LB_POLICY, allowed: [...LB_POLICIES] });
  t.same(row(ANNOTATION.proxyLogLevel), { defaultValue: DEFAULT_LOG_LEVEL, allowed: [...LOG_LEVELS] });
  t.match(readme, `allowed: one of ${LB_POLICIES.join(', ')}`, 'the example denial names the policies as the injector does');
});
