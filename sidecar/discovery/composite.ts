import type { EndpointSource, Target, TargetHint } from './source.js';

/** Asks each source in order; the first that knows the hint answers. */
export class CompositeSource implements EndpointSource {
  readonly name: string;

  constructor(private readonly sources: readonly EndpointSource[]) {
    this.name = sources.map((s) => s.name).join('+') || 'none';
  }

  async resolve(hint: TargetHint): Promise<Target | undefined> {
    for (const source of this.sources) {
      const target = await source.resolve(hint);
      if (target) return target;
    }
    return undefined;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.sources.map((s) => s.close()));
  }
}
