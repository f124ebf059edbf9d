import { isIP } from 'node:net';
import { parsePort } from '../../src/common/values.js';

/** A Service named by a request: `name` in `namespace`. */
export interface ServiceName {
  readonly name: string;
  readonly namespace: string;
}

export interface AuthorityParts {
  /** Lowercased, without a trailing dot or IPv6 brackets. */
  readonly host: string;
  readonly port: number | undefined;
}

/** The port an HTTP authority without one means. */
export const DEFAULT_HTTP_PORT = 80;

const SERVICE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** "web:8080", "Web.Demo.", "[fd00::1]:80", "10.0.0.1" → host and optional port; undefined when malformed. */
export function splitAuthority(authority: string): AuthorityParts | undefined {
  const text = authority.trim();
  if (text.length === 0) return undefined;
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return undefined;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    portText = rest === '' ? undefined : rest.slice(1);
    if (isIP(host) !== 6) return undefined;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0 && text.indexOf(':') !== colon) {
      if (isIP(text) !== 6) return undefined;
      return { host: text.toLowerCase(), port: undefined };
    }
    host = colon >= 0 ? text.slice(0, colon) : text;
    portText = colon >= 0 ? text.slice(colon + 1) : undefined;
  }
  host = host.toLowerCase().replace(/\.$/, '');
  if (host.length === 0) return undefined;
  if (portText === undefined) return { host, port: undefined };
  const port = parsePort(portText);
  return port.ok ? { host, port: port.value } : undefined;
}

/**
 * The Service a host names, the way a Pod's DNS search path would resolve it: `name` (in the Pod's own
 * namespace), `name.ns`, `name.ns.svc`, `name.ns.svc.<cluster-domain>`. Anything else (an IP, an
 * external name, another cluster domain) is undefined.
 */
export function parseServiceHost(host: string, ownNamespace: string, clusterDomain: string): ServiceName | undefined {
  if (isIP(host) !== 0) return undefined;
  const labels = host.toLowerCase().replace(/\.$/, '').split('.');
  const [name, namespace = ownNamespace, svc, ...domain] = labels;
  if (name === undefined || !SERVICE_NAME.test(name) || !NAMESPACE_NAME.test(namespace)) return undefined;
  if (labels.length <= 2) return { name, namespace };
  if (svc !== 'svc') return undefined;
  if (domain.length === 0 || domain.join('.') === clusterDomain.toLowerCase().replace(/\.$/, '')) return { name, namespace };
  return undefined;
}

/** Every way an authority could write this Service and port, most specific first (for lookups by key). */
export function serviceAuthorityForms(service: ServiceName, port: number, ownNamespace: string, clusterDomain: string): string[] {
  const { name, namespace } = service;
  const forms = [`${name}.${namespace}.svc.${clusterDomain}:${port}`, `${name}.${namespace}.svc:${port}`, `${name}.${namespace}:${port}`];
  if (namespace === ownNamespace) forms.push(`${name}:${port}`);
  return forms;
}
