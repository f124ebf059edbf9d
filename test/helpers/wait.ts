import type { EndpointSet } from '../../sidecar/discovery/endpoint-set.js';
import type { Target } from '../../sidecar/discovery/source.js';

/** Resolves when `target`'s set satisfies `check`, rejecting after `timeoutMs` with what it last saw. */
export function waitForEndpoints(target: Target, check: (set: EndpointSet) => boolean, timeoutMs = 5000, what = 'the expected endpoints'): Promise<EndpointSet> {
  if (check(target.endpoints)) return Promise.resolve(target.endpoints);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last set: [${target.endpoints.all.map((e) => `${e.key} ${e.state}`).join(', ')}]`));
    }, timeoutMs);
    const unsubscribe = target.subscribe((set) => {
      if (!check(set)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(set);
    });
  });
}

/** "a:1 ready, b:2 draining" style summary, sorted: easy to compare with t.same. */
export function describeSet(set: EndpointSet): string[] {
  return set.all.map((e) => `${e.key} ${e.state}`);
}

/** Polls `check` every 10 ms until true, bounded by `timeoutMs`. */
export async function waitUntil(check: () => boolean, timeoutMs = 5000, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `promise`, or a rejection naming `what` once `timeoutMs` has passed: bounds a wait on an event. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
