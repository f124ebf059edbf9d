/**
 * One error class per failure, each with a stable code that logs, metrics and tests can match on.
 * A message names what was wrong, the offending value, and what is allowed.
 */
export class MeshletError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A command-line flag or MESHLET_* environment variable has a value we cannot use. */
export class InvalidConfigError extends MeshletError {
  constructor(readonly problems: readonly string[]) {
    super('MESHLET_INVALID_CONFIG', problems.join('\n'));
  }
}

/** A `meshlet.dev/*` annotation on an opted-in Pod has a value we cannot use. */
export class InvalidAnnotationError extends MeshletError {
  constructor(
    readonly key: string,
    readonly value: string,
    allowed: string,
  ) {
    super('MESHLET_INVALID_ANNOTATION', `${key}: "${value}" is not valid; allowed: ${allowed}`);
  }
}

/** The body sent to the webhook is not an AdmissionReview we can answer. */
export class InvalidReviewError extends MeshletError {
  constructor(message: string) {
    super('MESHLET_INVALID_REVIEW', message);
  }
}

/** A target has no endpoint that can take a request right now. */
export class NoEndpointsError extends MeshletError {
  constructor(readonly target: string, reason: string) {
    super('MESHLET_NO_ENDPOINTS', `no endpoint available for ${target}: ${reason}`);
  }
}

/** The machine lacks something a command needs (a capability, a tool, a kernel feature). */
export class MissingPrerequisiteError extends MeshletError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MESHLET_MISSING_PREREQUISITE', message, options);
  }
}
