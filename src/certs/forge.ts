import { randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';

/** File names `meshlet certs` writes (the layout of a kubernetes.io/tls Secret plus ca.crt). */
export const CERT_FILES = { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' } as const;

export const DEFAULT_CERT_VALIDITY_DAYS = 365;
export const DEFAULT_CA_VALIDITY_DAYS = 3650;
const RSA_KEY_BITS = 2048;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Tolerates clocks a little behind ours. */
const NOT_BEFORE_SKEW_MS = 5 * 60 * 1000;

export interface CertificateRequest {
  /** DNS names and IP addresses the serving certificate is valid for; the first is its common name. */
  names: readonly string[];
  validityDays?: number;
  caValidityDays?: number;
  now?: Date;
}

export interface CertificateBundle {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

/**
 * A fresh CA and a serving certificate signed by it. The CA's private key is discarded: rotating
 * means running this again and publishing the new CA (the webhook's --ca-bundle-for does that).
 */
export function generateCertificates(request: CertificateRequest): CertificateBundle {
  if (request.names.length === 0) throw new Error('at least one DNS name is required');
  const now = request.now ?? new Date();
  const caKeys = forge.pki.rsa.generateKeyPair({ bits: RSA_KEY_BITS });
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = caKeys.publicKey;
  caCert.serialNumber = randomSerial();
  setValidity(caCert, now, request.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS);
  const caSubject = [{ name: 'commonName', value: `meshlet webhook CA ${now.toISOString().slice(0, 10)}` }, { name: 'organizationName', value: 'meshlet' }];
  caCert.setSubject(caSubject);
  caCert.setIssuer(caSubject);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(caKeys.privateKey, forge.md.sha256.create());

  const keys = forge.pki.rsa.generateKeyPair({ bits: RSA_KEY_BITS });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerial();
  setValidity(cert, now, request.validityDays ?? DEFAULT_CERT_VALIDITY_DAYS);
  cert.setSubject([{ name: 'commonName', value: request.names[0]! }]);
  cert.setIssuer(caSubject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: request.names.map(altName) },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKeys.privateKey, forge.md.sha256.create());

  return {
    caCertPem: forge.pki.certificateToPem(caCert),
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  };
}

/** Writes ca.crt, tls.crt (0644) and tls.key (0600) into dir, creating it (0700) if needed. */
export async function writeCertificates(dir: string, bundle: CertificateBundle): Promise<{ ca: string; cert: string; key: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = { ca: join(dir, CERT_FILES.ca), cert: join(dir, CERT_FILES.cert), key: join(dir, CERT_FILES.key) };
  await writeFile(paths.key, bundle.keyPem, { mode: 0o600 });
  // writeFile's mode applies only to new files; an existing key file is tightened too.
  await chmod(paths.key, 0o600);
  await writeFile(paths.cert, bundle.certPem, { mode: 0o644 });
  await writeFile(paths.ca, bundle.caCertPem, { mode: 0o644 });
  return paths;
}

function altName(name: string): { type: 2; value: string } | { type: 7; ip: string } {
  return isIP(name) ? { type: 7, ip: name } : { type: 2, value: name };
}

function setValidity(cert: forge.pki.Certificate, now: Date, days: number): void {
  cert.validity.notBefore = new Date(now.getTime() - NOT_BEFORE_SKEW_MS);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY_MS);
}

/** A positive 128-bit serial (high bit cleared so DER does not read it as negative). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}
