import type { Logger } from '../../src/common/logger.js';
import { parseProxyConfig, type ProxyConfig } from '../../sidecar/config.js';
import { EndpointSet, makeEndpoint } from '../../sidecar/discovery/endpoint-set.js';
import { TargetState, type EndpointSource, type Target, type TargetHint } from '../../sidecar/discovery/source.js';
import { startProxy, type RunningProxy } from '../../sidecar/main.js';
import { parseHostPort } from '../../src/common/values.js';
import { captureLogs } from './log-capture.js';

/**
 * Test-only endpoint source: one target whose endpoints the test sets directly (the real sources
 * live in sidecar/discovery; this stands in for them so relay tests need no files or cluster).
 */
export class TestSource implements EndpointSource {
  readonly name = 'test';
  readonly target = new TargetState('static');
  /** When set, resolve() answers only for these authorities (others: unknown target). */
  knownAuthorities: Set<string> | undefined;
  resolved: TargetHint[] = [];

  constructor(addresses: string[] = []) {
    this.set(addresses);
  }

  set(addresses: string[]): void {
    this.target.update(
      EndpointSet.of(
        addresses.map((a) => {
          const parsed = parseHostPort(a);
          if (!parsed.ok) throw new Error(`bad test address ${a}`);
          return makeEndpoint(parsed.value.host, parsed.value.port);
        }),
      ),
    );
  }

  async resolve(hint: TargetHint): Promise<Target | undefined> {
    this.resolved.push(hint);
    if (this.knownAuthorities && !this.knownAuthorities.has(hint.authority ?? '')) return undefined;
    return this.target;
  }

  async close(): Promise<void> {}
}

/** A source whose target breaks the balancer it is given to: route lookup rejects (a bug's stand-in). */
export class BrokenTargetSource extends TestSource {
  override async resolve(hint: TargetHint): Promise<Target | undefined> {
    this.resolved.push(hint);
    const refuse = () => {
      throw new Error('subscription refused');
    };
    return new Proxy(this.target, { get: (target, key) => (key === 'subscribe' ? refuse : Reflect.get(target, key, target)) });
  }
}

/** A standalone proxy on loopback with ephemeral ports, fed by `source`. */
export async function startTestProxy(
  source: EndpointSource,
  flags: Record<string, string> = {},
  log: Logger = captureLogs('warn').log,
): Promise<{ proxy: RunningProxy; config: ProxyConfig; target: string }> {
  const config = parseProxyConfig({
    listen: '127.0.0.1:0',
    upstream: '127.0.0.1:1',
    admin: '127.0.0.1:0',
    'debug-admin': '127.0.0.1:0',
    'lb-policy': 'round-robin',
    'log-level': 'warn',
    // Long enough that this process being descheduled on a busy machine does not get a client's
    // first bytes read after the detection timer fired (the connection would be taken for opaque).
    'detect-timeout-ms': '2000',
    'connect-timeout-ms': '2000',
    'shutdown-grace-seconds': '5',
    'max-endpoint-labels': '200',
    ...flags,
  });
  const proxy = await startProxy(config, { source, log });
  return { proxy, config, target: `127.0.0.1:${proxy.address.port}` };
}

/** Counts of replies per backend name. */
export function tally(names: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return counts;
}
