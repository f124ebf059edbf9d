import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { generateCertificates, type CertificateBundle } from '../../src/certs/forge.js';
import { readKubeFixture, readKubeFixtureLines } from './kube-fixtures.js';

/**
 * A real HTTP server on loopback that speaks the kube-apiserver's list, get and watch protocol, so
 * real clients do the talking in tests: the sidecar's own KubeClient, and @kubernetes/client-node
 * (diagnose, and test/sidecar/discovery/kube-api.test.ts). It also answers SubjectAccessReviews from its
 * forbid rules, and TokenReviews from the tokens it was told to accept. It starts from the responses recorded from a real kube-apiserver in test/fixtures/kube (the EndpointSlice list of Service demo/web) and lets a
 * test change objects (every change is streamed to open watches as the apiserver would), close watch
 * streams, expire resource versions (410), go down and come back, refuse with 403, require a token,
 * and answer extra GET routes of its own (e.g. a pod proxy to /metrics).
 */


export interface KubeObject {
  kind?: string;
  apiVersion?: string;
  metadata: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

/** A resource the server keeps and serves under its usual paths. */
export interface ResourceKind {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const RESOURCES: Record<string, ResourceKind> = {
  endpointslices: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', kind: 'EndpointSlice' },
  services: { group: '', version: 'v1', plural: 'services', kind: 'Service' },
  pods: { group: '', version: 'v1', plural: 'pods', kind: 'Pod' },
  namespaces: { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace' },
};

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
  verb: 'get' | 'list' | 'watch' | 'other';
}

export interface ForbiddenRule {
  plural: string;
  /** Any namespace when absent. */
  namespace?: string;
  /** Only requests at the cluster scope (no namespace in the path), e.g. a cluster-wide list. */
  clusterWide?: boolean;
  /** Every verb when absent. */
  verb?: 'get' | 'list' | 'watch';
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray, url: URL) => void | Promise<void>;

interface OpenWatch {
  plural: string;
  namespace: string | undefined;
  name: string | undefined;
  labelSelector: string | undefined;
  fieldSelector: string | undefined;
  bookmarks: boolean;
  res: ServerResponse;
  timer: NodeJS.Timeout | undefined;
}

export interface KubeApiOptions {
  /** Load the recorded EndpointSlices of demo/web (default true). */
  loadFixtures?: boolean;
  /** Require `Authorization: Bearer <token>`; 401 otherwise. Change later with `requireToken`. */
  token?: string;
  /** The user named in 403 messages, like the apiserver names the caller. */
  user?: string;
  /**
   * Tests that send traffic must never connect to the recorded Pod IPs (10.244.x.x): map them to
   * loopback addresses of real backends (and the recorded port 8080 to theirs) in the recorded list
   * and changes.
   */
  rewrite?: { addresses: Record<string, string>; port?: number };
  /** Serve HTTPS with a fresh CA (for in-cluster credentials, which insist on TLS); `caPem` is the CA. */
  tls?: boolean;
  /** The names the serving certificate is valid for (default 127.0.0.1 and localhost). */
  tlsNames?: string[];
}

export class KubeApiServer {
  readonly requests: RecordedRequest[] = [];
  /** Added to every list and get before it is answered (a slow API server). */
  responseDelayMs = 0;
  private readonly server: Server;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: Array<{ rv: number; plural: string; event: WatchEvent }> = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly sockets = new Set<Socket>();
  /** Bytes written and connections accepted by sockets already closed (live ones are summed on demand). */
  private closedBytesWritten = 0;
  private acceptedConnections = 0;
  private readonly routes: Array<{ method: string; pattern: RegExp; handler: RouteHandler }> = [];
  private forbidden: ForbiddenRule[] = [];
  private readonly reviewableTokens = new Map<string, { user: string; audiences: string[] }>();
  private token: string | undefined;
  private readonly user: string;
  private rv = 1;
  /** The oldest resourceVersion a watch can resume from; older ones get 410 Expired. */
  private minWatchRv = 1;
  private listeningPort = 0;
  private isUp = false;
  private readonly certificates: CertificateBundle | undefined;
  private readonly rewrite: KubeApiOptions['rewrite'];

