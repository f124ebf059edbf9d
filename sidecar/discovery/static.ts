import type { Logger } from '../../src/common/log-format.js';
import { InvalidDiscoveryInputError } from './errors.js';
import { parseEndpointList } from './host-port-list.js';
import { TargetState, type EndpointSource, type Target, type TargetHint } from './source.js';
import type { EndpointSet } from './endpoint-set.js';
import { WatchedJsonFile } from './watched-file.js';

/** The one target of standalone mode: every request, whatever it names, is balanced over it. */
export const STATIC_TARGET_ID = 'static';

/** `--upstream host:port,...` or `--upstream FILE`: resolves every hint to the one "static" target. */
export class StaticSource implements EndpointSource {
  readonly name = 'static';
  private constructor(
    private readonly target: TargetState,
    private readonly file?: WatchedJsonFile<EndpointSet>,
  ) {}

  /** An inline list; throws InvalidDiscoveryInputError naming every bad entry. */
  static fromList(entries: readonly string[]): StaticSource {
    const parsed = parseEndpointList([...entries], '--upstream');
    if (!parsed.ok) throw new InvalidDiscoveryInputError('--upstream', parsed.problems);
    const target = new TargetState(STATIC_TARGET_ID);
    target.update(parsed.endpoints);
    return new StaticSource(target);
  }

  /** A watched JSON array of "host:port"; a bad edit is logged and the last good set kept. */
  static async fromFile(path: string, log: Logger): Promise<StaticSource> {
    const target = new TargetState(STATIC_TARGET_ID);
    const file = await WatchedJsonFile.open(
      path,
      (json) => {
        const parsed = parseEndpointList(json, 'the upstream file');
        return parsed.ok ? { ok: true, value: parsed.endpoints } : parsed;
      },
      (endpoints) => {
        const diff = endpoints.diff(target.endpoints);
        target.update(endpoints);
        log.info({ service: STATIC_TARGET_ID, added: diff.added.length, removed: diff.removed.length, ready: endpoints.ready.length }, 'endpoints updated');
      },
      log,
    );
    return new StaticSource(target, file);
  }

  /** Every hint, whatever it names, gets the one target. */
  async resolve(_hint?: TargetHint): Promise<Target> {
    return this.target;
  }

  async close(): Promise<void> {
    this.file?.close();
  }
}
