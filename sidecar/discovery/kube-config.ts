import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isIPv6 } from 'node:net';
import { KubeConfig, type User } from '@kubernetes/client-node';

type Authenticator = Parameters<KubeConfig['addAuthenticator']>[0];
import { MissingPrerequisiteError } from '../../src/common/errors.js';

/** Where Kubernetes mounts the default service-account token, CA and namespace. */
export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeCredentialsOptions {
  kubeconfig?: string;
  inCluster: boolean;
  tokenFile?: string;
}

/**
 * Credentials for the API: a kubeconfig file outside a cluster, or in a Pod the projected token of
 * the proxy's service account, re-read whenever kubelet rotates it (see ProjectedTokenAuth).
 */
export function loadKubeConfig(options: KubeCredentialsOptions, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (options.kubeconfig) {
    try {
      kc.loadFromFile(options.kubeconfig);
    } catch (err) {
      throw new MissingPrerequisiteError(`--kubeconfig ${options.kubeconfig}: cannot be loaded (${(err as Error).message})`, { cause: err });
    }
    if (!kc.getCurrentCluster()) throw new MissingPrerequisiteError(`--kubeconfig ${options.kubeconfig}: has no current context with a cluster`);
    return kc;
  }
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new MissingPrerequisiteError('in-cluster discovery needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set by Kubernetes in every Pod); outside a cluster pass --kubeconfig FILE');
  }
  const tokenFile = options.tokenFile ?? join(DEFAULT_SERVICE_ACCOUNT_DIR, 'token');
  const besideToken = join(dirname(tokenFile), 'ca.crt');
  const caFile = existsSync(besideToken) ? besideToken : join(DEFAULT_SERVICE_ACCOUNT_DIR, 'ca.crt');
  const scheme = port === '80' || port === '8080' ? 'http' : 'https';
  kc.addAuthenticator(new ProjectedTokenAuth());
  kc.loadFromClusterAndUser(
    { name: 'in-cluster', server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile, skipTLSVerify: false },
    { name: 'meshlet-proxy', authProvider: { name: PROJECTED_TOKEN_PROVIDER, config: { path: tokenFile } } },
  );
  return kc;
}

/** Our auth provider; its config key is `path`, since the client's own FileAuth claims any `tokenFile`. */
const PROJECTED_TOKEN_PROVIDER = 'meshlet-projected-token';

/**
 * Bearer token from a projected service-account token file, re-read as soon as the file changes
 * (kubelet rotates it well before expiry by swapping a symlink), so no request goes out with an
 * expired token. A stat per API request is cheap: the proxy makes few (lists and watches).
 */
class ProjectedTokenAuth implements Authenticator {
  private token = '';
  private readAt = '';

  isAuthProvider(user: User): boolean {
    return user.authProvider?.name === PROJECTED_TOKEN_PROVIDER;
  }

  async applyAuthentication(user: User, opts: Parameters<Authenticator['applyAuthentication']>[1]): Promise<void> {
    const tokenFile = (user.authProvider?.config as { path?: string } | undefined)?.path;
    if (!tokenFile) return;
    try {
      const stats = statSync(tokenFile);
      const version = `${stats.ino}:${stats.mtimeMs}:${stats.size}`;
      if (version !== this.readAt) {
        this.token = readFileSync(tokenFile, 'utf8').trim();
        this.readAt = version;
      }
    } catch {
      // Unreadable for a moment (mid-rotation): the last token read is the best we have.
    }
    if (!this.token) return;
    opts.headers ??= {};
    (opts.headers as Record<string, string>).Authorization = `Bearer ${this.token}`;
  }
}