  private constructor(options: KubeApiOptions) {
    this.token = options.token;
    this.rewrite = options.rewrite;
    this.user = options.user ?? 'system:serviceaccount:demo:default';
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err.stack));
      });
    };
    this.certificates = options.tls ? generateCertificates({ names: options.tlsNames ?? ['127.0.0.1', 'localhost'] }) : undefined;
    this.server = this.certificates ? createHttpsServer({ key: this.certificates.keyPem, cert: this.certificates.certPem }, handler) : createServer(handler);
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      this.acceptedConnections++;
      socket.on('close', () => {
        this.closedBytesWritten += socket.bytesWritten;
        this.sockets.delete(socket);
      });
    });
    if (options.loadFixtures !== false) this.loadRecordedList();
  }

  static async start(options: KubeApiOptions = {}): Promise<KubeApiServer> {
    const api = new KubeApiServer(options);
    await api.listen(0);
    return api;
  }

  get port(): number {
    return this.listeningPort;
  }

  get url(): string {
    return `${this.certificates ? 'https' : 'http'}://127.0.0.1:${this.listeningPort}`;
  }

  /** The CA that signed the serving certificate (with `tls: true`), as a pod's ca.crt holds it. */
  get caPem(): string | undefined {
    return this.certificates?.caCertPem;
  }

  /** The resourceVersion of the latest change. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** A kubeconfig (JSON is YAML) pointing at this server, with the token when one is required. */
  kubeconfig(namespace = 'demo', token = this.token ?? 'replay-token'): string {
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'replay', cluster: this.certificates ? { server: this.url, 'certificate-authority-data': Buffer.from(this.certificates.caCertPem).toString('base64') } : { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'replay', user: { token } }],
      contexts: [{ name: 'replay', context: { cluster: 'replay', user: 'replay', namespace } }],
      'current-context': 'replay',
    });
  }

  async writeKubeconfig(dir: string, namespace = 'demo'): Promise<string> {
    const path = join(dir, 'kubeconfig');
    await writeFile(path, this.kubeconfig(namespace), { mode: 0o600 });
    return path;
  }

  // ---- objects ------------------------------------------------------------------------------

  get(plural: string, namespace: string, name: string): KubeObject | undefined {
    const object = this.store(plural).get(`${namespace}/${name}`);
    return object && structuredClone(object);
  }

  list(plural: string, namespace?: string): KubeObject[] {
    return [...this.store(plural).values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace).map((o) => structuredClone(o));
  }

  /** Creates or replaces an object and streams ADDED or MODIFIED to matching watches. */
  upsert(plural: string, object: KubeObject): KubeObject {
    const kind = resourceKind(plural);
    const stored = structuredClone(object);
    stored.kind = kind.kind;
    stored.apiVersion = apiVersionOf(kind);
    const key = `${stored.metadata.namespace}/${stored.metadata.name}`;
    const type = this.store(plural).has(key) ? 'MODIFIED' : 'ADDED';
    stored.metadata.resourceVersion = String(++this.rv);
    this.store(plural).set(key, stored);
    this.publish(plural, { type, object: stored });
    return structuredClone(stored);
  }

  /** Deletes an object and streams DELETED; false when it did not exist. */
  remove(plural: string, namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    const object = this.store(plural).get(key);
    if (!object) return false;
    this.store(plural).delete(key);
    const deleted = structuredClone(object);
    deleted.metadata.resourceVersion = String(++this.rv);
    this.publish(plural, { type: 'DELETED', object: deleted });
    return true;
  }

  /**
   * The changes recorded after the list (endpointslice-watch-from-rv-with-bookmarks.jsonl, without its
   * bookmarks): web-7xk2p's 10.244.2.11 turns terminating, web-q9m4d's endpoint turns ready, the
   * terminating endpoint is removed, web-q9m4d is deleted. Apply them with `applyRecorded`.
   */
  recordedChanges(): WatchEvent[] {
    return (readKubeFixtureLines('endpointslice-watch-from-rv-with-bookmarks.jsonl') as WatchEvent[])
      .filter((e) => e.type !== 'BOOKMARK')
      .map((e) => ({ ...e, object: this.rewriteSlice(e.object) }));
  }

  /** Applies one recorded event as a change of our own (it gets the next resourceVersion). */
  applyRecorded(event: WatchEvent): void {
    const plural = pluralOfKind(event.object.kind);
    if (event.type === 'DELETED') this.remove(plural, event.object.metadata.namespace!, event.object.metadata.name!);
    else this.upsert(plural, event.object);
  }

  // ---- watch control ----------------------------------------------------------------------

  /**
   * What the API side has carried: connections open now and accepted so far, and bytes written to
   * clients (response bytes, TLS records included when serving HTTPS), for the discovery scale bench.
   */
  transportStats(): { openConnections: number; acceptedConnections: number; bytesWritten: number } {
    let live = 0;
    for (const socket of this.sockets) live += socket.bytesWritten;
    return { openConnections: this.sockets.size, acceptedConnections: this.acceptedConnections, bytesWritten: this.closedBytesWritten + live };
  }

  /** Number of watch streams open now, for one resource or all. */
  openWatches(plural?: string): number {
    return [...this.watches].filter((w) => plural === undefined || w.plural === plural).length;
  }

  /** Resolves when at least `count` watches of `plural` are open (bounded by `timeoutMs`). */
  async waitForWatches(plural: string, count = 1, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.openWatches(plural) < count) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} ${plural} watch(es); ${this.openWatches(plural)} open`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Sends a BOOKMARK with the current resourceVersion to watches that allow bookmarks. */
  bookmark(): void {
    for (const watch of this.watches) {
      if (!watch.bookmarks) continue;
      const kind = resourceKind(watch.plural);
      writeEvent(watch.res, { type: 'BOOKMARK', object: { kind: kind.kind, apiVersion: apiVersionOf(kind), metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  /** Ends every open watch stream cleanly, as the apiserver does at `timeoutSeconds`. */
  closeWatches(plural?: string): void {
    for (const watch of [...this.watches]) if (plural === undefined || watch.plural === plural) this.endWatch(watch);
  }

  /**
   * Forgets history (as after an apiserver restart or etcd compaction): open watches get the recorded
   * 410 Expired ERROR event and end; a watch resuming from an older resourceVersion gets the same.
   */
  expireHistory(): void {
    this.minWatchRv = this.rv;
    this.history.length = 0;
    for (const watch of [...this.watches]) {
      writeEvent(watch.res, expiredEvent(this.rv - 1, this.minWatchRv));
      this.endWatch(watch);
    }
  }

  forbid(rule: ForbiddenRule): void {
    this.forbidden.push(rule);
  }

  allowAll(): void {
    this.forbidden = [];
  }

  requireToken(token: string | undefined): void {
    this.token = token;
  }

  /**
   * TokenReviews authenticate `token` as `user` for these audiences (as a projected service-account
   * token is bound to its audiences); any other token is not authenticated.
   */
  acceptToken(token: string, user: string, audiences: string[]): void {
    this.reviewableTokens.set(token, { user, audiences });
  }

  forgetToken(token: string): void {
    this.reviewableTokens.delete(token);
  }

  /** Extra routes, matched before the API paths (e.g. `/api/v1/namespaces/demo/pods/web-0:9090/proxy/metrics`). */
  route(method: string, pattern: RegExp, handler: RouteHandler): void {
    this.routes.push({ method: method.toUpperCase(), pattern, handler });
  }

  // ---- availability -----------------------------------------------------------------------

  /** Goes down: stops listening and drops every connection (watches included) abruptly. */
  async stop(): Promise<void> {
    if (!this.isUp) return;
    this.isUp = false;
    for (const watch of this.watches) clearTimeout(watch.timer);
    this.watches.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** Comes back on the same port, with the same objects and history. */
  async restart(): Promise<void> {
    if (!this.isUp) await this.listen(this.listeningPort);
  }

  async close(): Promise<void> {
    await this.stop();
  }

  // ---- protocol ---------------------------------------------------------------------------

  private async listen(port: number): Promise<void> {
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    this.listeningPort = (this.server.address() as { port: number }).port;
    this.isUp = true;
  }

  private store(plural: string): Map<string, KubeObject> {
    let store = this.objects.get(plural);
    if (!store) {
      store = new Map();
      this.objects.set(plural, store);
    }
    return store;
  }

  private loadRecordedList(): void {
    const list = readKubeFixture('endpointslice-list.json') as { metadata: { resourceVersion: string }; items: KubeObject[] };
    const kind = RESOURCES.endpointslices!;
    for (const item of list.items) {
      this.store('endpointslices').set(`${item.metadata.namespace}/${item.metadata.name}`, this.rewriteSlice({ kind: kind.kind, apiVersion: apiVersionOf(kind), ...item }));
    }
    this.rv = Number(list.metadata.resourceVersion);
    this.minWatchRv = this.rv;
  }

  private rewriteSlice(object: KubeObject): KubeObject {
    const rewrite = this.rewrite;
    if (!rewrite) return object;
    const slice = structuredClone(object) as KubeObject & { endpoints?: Array<{ addresses: string[] }> | null; ports?: Array<{ port: number }> | null };
    for (const endpoint of slice.endpoints ?? []) endpoint.addresses = endpoint.addresses.map((a) => rewrite.addresses[a] ?? a);
    if (rewrite.port !== undefined) for (const port of slice.ports ?? []) port.port = rewrite.port;
    return slice;
  }

  private publish(plural: string, event: WatchEvent): void {
    this.history.push({ rv: this.rv, plural, event });
    const line = `${JSON.stringify(event)}\n`;
    for (const watch of this.watches) if (watch.plural === plural && matches(event.object, watch) && !watch.res.writableEnded) watch.res.write(line);
  }

  private endWatch(watch: OpenWatch): void {
    clearTimeout(watch.timer);
    this.watches.delete(watch);
    watch.res.end();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams);
    const isWatch = query.watch === 'true' || query.watch === '1';
    const parsed = parseApiPath(url.pathname);
    const verb = req.method !== 'GET' || !parsed ? 'other' : isWatch ? 'watch' : parsed.name ? 'get' : 'list';
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query, authorization: req.headers.authorization, verb });

    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
      return sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
    }
    for (const route of this.routes) {
      const match = route.method === req.method ? route.pattern.exec(url.pathname) : null;
      if (match) return route.handler(req, res, match, url);
    }
    if (req.method === 'POST' && url.pathname === SUBJECT_ACCESS_REVIEW_PATH) return this.reviewAccess(req, res);
    if (req.method === 'POST' && url.pathname === TOKEN_REVIEW_PATH) return this.reviewToken(req, res);
    if (!parsed || req.method !== 'GET') return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
    const kind = RESOURCES[parsed.plural];
    if (!kind || kind.group !== parsed.group || kind.version !== parsed.version) return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (this.isForbidden(parsed.plural, parsed.namespace, verb as 'get' | 'list' | 'watch')) {
      const resource = kind.group ? `${kind.plural}.${kind.group}` : kind.plural;
      const where = parsed.namespace ? ` in the namespace "${parsed.namespace}"` : ' at the cluster scope';
      const message = `${resource}${parsed.name ? ` "${parsed.name}"` : ''} is forbidden: User "${this.user}" cannot ${verb} resource "${kind.plural}" in API group "${kind.group}"${where}`;
      return sendStatus(res, 403, 'Forbidden', message, { ...(parsed.name ? { name: parsed.name } : {}), group: kind.group, kind: kind.plural });
    }
    if (this.responseDelayMs > 0 && !isWatch) await new Promise((r) => setTimeout(r, this.responseDelayMs));
    if (isWatch) return this.serveWatch(res, parsed.plural, parsed.namespace, parsed.name, query);

    if (parsed.name) {
      const object = this.store(parsed.plural).get(`${parsed.namespace}/${parsed.name}`);
      if (!object) return sendStatus(res, 404, 'NotFound', `${kind.group ? `${kind.plural}.${kind.group}` : kind.plural} "${parsed.name}" not found`, { name: parsed.name, group: kind.group, kind: kind.plural });
      return sendJson(res, 200, object);
    }
    const filter = { namespace: parsed.namespace, name: undefined, labelSelector: query.labelSelector, fieldSelector: query.fieldSelector };
    const items = [...this.store(parsed.plural).values()].filter((o) => matches(o, filter)).map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    sendJson(res, 200, { kind: `${kind.kind}List`, apiVersion: apiVersionOf(kind), metadata: { resourceVersion: String(this.rv) }, items });
  }

  private serveWatch(res: ServerResponse, plural: string, namespace: string | undefined, name: string | undefined, query: Record<string, string>): void {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const watch: OpenWatch = {
      plural,
      namespace,
      name,
      labelSelector: query.labelSelector,
      fieldSelector: query.fieldSelector,
      bookmarks: query.allowWatchBookmarks === 'true',
      res,
      timer: undefined,
    };
    const fromRv = query.resourceVersion;
    if (fromRv === undefined || fromRv === '' || fromRv === '0') {
      for (const object of this.store(plural).values()) if (matches(object, watch)) writeEvent(res, { type: 'ADDED', object });
    } else if (!/^\d+$/.test(fromRv) || Number(fromRv) < this.minWatchRv) {
      writeEvent(res, expiredEvent(Number(fromRv), this.minWatchRv));
      res.end();
      return;
    } else {
      for (const entry of this.history) if (entry.rv > Number(fromRv) && entry.plural === plural && matches(entry.event.object, watch)) writeEvent(res, entry.event);
    }
    this.watches.add(watch);
    res.on('close', () => {
      clearTimeout(watch.timer);
      this.watches.delete(watch);
    });
    const timeoutSeconds = Number(query.timeoutSeconds);
    if (timeoutSeconds > 0) watch.timer = setTimeout(() => this.endWatch(watch), timeoutSeconds * 1000);
  }

  /**
   * A SubjectAccessReview, answered from the same `forbid` rules the list and watch routes apply (the
   * rules are not per subject: every service account is refused alike).
   */
  private async reviewAccess(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeObject & { spec?: { resourceAttributes?: { verb?: string; resource?: string; namespace?: string } } };
    const attrs = review.spec?.resourceAttributes ?? {};
    const verb = attrs.verb === 'get' || attrs.verb === 'list' || attrs.verb === 'watch' ? attrs.verb : undefined;
    const allowed = verb !== undefined && attrs.resource !== undefined && !this.isForbidden(attrs.resource, attrs.namespace || undefined, verb);
    sendJson(res, 201, { ...review, status: { allowed, ...(allowed ? {} : { reason: 'forbidden by the replay server' }) } });
  }

  /**
   * A TokenReview, answered from `acceptToken`: authenticated when the token is known and bound to
   * one of the audiences asked about (or no audience was asked about), as the apiserver answers.
   */
  private async reviewToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeObject & { spec?: { token?: string; audiences?: string[] } };
    const known = this.reviewableTokens.get(review.spec?.token ?? '');
    const asked = review.spec?.audiences ?? [];
    const audiences = known ? (asked.length === 0 ? known.audiences : asked.filter((a) => known.audiences.includes(a))) : [];
    const authenticated = known !== undefined && audiences.length > 0;
    const { spec: _spec, ...rest } = review;
    sendJson(res, 201, {
      ...rest,
      metadata: { creationTimestamp: null },
      spec: {},
      status: authenticated ? { authenticated: true, user: { username: known.user, groups: ['system:serviceaccounts', 'system:authenticated'] }, audiences } : { user: {}, error: known ? 'token audiences do not match' : 'invalid bearer token' },
    });
  }

  private isForbidden(plural: string, namespace: string | undefined, verb: 'get' | 'list' | 'watch'): boolean {
    return this.forbidden.some(
      (r) => r.plural === plural && (r.namespace === undefined || r.namespace === namespace) && (r.clusterWide !== true || namespace === undefined) && (r.verb === undefined || r.verb === verb),
    );
  }
}

const SUBJECT_ACCESS_REVIEW_PATH = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';

// ---- object builders ------------------------------------------------------------------------

export interface ServicePortSpec {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
}

/** A Service as the apiserver returns it (ClusterIP, or headless with `clusterIP: 'None'`). */
export function serviceObject(spec: { name: string; namespace: string; clusterIP: string; clusterIPs?: string[]; ports: ServicePortSpec[]; type?: string; externalName?: string }): KubeObject {
  const isHeadless = spec.clusterIP === 'None';
  return {
    kind: 'Service',
    apiVersion: 'v1',
    metadata: { name: spec.name, namespace: spec.namespace, uid: '1d539af9-d09f-4746-a3e1-a610a175f1e0', creationTimestamp: '2026-11-22T19:00:19Z' },
    spec: {
      type: spec.type ?? 'ClusterIP',
      clusterIP: spec.clusterIP,
      clusterIPs: spec.clusterIPs ?? [spec.clusterIP],
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      internalTrafficPolicy: 'Cluster',
      sessionAffinity: 'None',
      selector: { app: spec.name },
      ...(spec.externalName ? { externalName: spec.externalName } : {}),
      ports: spec.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), protocol: p.protocol ?? 'TCP', port: p.port, targetPort: p.targetPort ?? p.port })),
      ...(isHeadless ? { publishNotReadyAddresses: false } : {}),
    },
    status: { loadBalancer: {} },
  };
}

export interface SliceEndpointSpec {
  ip: string;
  ready?: boolean | null;
  serving?: boolean | null;
  terminating?: boolean | null;
  pod?: string;
  zone?: string;
}

/** An EndpointSlice shaped like the recorded ones (labels and ownerReference as the controller sets them). */
export function endpointSliceObject(spec: {
  name: string;
  namespace: string;
  service: string;
  addressType?: 'IPv4' | 'IPv6';
  endpoints: SliceEndpointSpec[];
  ports: Array<{ name?: string; port: number; protocol?: string }> | null;
}): KubeObject {
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: {
      name: spec.name,
      namespace: spec.namespace,
      labels: { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', 'kubernetes.io/service-name': spec.service },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: spec.service, uid: '1d539af9-d09f-4746-a3e1-a610a175f1e0', controller: true, blockOwnerDeletion: true }],
    },
    addressType: spec.addressType ?? 'IPv4',
    endpoints: spec.endpoints.map((e) => {
      const conditions: Record<string, boolean> = {};
      if (e.ready !== null) conditions.ready = e.ready ?? true;
      if (e.serving !== null) conditions.serving = e.serving ?? e.ready ?? true;
      if (e.terminating !== null) conditions.terminating = e.terminating ?? false;
      return {
        addresses: [e.ip],
        conditions,
        ...(e.pod ? { targetRef: { kind: 'Pod', namespace: spec.namespace, name: e.pod } } : {}),
        ...(e.zone ? { zone: e.zone } : {}),
      };
    }),
    ports: spec.ports === null ? null : spec.ports.map((p) => ({ name: p.name ?? '', protocol: p.protocol ?? 'TCP', port: p.port })),
  };
}

// ---- helpers --------------------------------------------------------------------------------

function resourceKind(plural: string): ResourceKind {
  const kind = RESOURCES[plural];
  if (!kind) throw new Error(`unknown resource "${plural}"; known: ${Object.keys(RESOURCES).join(', ')}`);
  return kind;
}

function pluralOfKind(kind: string | undefined): string {
  const entry = Object.values(RESOURCES).find((r) => r.kind === kind);
  if (!entry) throw new Error(`unknown kind "${kind}"`);
  return entry.plural;
}

function apiVersionOf(kind: ResourceKind): string {
  return kind.group ? `${kind.group}/${kind.version}` : kind.version;
}

function parseApiPath(path: string): { group: string; version: string; namespace?: string; plural: string; name?: string } | undefined {
  const core = /^\/api\/(v1)(?:\/namespaces\/([^/]+))?\/([a-z]+)(?:\/([^/]+))?$/.exec(path);
  if (core) return { group: '', version: core[1]!, namespace: core[2], plural: core[3]!, name: core[4] };
  const named = /^\/apis\/([^/]+)\/([^/]+)(?:\/namespaces\/([^/]+))?\/([a-z]+)(?:\/([^/]+))?$/.exec(path);
  if (named) return { group: named[1]!, version: named[2]!, namespace: named[3], plural: named[4]!, name: named[5] };
  return undefined;
}

function matches(object: KubeObject, filter: { namespace: string | undefined; name: string | undefined; labelSelector: string | undefined; fieldSelector: string | undefined }): boolean {
  if (filter.namespace !== undefined && object.metadata.namespace !== filter.namespace) return false;
  if (filter.name !== undefined && object.metadata.name !== filter.name) return false;
  const labels = object.metadata.labels ?? {};
  for (const term of splitSelector(filter.labelSelector)) {
    const [key, op, value] = term;
    if (op === 'exists' && !(key in labels)) return false;
    if (op === '!exists' && key in labels) return false;
    if (op === '=' && labels[key] !== value) return false;
    if (op === '!=' && labels[key] === value) return false;
  }
  for (const [key, op, value] of splitSelector(filter.fieldSelector)) {
    const actual = key === 'metadata.name' ? object.metadata.name : key === 'metadata.namespace' ? object.metadata.namespace : undefined;
    if (op === '=' && actual !== value) return false;
    if (op === '!=' && actual === value) return false;
  }
  return true;
}

function splitSelector(selector: string | undefined): Array<[string, '=' | '!=' | 'exists' | '!exists', string]> {
  if (!selector) return [];
  return selector.split(',').map((term): [string, '=' | '!=' | 'exists' | '!exists', string] => {
    const t = term.trim();
    const neq = t.indexOf('!=');
    if (neq > 0) return [t.slice(0, neq), '!=', t.slice(neq + 2)];
    const eq = t.indexOf('=');
    if (eq > 0) return [t.slice(0, eq), '=', t.slice(t[eq + 1] === '=' ? eq + 2 : eq + 1)];
    return t.startsWith('!') ? [t.slice(1), '!exists', ''] : [t, 'exists', ''];
  });
}

function expiredEvent(requestedRv: number, oldestRv: number): WatchEvent {
  const [recorded] = readKubeFixtureLines('endpointslice-watch-too-old-rv-410.jsonl') as WatchEvent[];
  const event = structuredClone(recorded!);
  event.object.message = `too old resource version: ${requestedRv} (${oldestRv})`;
  return event;
}

function writeEvent(res: ServerResponse, event: WatchEvent): void {
  if (!res.writableEnded) res.write(`${JSON.stringify(event)}\n`);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string, details?: Record<string, string>): void {
  sendJson(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });
}
