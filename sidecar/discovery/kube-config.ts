import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { isIPv6 } from 'node:net';
import { MissingPrerequisiteError } from '../../src/common/errors.js';
import type { KubeEndpoint } from './kube-client.js';

/** Where Kubernetes mounts the default service-account token, CA and namespace. */
export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** What a kubeconfig user may use with the proxy's own client. */
const SUPPORTED_USER_FIELDS = 'token, tokenFile, client-certificate(-data) with client-key(-data)';

export interface KubeCredentialsOptions {
  kubeconfig?: string;
  inCluster: boolean;
  tokenFile?: string;
}

/**
 * Where the API is and how to authenticate: a kubeconfig file outside a cluster (its current context;
 * the fields in SUPPORTED_USER_FIELDS, a CA file or data, insecure-skip-tls-verify, tls-server-name),
 * or in a Pod the service-account token (re-read whenever kubelet rotates it) and CA, at
 * KUBERNETES_SERVICE_HOST/PORT.
 */
export async function loadKubeConfig(options: KubeCredentialsOptions, env: NodeJS.ProcessEnv = process.env): Promise<KubeEndpoint> {
  if (options.kubeconfig) return fromKubeconfigFile(options.kubeconfig);
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new MissingPrerequisiteError('in-cluster discovery needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set by Kubernetes in every Pod); outside a cluster pass --kubeconfig FILE');
  }
  const tokenFile = options.tokenFile ?? join(DEFAULT_SERVICE_ACCOUNT_DIR, 'token');
  const besideToken = join(dirname(tokenFile), 'ca.crt');
  const caFile = existsSync(besideToken) ? besideToken : join(DEFAULT_SERVICE_ACCOUNT_DIR, 'ca.crt');
  const scheme = port === '80' || port === '8080' ? 'http' : 'https';
  return {
    server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    ...(existsSync(caFile) ? { caPem: readFileSync(caFile) } : {}),
    tokenFile,
  };
}

type Named<K extends string> = { name?: unknown } & { [key in K]?: Record<string, unknown> };

/** The YAML parser is loaded only for a kubeconfig: a proxy in a Pod never needs it (about 2 MiB of RSS). */
async function fromKubeconfigFile(file: string): Promise<KubeEndpoint> {
  const fail = (problem: string, cause?: unknown): never => {
    throw new MissingPrerequisiteError(`--kubeconfig ${file}: ${problem}`, cause === undefined ? undefined : { cause });
  };
  let doc: {
    'current-context'?: unknown;
    contexts?: Array<Named<'context'>>;
    clusters?: Array<Named<'cluster'>>;
    users?: Array<Named<'user'>>;
  };
  try {
    const { load } = await import('js-yaml');
    doc = (load(readFileSync(file, 'utf8')) ?? {}) as typeof doc;
  } catch (err) {
    return fail(`cannot be loaded (${(err as Error).message})`, err);
  }
  const base = dirname(file);
  const contextName = doc['current-context'];
  const context = (doc.contexts ?? []).find((c) => c.name === contextName)?.context;
  if (!context) return fail(`has no current context with a cluster (current-context: ${JSON.stringify(contextName ?? null)})`);
  const cluster = (doc.clusters ?? []).find((c) => c.name === context.cluster)?.cluster;
  if (!cluster || typeof cluster.server !== 'string') return fail(`has no current context with a cluster (cluster ${JSON.stringify(context.cluster ?? null)} with a server)`);
  if (cluster['proxy-url'] !== undefined) return fail(`cluster ${JSON.stringify(context.cluster)} uses proxy-url, which meshlet proxy does not support; allowed: server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name`);
  const user = (doc.users ?? []).find((u) => u.name === context.user)?.user ?? {};
  const unsupported = Object.keys(user).filter((key) => !['token', 'tokenFile', 'client-certificate', 'client-certificate-data', 'client-key', 'client-key-data'].includes(key));
  if (unsupported.length > 0) return fail(`user ${JSON.stringify(context.user)} uses ${unsupported.join(', ')}, which meshlet proxy does not support; allowed: ${SUPPORTED_USER_FIELDS}`);
  const pem = (dataKey: string, fileKey: string, from: Record<string, unknown>): Buffer | undefined => {
    const data = from[dataKey];
    if (typeof data === 'string') return Buffer.from(data, 'base64');
    const path = from[fileKey];
    if (typeof path !== 'string') return undefined;
    try {
      return readFileSync(isAbsolute(path) ? path : join(base, path));
    } catch (err) {
      return fail(`${fileKey} ${path} cannot be read (${(err as Error).message})`, err);
    }
  };
  const caPem = pem('certificate-authority-data', 'certificate-authority', cluster);
  const certPem = pem('client-certificate-data', 'client-certificate', user);
  const keyPem = pem('client-key-data', 'client-key', user);
  if ((certPem === undefined) !== (keyPem === undefined)) return fail(`user ${JSON.stringify(context.user)} has a client certificate without its key (or a key without its certificate); allowed: both or neither`);
  const tokenFile = typeof user.tokenFile === 'string' ? (isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile)) : undefined;
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ...(caPem ? { caPem } : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(typeof cluster['tls-server-name'] === 'string' ? { tlsServerName: cluster['tls-server-name'] } : {}),
    ...(certPem && keyPem ? { certPem, keyPem } : {}),
    ...(typeof user.token === 'string' ? { token: user.token } : {}),
    ...(tokenFile ? { tokenFile } : {}),
  };
}
