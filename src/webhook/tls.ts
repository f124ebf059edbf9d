import type { SecureContextOptions } from 'node:tls';

/**
 * TLS 1.2 suites the webhook offers: ECDHE key exchange only (forward secrecy) with AEAD ciphers
 * (AES-GCM, ChaCha20-Poly1305), the "intermediate" set of Mozilla's server-side TLS guidance.
 * CBC suites (AES128-SHA) and static-RSA key exchange (AES256-GCM-SHA384) are refused. TLS 1.3
 * suites are all forward-secret AEAD and keep OpenSSL's defaults.
 */
export const WEBHOOK_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;

/**
 * Every secure context of the webhook (the first and each one after a certificate reload) is made
 * with these: setSecureContext() starts from Node's defaults, so they must be given every time.
 */
export const WEBHOOK_TLS_OPTIONS: SecureContextOptions = {
  minVersion: 'TLSv1.2',
  ciphers: [...TLS13_CIPHERS, ...WEBHOOK_TLS12_CIPHERS].join(':'),
  honorCipherOrder: true,
};
