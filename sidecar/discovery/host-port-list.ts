import { HOST_PORT_ALLOWED, parseHostPort } from '../../src/common/values.js';
import { EndpointSet, makeEndpoint } from './endpoint-set.js';

export type ListParse = { ok: true; endpoints: EndpointSet } | { ok: false; problems: string[] };

/** ["10.0.0.1:80", "[fd00::1]:80"] → an EndpointSet of ready endpoints; every bad entry is reported. */
export function parseEndpointList(value: unknown, where: string): ListParse {
  if (!Array.isArray(value)) return { ok: false, problems: [`${where} must be a JSON array of "host:port" strings, got ${describeJson(value)}`] };
  const problems: string[] = [];
  const endpoints = [];
  for (const [index, entry] of value.entries()) {
    const parsed = typeof entry === 'string' ? parseHostPort(entry) : undefined;
    if (parsed?.ok) endpoints.push(makeEndpoint(parsed.value.host, parsed.value.port));
    else problems.push(`${where}[${index}]: ${JSON.stringify(entry)} is not valid; allowed: ${HOST_PORT_ALLOWED}`);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, endpoints: EndpointSet.of(endpoints) };
}

export function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
