import { MeshletError } from '../../src/common/errors.js';

/** A discovery input (an --upstream list, an --upstream or --services file) cannot be used. */
export class InvalidDiscoveryInputError extends MeshletError {
  constructor(
    readonly input: string,
    readonly problems: readonly string[],
    options?: { cause?: unknown },
  ) {
    super('MESHLET_INVALID_DISCOVERY_INPUT', `${input}: ${problems.join('; ')}`, options);
  }
}
