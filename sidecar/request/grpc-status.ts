/** gRPC status codes the proxy itself produces or treats as endpoint failures. */
export const GRPC_STATUS = {
  OK: '0',
  DEADLINE_EXCEEDED: '4',
  RESOURCE_EXHAUSTED: '8',
  INTERNAL: '13',
  UNAVAILABLE: '14',
} as const;

/**
 * Percent-encodes a grpc-message as the gRPC HTTP/2 spec asks: UTF-8 bytes outside printable ASCII
 * (0x20-0x7E), and '%' itself, become %XX; everything else stays readable.
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const UNITS_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };

/** "250m" → 250, "5S" → 5000; undefined when absent or malformed (then the proxy adds no deadline). */
export function parseGrpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * UNITS_MS[match[2]!]!;
}

/**
 * Whether a response says the endpoint (not the app's request) is in trouble: a gateway failure,
 * overload (503, or 429 Too Many Requests: HTTP's RESOURCE_EXHAUSTED, as gRPC maps them), or the
 * gRPC statuses that mean the same.
 */
export function isEndpointFailure(status: number, grpcStatus: string): boolean {
  return status === 502 || status === 503 || status === 504 || status === 429 || grpcStatus === GRPC_STATUS.UNAVAILABLE || grpcStatus === GRPC_STATUS.RESOURCE_EXHAUSTED;
}
