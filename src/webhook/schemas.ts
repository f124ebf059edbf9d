/**
 * JSON schemas of the AdmissionReview v1 we accept and answer, checked by fastify at the edge so
 * the route handler can trust its input. Only what we read is constrained; everything else in the
 * review (userInfo, options, ...) may take any form the API server sends.
 */
export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const ADMISSION_KIND = 'AdmissionReview';

const groupVersionKind = {
  type: 'object',
  required: ['kind'],
  properties: { group: { type: 'string' }, version: { type: 'string' }, kind: { type: 'string' } },
} as const;

export const admissionReviewRequestSchema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'request'],
  properties: {
    apiVersion: { type: 'string', const: ADMISSION_API_VERSION },
    kind: { type: 'string', const: ADMISSION_KIND },
    request: {
      type: 'object',
      required: ['uid', 'kind', 'operation'],
      properties: {
        uid: { type: 'string', minLength: 1, maxLength: 128 },
        kind: groupVersionKind,
        namespace: { type: 'string' },
        name: { type: 'string' },
        operation: { type: 'string' },
        dryRun: { type: 'boolean' },
        object: { type: ['object', 'null'] },
      },
    },
  },
} as const;

export const admissionReviewResponseSchema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'response'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    response: {
      type: 'object',
      required: ['uid', 'allowed'],
      properties: {
        uid: { type: 'string' },
        allowed: { type: 'boolean' },
        patchType: { type: 'string' },
        patch: { type: 'string' },
        warnings: { type: 'array', items: { type: 'string' } },
        status: {
          type: 'object',
          properties: { code: { type: 'integer' }, message: { type: 'string' }, reason: { type: 'string' } },
        },
      },
    },
  },
} as const;

export const errorResponseSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' }, statusCode: { type: 'integer' } },
} as const;

export interface AdmissionReviewRequest {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: typeof ADMISSION_KIND;
  request: {
    uid: string;
    kind: { group?: string; version?: string; kind: string };
    namespace?: string;
    name?: string;
    operation: string;
    dryRun?: boolean;
    object?: Record<string, unknown> | null;
  };
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  status?: { code: number; message: string; reason?: string };
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: typeof ADMISSION_KIND;
  response: AdmissionResponse;
}
