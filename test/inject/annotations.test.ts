import t from 'tap';
import { parseInjectAnnotation, parseOverrides } from '../../src/inject/annotations.js';
import { parseQuantity } from '../../src/inject/quantity.js';
import { DEFAULT_INJECTOR_CONFIG, resolveSettings } from '../../src/inject/settings.js';
import { buildProxyContainer } from '../../src/inject/sidecar.js';
import { ANNOTATION, ENV } from '../../src/common/contract.js';

t.test('Kubernetes quantities are accepted in every form the API server takes', async (t) => {
  const good: Array<[string, number]> = [
    ['100m', 0.1],
    ['0.5', 0.5],
    ['2', 2],
    ['64Mi', 64 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['1e3', 1000],
    ['1.5G', 1.5e9],
    ['.5', 0.5],
    ['128974848', 128974848],
    ['129M', 129e6],
    ['0', 0],
  ];
  for (const [text, value] of good) {
    const parsed = parseQuantity(text);
    t.ok(parsed.ok, `"${text}" is a quantity`);
    if (parsed.ok) t.ok(Math.abs(parsed.value.value - value) < 1e-9 * Math.max(1, value), `"${text}" is ${value}`);
  }
});

t.test('anything else is rejected with what a quantity looks like', async (t) => {
  for (const bad of ['', 'lots', '-1', '1MB', '1 Gi', '1mi', '1e', '--1', 'Mi', '1.2.3', '0x10', '1Ki1']) {
    const parsed = parseQuantity(bad);
    t.equal(parsed.ok, false, `"${bad}" is rejected`);
    if (!parsed.ok) t.match(parsed.allowed, /Kubernetes quantity/);
  }
});

t.test('every override is parsed when valid', async (t) => {
  const result = parseOverrides({
    [ANNOTATION.proxyImage]: 'localhost:5000/meshlet:dev',
    [ANNOTATION.nativeSidecar]: 'false',
    [ANNOTATION.proxyCpuRequest]: '100m',
    [ANNOTATION.proxyCpuLimit]: '1',
    [ANNOTATION.proxyMemoryRequest]: '64Mi',
    [ANNOTATION.proxyMemoryLimit]: '128Mi',
    [ANNOTATION.proxyLogLevel]: 'trace',
    [ANNOTATION.lbPolicy]: 'round-robin',
    [ANNOTATION.slowStartMs]: '5000',
    [ANNOTATION.skipOutboundPorts]: '5432,6379',
    [ANNOTATION.outboundPorts]: '80',
    [ANNOTATION.skipOutboundCidrs]: '198.18.0.0/15, fd00::/8',
    'unrelated.example/key': 'anything',
  });
  t.ok(result.ok);
  if (!result.ok) return;
  t.match(result.overrides, {
    proxyImage: 'localhost:5000/meshlet:dev',
    nativeSidecar: false,
    cpuRequest: { text: '100m' },
    memoryLimit: { text: '128Mi' },
    logLevel: 'trace',
    lbPolicy: 'round-robin',
    slowStartMs: 5000,
    skipOutboundPorts: [5432, 6379],
    outboundPorts: [80],
    skipOutboundCidrs: ['198.18.0.0/15', 'fd00::/8'],
  });
});

const badValues: Array<{ key: string; value: string; allowed: RegExp }> = [
  { key: ANNOTATION.proxyImage, value: 'Not An Image!', allowed: /image reference/ },
  { key: ANNOTATION.proxyImage, value: 'registry.example/meshlet:bad tag', allowed: /image reference/ },
  { key: ANNOTATION.nativeSidecar, value: 'no', allowed: /"true" or "false"/ },
  { key: ANNOTATION.proxyCpuRequest, value: 'fast', allowed: /Kubernetes quantity/ },
  { key: ANNOTATION.proxyCpuLimit, value: '-1', allowed: /Kubernetes quantity/ },
  { key: ANNOTATION.proxyMemoryRequest, value: '64MB', allowed: /Kubernetes quantity/ },
  { key: ANNOTATION.proxyMemoryLimit, value: 'lots', allowed: /Kubernetes quantity/ },
  { key: ANNOTATION.proxyLogLevel, value: 'verbose', allowed: /fatal, error, warn, info, debug, trace/ },
  { key: ANNOTATION.lbPolicy, value: 'fastest', allowed: /round-robin, least-request, peak-ewma/ },
  { key: ANNOTATION.slowStartMs, value: '10s', allowed: /milliseconds from 0 \(off\) to 600000/ },
  { key: ANNOTATION.slowStartMs, value: '600001', allowed: /milliseconds from 0 \(off\) to 600000/ },
  { key: ANNOTATION.skipOutboundPorts, value: '5432,99999', allowed: /1 to 65535/ },
  { key: ANNOTATION.outboundPorts, value: '', allowed: /1 to 65535/ },
  { key: ANNOTATION.outboundPorts, value: 'http', allowed: /1 to 65535/ },
  { key: ANNOTATION.proxyImage, value: 'registry.example/team/meshlet', allowed: /with a tag or a digest/ },
  { key: ANNOTATION.proxyImage, value: 'localhost:5000/meshlet', allowed: /with a tag or a digest/ },
  { key: ANNOTATION.outboundPorts, value: '80,', allowed: /no empty items/ },
  { key: ANNOTATION.outboundPorts, value: ' 80', allowed: /a space may follow a comma, nothing else/ },
  { key: ANNOTATION.outboundPorts, value: '80 ', allowed: /a space may follow a comma, nothing else/ },
  { key: ANNOTATION.outboundPorts, value: ',80', allowed: /no empty items/ },
  { key: ANNOTATION.outboundPorts, value: '80,,443', allowed: /no empty items/ },
  { key: ANNOTATION.outboundPorts, value: '80 ,443', allowed: /a space may follow a comma/ },
  { key: ANNOTATION.outboundPorts, value: '080', allowed: /no leading zeros/ },
  { key: ANNOTATION.skipOutboundPorts, value: '80,80', allowed: /no port twice/ },
  { key: ANNOTATION.proxyMemoryLimit, value: '1Mi', allowed: /from 128Mi .* to 64Gi/ },
  { key: ANNOTATION.proxyMemoryLimit, value: '0', allowed: /from 128Mi/ },
  { key: ANNOTATION.proxyMemoryLimit, value: '1Ei', allowed: /to 64Gi/ },
  { key: ANNOTATION.proxyMemoryRequest, value: '1e100', allowed: /from 0 to 64Gi/ },
  { key: ANNOTATION.proxyCpuRequest, value: '1e100', allowed: /from 0 to 64 \(cores\)/ },
  { key: ANNOTATION.proxyCpuLimit, value: '0', allowed: /from 10m to 64/ },
  { key: ANNOTATION.proxyCpuLimit, value: '65', allowed: /from 10m to 64/ },
  { key: ANNOTATION.skipOutboundCidrs, value: '198.18.0.0/15,', allowed: /no empty items/ },
  { key: ANNOTATION.skipOutboundCidrs, value: '198.18.0.0/33', allowed: /CIDR/ },
  { key: ANNOTATION.skipOutboundCidrs, value: 'example.com', allowed: /CIDR/ },
];

for (const { key, value, allowed } of badValues) {
  t.test(`${key}: "${value}" is refused naming the annotation, the value and what is allowed`, async (t) => {
    const result = parseOverrides({ [key]: value });
    t.equal(result.ok, false);
    if (result.ok) return;
    t.equal(result.errors.length, 1);
    const message = result.errors[0]!.message;
    t.ok(message.startsWith(`${key}: "${value}" is not valid; allowed: `), message);
    t.match(message, allowed);
  });
}

t.test('the edges of every bounded value are accepted', async (t) => {
  const result = parseOverrides({
    [ANNOTATION.proxyImage]: 'registry.example:5000/mirror/meshlet:0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    [ANNOTATION.proxyCpuRequest]: '0',
    [ANNOTATION.proxyCpuLimit]: '10m',
    [ANNOTATION.proxyMemoryRequest]: '0',
    [ANNOTATION.proxyMemoryLimit]: '128Mi',
    [ANNOTATION.outboundPorts]: '80, 443,65535',
    [ANNOTATION.skipOutboundPorts]: '1',
  });
  t.ok(result.ok, JSON.stringify(result));
  if (result.ok) t.same(result.overrides.outboundPorts, [80, 443, 65535]);
  const top = parseOverrides({ [ANNOTATION.proxyCpuLimit]: '64', [ANNOTATION.proxyMemoryLimit]: '64Gi' });
  t.ok(top.ok, JSON.stringify(top));
});

t.test('every bad annotation is reported at once, not just the first', async (t) => {
  const result = parseOverrides({ [ANNOTATION.lbPolicy]: 'fastest', [ANNOTATION.proxyMemoryLimit]: 'lots', [ANNOTATION.outboundPorts]: '0' });
  t.equal(result.ok, false);
  if (!result.ok) t.same(result.errors.map((e) => e.key).sort(), [ANNOTATION.lbPolicy, ANNOTATION.outboundPorts, ANNOTATION.proxyMemoryLimit].sort());
});

t.test('a request above its limit is refused', async (t) => {
  const result = parseOverrides({ [ANNOTATION.proxyMemoryRequest]: '1Gi', [ANNOTATION.proxyMemoryLimit]: '512Mi' });
  t.equal(result.ok, false);
  if (!result.ok) t.match(result.errors[0]!.message, /meshlet.dev\/proxy-memory-request: "1Gi" is not valid; allowed: a quantity no larger than meshlet.dev\/proxy-memory-limit \("512Mi"\)/);
});

t.test('meshlet.dev/inject takes enabled or disabled and names both otherwise', async (t) => {
  t.equal(parseInjectAnnotation({ [ANNOTATION.inject]: 'enabled' }), 'enabled');
  t.equal(parseInjectAnnotation({ [ANNOTATION.inject]: 'disabled' }), 'disabled');
  t.equal(parseInjectAnnotation({}), 'absent');
  t.equal(parseInjectAnnotation(undefined), 'absent');
  const bad = parseInjectAnnotation({ [ANNOTATION.inject]: 'true' });
  t.type(bad, Error);
  t.equal((bad as Error).message, 'meshlet.dev/inject: "true" is not valid; allowed: "enabled" or "disabled"');
});

t.test('meshlet.dev/slow-start-ms reaches the proxy as its variable; without it the proxy keeps its default', async (t) => {
  const env = (annotations: Record<string, string>) => {
    const result = parseOverrides(annotations);
    if (!result.ok) throw result.errors[0];
    return buildProxyContainer(resolveSettings(DEFAULT_INJECTOR_CONFIG, result.overrides)).env!.find((e) => e.name === ENV.slowStartMs)?.value;
  };
  t.equal(env({ [ANNOTATION.slowStartMs]: '0' }), '0', '0 turns slow start off');
  t.equal(env({ [ANNOTATION.slowStartMs]: '30000' }), '30000');
  t.equal(env({}), undefined, 'not set without the annotation');
});
