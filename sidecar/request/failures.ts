import { ERROR_CODE } from '../wire/h2/frame.js';
import { GRPC_STATUS } from './grpc-status.js';

/** Why a request failed inside the proxy: every protocol renders a kind from the one table below. */
export const FAILURE = {
  /** No target for the authority and no original destination to pass through to. */
  unknownTarget: 0,
  /** Route lookup itself failed (a bug or a broken source, not an unknown target). */
  routeFailed: 1,
  /** The target has no endpoint to pick. */
  noEndpoints: 2,
  /** No connection to the endpoint, after the one allowed retry. */
  connectFailure: 3,
  /** The endpoint reset the request or its connection went away under it. */
  upstreamReset: 4,
  /** The endpoint's response broke the protocol (RFC 9113 8.2-8.3, RFC 9112 framing). */
  upstreamMalformed: 5,
  /** The gRPC deadline (grpc-timeout) expired before the response ended. */
  deadline: 6,
  /** A bug of ours: this request fails, the proxy goes on. */
  internal: 7,
} as const;
export type FailureKind = (typeof FAILURE)[keyof typeof FAILURE];

/** How one failure kind reaches the app and the metrics. */
export interface FailureRule {
  readonly kind: FailureKind;
  /** The `reason` label of meshlet_proxy_errors_total. */
  readonly reason: string;
  /** The status of the proxy's own answer, when no response has begun. */
  readonly httpStatus: number;
  /** The grpc-status of a gRPC request's trailers-only answer (or trailers after a begun response). */
  readonly grpcStatus: string;
  /**
   * The HTTP/2 code the app's stream is reset with when the response had begun and its status can
   * no longer say it (HTTP/1.1 closes the connection instead).
   */
  readonly resetCode: number;
}

/** One row per FAILURE kind, in its order: status, grpc-status, reset code and metric reason. */
export const FAILURES: readonly FailureRule[] = [
  { kind: FAILURE.unknownTarget, reason: 'unknown-target', httpStatus: 502, grpcStatus: GRPC_STATUS.UNAVAILABLE, resetCode: ERROR_CODE.INTERNAL_ERROR },
  { kind: FAILURE.routeFailed, reason: 'route-failed', httpStatus: 502, grpcStatus: GRPC_STATUS.UNAVAILABLE, resetCode: ERROR_CODE.INTERNAL_ERROR },
  { kind: FAILURE.noEndpoints, reason: 'no-endpoints', httpStatus: 503, grpcStatus: GRPC_STATUS.UNAVAILABLE, resetCode: ERROR_CODE.INTERNAL_ERROR },
  { kind: FAILURE.connectFailure, reason: 'connect-failure', httpStatus: 502, grpcStatus: GRPC_STATUS.UNAVAILABLE, resetCode: ERROR_CODE.INTERNAL_ERROR },
  { kind: FAILURE.upstreamReset, reason: 'upstream-reset', httpStatus: 502, grpcStatus: GRPC_STATUS.UNAVAILABLE, resetCode: ERROR_CODE.INTERNAL_ERROR },
  { kind: FAILURE.upstreamMalformed, reason: 'upstream-malformed', httpStatus: 502, grpcStatus: GRPC_STATUS.UNAVAILABLE, resetCode: ERROR_CODE.INTERNAL_ERROR },
  // RFC 9113 8.7: CANCEL says the stream is no longer needed, which is what a deadline means.
  { kind: FAILURE.deadline, reason: 'deadline', httpStatus: 504, grpcStatus: GRPC_STATUS.DEADLINE_EXCEEDED, resetCode: ERROR_CODE.CANCEL },
  { kind: FAILURE.internal, reason: 'internal', httpStatus: 502, grpcStatus: GRPC_STATUS.INTERNAL, resetCode: ERROR_CODE.INTERNAL_ERROR },
];
