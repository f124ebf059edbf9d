import { isIP } from 'node:net';
import type { CommandSpec, ParsedCommand } from '../common/config.js';
import { collectProblems } from '../common/config.js';
import { DEFAULT_CERT_VALIDITY_DAYS, generateCertificates, writeCertificates } from './forge.js';

export const command: CommandSpec = {
  name: 'certs',
  summary: 'Make a CA and a serving certificate for the webhook (ca.crt, tls.crt, tls.key; the key is written 0600)',
  usage: '--out DIR --dns NAME [--dns NAME ...]',
  flags: {
    out: { type: 'string', placeholder: 'DIR', description: 'Directory to write ca.crt, tls.crt and tls.key into (created 0700)' },
    dns: {
      type: 'string',
      multiple: true,
      placeholder: 'NAME',
      description: 'DNS name (or IP address) the certificate is valid for, e.g. meshlet-webhook.meshlet-system.svc',
    },
    days: { type: 'string', placeholder: 'N', description: 'Days the serving certificate is valid', default: String(DEFAULT_CERT_VALIDITY_DAYS) },
  },
  details: `The CA's private key is not kept: to rotate, run this again and let 'meshlet webhook
--ca-bundle-for NAME' publish the new CA. Never commit the files (certs/README.md).`,
};

const DNS_NAME_PATTERN = /^(?=.{1,253}$)(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export async function run(parsed: ParsedCommand): Promise<number> {
  const out = parsed.values['out'];
  const names = (parsed.values['dns'] as string[] | undefined) ?? [];
  const daysText = String(parsed.values['days']);
  collectProblems([
    () => (typeof out === 'string' && out !== '' ? undefined : '--out DIR is required'),
    () => (names.length > 0 ? undefined : '--dns NAME is required at least once, e.g. --dns meshlet-webhook.meshlet-system.svc'),
    ...names.map((name) => () =>
      isIP(name) || DNS_NAME_PATTERN.test(name) ? undefined : `--dns: "${name}" is not valid; allowed: a lower-case DNS name or an IP address`,
    ),
    () => (/^\d{1,5}$/.test(daysText) && Number(daysText) >= 1 ? undefined : `--days: "${daysText}" is not valid; allowed: a whole number of days, at least 1`),
  ]);
  const bundle = generateCertificates({ names, validityDays: Number(daysText) });
  const paths = await writeCertificates(out as string, bundle);
  process.stdout.write(`wrote ${paths.ca}, ${paths.cert} and ${paths.key} (valid ${daysText} days for ${names.join(', ')})\n`);
  return 0;
}
