import type { Logger } from '../../src/common/log-format.js';
import { formatHostPort, HOST_PORT_ALLOWED, parseHostPort } from '../../src/common/values.js';
import { DEFAULT_HTTP_PORT, parseServiceHost, serviceAuthorityForms, splitAuthority } from '../route/authority.js';
import { EndpointSet } from './endpoint-set.js';
import { describeJson, parseEndpointList } from './host-port-list.js';
import { TargetState, type EndpointSource, type Target, type TargetHint } from './source.js';
import { WatchedJsonFile, type FileParse } from './watched-file.js';

type ServiceTable = Map<string, EndpointSet>;

export interface ServicesFileOptions {
  namespace: string;
  clusterDomain: string;
}

/**
 * `--services FILE`: a watched JSON object mapping "name:port" (as an authority names it, e.g.
 * "web.demo:80") or "vip:port" (an original destination) to ["ip:port", ...]. A hint is looked up by
 * its authority first (every form of a Service name counts: "web", "web.demo", "web.demo.svc", …),
 * then by its original destination; anything else is not ours (undefined: pass through).
 */
export class ServicesFileSource implements EndpointSource {
  readonly name = 'services';
  private readonly targets = new Map<string, TargetState>();
  private file: WatchedJsonFile<ServiceTable> | undefined;

  private constructor(
    private readonly options: ServicesFileOptions,
    private readonly log: Logger,
  ) {}

  static async open(path: string, options: ServicesFileOptions, log: Logger): Promise<ServicesFileSource> {
    const source = new ServicesFileSource(options, log);
    source.file = await WatchedJsonFile.open(path, parseServiceTable, (table) => source.apply(table), log);
    return source;
  }

  async resolve(hint: TargetHint): Promise<Target | undefined> {
    for (const key of this.candidateKeys(hint)) {
      const target = this.targets.get(key);
      if (target) return target;
    }
    return undefined;
  }

  async close(): Promise<void> {
    this.file?.close();
  }

  private candidateKeys(hint: TargetHint): string[] {
    const keys: string[] = [];
    const authority = hint.authority === undefined ? undefined : splitAuthority(hint.authority);
    if (authority) {
      const port = authority.port ?? hint.originalDst?.port ?? DEFAULT_HTTP_PORT;
      keys.push(normalizeKey(authority.host, port));
      const service = parseServiceHost(authority.host, this.options.namespace, this.options.clusterDomain);
      if (service) keys.push(...serviceAuthorityForms(service, port, this.options.namespace, this.options.clusterDomain));
    }
    if (hint.originalDst) keys.push(normalizeKey(hint.originalDst.host, hint.originalDst.port));
    return keys;
  }

  private apply(table: ServiceTable): void {
    for (const [key, target] of this.targets) {
      if (table.has(key)) continue;
      this.targets.delete(key);
      target.update(EndpointSet.EMPTY);
      this.log.info({ service: key }, 'service removed');
    }
    for (const [key, endpoints] of table) {
      let target = this.targets.get(key);
      if (!target) {
        target = new TargetState(key);
        this.targets.set(key, target);
      }
      const diff = endpoints.diff(target.endpoints);
      target.update(endpoints);
      if (diff.added.length + diff.removed.length + diff.changed.length > 0) {
        this.log.info({ service: key, added: diff.added.length, removed: diff.removed.length, ready: endpoints.ready.length }, 'endpoints updated');
      }
    }
  }
}

function normalizeKey(host: string, port: number): string {
  return formatHostPort(host.toLowerCase(), port);
}

function parseServiceTable(json: unknown): FileParse<ServiceTable> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return { ok: false, problems: [`the services file must be a JSON object {"name:port": ["ip:port", ...]}, got ${describeJson(json)}`] };
  }
  const problems: string[] = [];
  const table: ServiceTable = new Map();
  for (const [key, value] of Object.entries(json)) {
    const parsedKey = parseHostPort(key);
    if (!parsedKey.ok) problems.push(`key ${JSON.stringify(key)} is not valid; allowed: ${HOST_PORT_ALLOWED} (a Service name as the app writes it, or a ClusterIP)`);
    const list = parseEndpointList(value, JSON.stringify(key));
    if (!list.ok) problems.push(...list.problems);
    else if (parsedKey.ok) table.set(normalizeKey(parsedKey.value.host, parsedKey.value.port), list.endpoints);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: table };
}
