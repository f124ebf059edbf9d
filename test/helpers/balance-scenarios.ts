import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/**
 * The balance-quality scenarios of issue 11, shared by test/sidecar/balance/scenarios.test.ts
 * (asserts the default policy's goals through the in-process proxy) and
 * test/bench/balance.bench.ts (prints every policy and HAProxy side by side): real HTTP/1.1 and
 * HTTP/2 backends on loopback whose every answer the scenario decides, a client that records
 * which backend answered each request, and per scenario the figure and the goal.
 */

export type ScenarioProtocol = 'h1' | 'h2';

/** How a backend answers one request. */
export interface ScenarioAnswer {
  /** Wait this long before answering. */
  delayMs: number;
  /** HTTP/2 only: answer headers at once and end the stream after `delayMs` (a server stream), instead of answering after it. */
  isStream?: boolean;
  status?: number;
  /** HTTP/2 only: answer as gRPC with this grpc-status in the trailers. */
  grpcStatus?: number;
}

/** State shared by one run's backends. */
export interface RunState {
  /** Requests answered so far, over every backend. */
  served: number;
}

export interface ScenarioBackend {
  name: string;
  port: number;
  address: string;
  /** Requests this backend received. */
  requests: number;
  close(): Promise<void>;
}

/**
 * A backend on 127.0.0.1:0 answering as `name` (body and x-backend header); `answer(nth)` decides
 * each answer, nth counting this backend's requests from 0.
 */
export async function startScenarioBackend(protocol: ScenarioProtocol, name: string, answer: (nth: number) => ScenarioAnswer): Promise<ScenarioBackend> {
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    if (ms <= 0) return fn();
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  const body = Buffer.from(name);
  const state = { requests: 0 };
  let close: () => Promise<void>;
  let port: number;
  if (protocol === 'h1') {
    const server = http.createServer({ keepAlive: true }, (req, res) => {
      const a = answer(state.requests++);
      req.resume();
      req.on('end', () =>
        later(a.delayMs, () => {
          res.writeHead(a.status ?? 200, { 'x-backend': name, 'content-length': body.length });
          res.end(body);
        }),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    close = async () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    };
  } else {
    const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
    server.on('stream', (stream) => {
      const a = answer(state.requests++);
      stream.on('error', () => undefined);
      stream.resume();
      stream.on('end', () => {
        const respond = () => {
          if (stream.destroyed) return;
          const grpc = a.grpcStatus !== undefined;
          stream.respond({ ':status': a.status ?? 200, 'x-backend': name, ...(grpc ? { 'content-type': 'application/grpc' } : {}) }, { waitForTrailers: grpc });
          if (grpc) stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(a.grpcStatus) }));
          stream.write(body);
        };
        const end = () => {
          if (!stream.destroyed) stream.end();
        };
        if (a.isStream) {
          respond();
          later(a.delayMs, end);
        } else {
          later(a.delayMs, () => {
            respond();
            end();
          });
        }
      });
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => {
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    close = async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    };
  }
  return Object.assign(state, { name, port, address: `127.0.0.1:${port}`, close: () => close() });
}

export interface LoadOptions {
  protocol: ScenarioProtocol;
  port: number;
  requests: number;
  /** Requests in flight at most (HTTP/1.1: keep-alive connections). */
  concurrency: number;
  /** Start requests at this rate instead of as fast as they finish (still at most `concurrency` in flight). */
  ratePerSecond?: number;
  /** Called before request `index` is sent, when it returns a promise the load waits for it. */
  before?: (index: number) => Promise<void> | void;
}

export interface LoadResult {
  /** The backend that answered each request, by request index ('' when it failed in the proxy). */
  backends: string[];
  statuses: number[];
  latenciesMs: number[];
  errors: number;
}

/** Sends `requests` requests through the proxy on `port` and records who answered each. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { backends: new Array<string>(o.requests).fill(''), statuses: new Array<number>(o.requests).fill(0), latenciesMs: [], errors: 0 };
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const session = o.protocol === 'h2' ? http2.connect(`http://127.0.0.1:${o.port}`) : undefined;
  session?.on('error', () => undefined);
  if (session) await once(session, 'connect');
  const one = (index: number): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const done = (status: number, backend: string) => {
        result.statuses[index] = status;
        result.backends[index] = backend;
        result.latenciesMs.push(performance.now() - started);
        resolve();
      };
      const failed = () => {
        result.errors++;
        resolve();
      };
      if (session) {
        const req = session.request({ ':method': 'POST', ':path': `/r/${index}`, 'content-type': 'application/grpc', te: 'trailers' });
        let status = 0;
        let backend = '';
        req.on('response', (h) => {
          status = Number(h[':status']);
          backend = String(h['x-backend'] ?? '');
        });
        req.on('error', failed);
        req.resume();
        req.on('end', () => done(status, backend));
        req.end();
      } else {
        const req = http.request({ host: '127.0.0.1', port: o.port, path: `/r/${index}`, agent }, (res) => {
          res.resume();
          res.on('end', () => done(res.statusCode ?? 0, String(res.headers['x-backend'] ?? '')));
          res.on('error', failed);
        });
        req.on('error', failed);
        req.end();
      }
    });
  let next = 0;
  const intervalMs = o.ratePerSecond ? 1000 / o.ratePerSecond : 0;
  const startedAt = performance.now();
  const worker = async () => {
    while (next < o.requests) {
      const index = next++;
      await o.before?.(index);
      if (intervalMs > 0) {
        const due = startedAt + index * intervalMs - performance.now();
        if (due > 1) await new Promise((r) => setTimeout(r, due));
      }
      await one(index);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, worker));
  } finally {
    agent.destroy();
    session?.close();
  }
  return result;
}

/** What a scenario reports: its figure beside its goal, and whether the goal was met. */
export interface ScenarioVerdict {
  figure: string;
  goal: string;
  met: boolean;
}

export interface BalanceScenario {
  name: string;
  protocol: ScenarioProtocol;
  endpoints: number;
  requests: number;
  concurrency: number;
  ratePerSecond?: number;
  /** Endpoint index `endpoint` is added to the target just before request `beforeRequest`. */
  join?: { endpoint: number; beforeRequest: number };
  /** Requests before this index warm up (JIT, connections, first estimates) and are not judged. */
  warmup?: number;
  /**
   * The figure depends on measured latency, so on a loaded machine (where the client, backends and
   * proxy stall together) it is noisy: the scenario test judges it against this looser limit.
   */
  sharedMachineLimit?: number;
  /** Endpoint `index` answering its `nth` request. */
  answer(index: number, nth: number, run: RunState): ScenarioAnswer;
  /** `limit` replaces the goal's limit (the scenario test passes sharedMachineLimit). */
  judge(result: LoadResult, names: string[], limit?: number): ScenarioVerdict;
}

const FAST: ScenarioAnswer = { delayMs: 0 };

/** Requests answered by `name` among requests [from, to). */
export function countIn(result: LoadResult, name: string, from = 0, to = result.backends.length): number {
  let n = 0;
  for (let i = from; i < to && i < result.backends.length; i++) if (result.backends[i] === name) n++;
  return n;
}

/** The smallest endpoint's count as a fraction of a fair share. */
export function smallestShareOfFair(result: LoadResult, names: string[]): number {
  const total = result.backends.filter((b) => b !== '').length;
  return Math.min(...names.map((n) => countIn(result, n))) / (total / names.length);
}

/** Every endpoint at least `goal` of a fair share (or the limit given). */
function everyAtLeast(goal: number) {
  return (result: LoadResult, names: string[], limit = goal): ScenarioVerdict => {
    const smallest = smallestShareOfFair(result, names);
    return { figure: `smallest ${(smallest * 100).toFixed(0)}% of fair`, goal: `each >= ${limit * 100}% of fair`, met: smallest >= limit };
  };
}

/** The last endpoint's share of the requests after `warmup`, at most `goal` (or the limit given). */
function shareOfLast(goal: number, warmup = 0) {
  return (result: LoadResult, names: string[], limit = goal): ScenarioVerdict => {
    const share = countIn(result, names[names.length - 1]!, warmup) / (result.backends.length - warmup);
    const bound = limit;
    return { figure: `it got ${(share * 100).toFixed(2)}%`, goal: `<= ${+(bound * 100).toFixed(2)}%${warmup > 0 ? ` after ${warmup} warm-up` : ''}`, met: share <= bound };
  };
}

/** The scenarios, in the order the issue lists them. */
export const BALANCE_SCENARIOS: BalanceScenario[] = [
  {
    name: 'equal, 300 sequential',
    protocol: 'h1',
    endpoints: 3,
    requests: 300,
    concurrency: 1,
    answer: () => FAST,
    judge: (result, names) => {
      const counts = names.map((n) => countIn(result, n));
      const worst = Math.max(...counts.map((c) => Math.abs(c - 100)));
      return { figure: counts.join('/'), goal: 'each 100 +-15 (33% +-5)', met: worst <= 15 };
    },
  },
  {
    name: 'equal, 50 concurrent streams',
    protocol: 'h2',
    endpoints: 4,
    requests: 2000,
    concurrency: 50,
    sharedMachineLimit: 0.5,
    answer: () => ({ delayMs: 20, isStream: true }),
    judge: everyAtLeast(0.8),
  },
  ...(['h1', 'h2'] as const).map(
    (protocol): BalanceScenario => ({
      name: `one 503 first, then 400 (${protocol === 'h1' ? 'HTTP/1.1 sequential' : 'h2c, 8 concurrent'})`,
      protocol,
      endpoints: 4,
      requests: 401,
      concurrency: protocol === 'h1' ? 1 : 8,
      answer: (_i, _nth, run) => ({ delayMs: 0, status: run.served++ === 0 ? 503 : 200 }),
      judge: (result) => {
        const failed = result.backends[0]!;
        const after = countIn(result, failed, 1);
        return { figure: `it got ${after} of 400`, goal: '>= 60 (60% of fair)', met: after >= 60 };
      },
    }),
  ),
  {
    name: 'one pauses 200 ms once',
    protocol: 'h1',
    endpoints: 3,
    requests: 300,
    concurrency: 1,
    answer: (index, nth) => (index === 1 && nth === 5 ? { delayMs: 200 } : FAST),
    judge: everyAtLeast(0.8),
  },
  {
    name: 'one 20 ms slower, saturated',
    protocol: 'h2',
    endpoints: 4,
    requests: 6000,
    concurrency: 50,
    warmup: 1000,
    sharedMachineLimit: 0.1,
    answer: (index) => ({ delayMs: index === 3 ? 20 : 0 }),
    judge: shareOfLast(0.02, 1000),
  },
  {
    name: 'one 20 ms slower, 1,000 req/s',
    protocol: 'h2',
    endpoints: 4,
    requests: 4000,
    concurrency: 50,
    ratePerSecond: 1000,
    warmup: 1000,
    sharedMachineLimit: 0.1,
    answer: (index) => ({ delayMs: index === 3 ? 20 : 0 }),
    judge: shareOfLast(0.01, 1000),
  },
  ...([
    ['503, HTTP/1.1 sequential', 'h1', { delayMs: 0, status: 503 }],
    ['429, HTTP/1.1 sequential', 'h1', { delayMs: 0, status: 429 }],
    ['gRPC UNAVAILABLE, 8 concurrent', 'h2', { delayMs: 0, grpcStatus: 14 }],
    ['gRPC RESOURCE_EXHAUSTED, 8 concurrent', 'h2', { delayMs: 0, grpcStatus: 8 }],
  ] as const).map(
    ([what, protocol, failure]): BalanceScenario => ({
      name: `one failing fast (${what})`,
      protocol,
      endpoints: 4,
      requests: 2000,
      concurrency: protocol === 'h1' ? 1 : 8,
      answer: (index) => (index === 3 ? failure : FAST),
      judge: shareOfLast(0.05),
    }),
  ),
  {
    name: 'cold endpoint joins (first 50 +30 ms)',
    protocol: 'h1',
    endpoints: 4,
    requests: 4000,
    concurrency: 1,
    join: { endpoint: 3, beforeRequest: 300 },
    answer: (index, nth) => ({ delayMs: index === 3 && nth < 50 ? 30 : 0 }),
    judge: (result, names) => {
      const cold = names[3]!;
      const first = result.backends.indexOf(cold, 300);
      const early = countIn(result, cold, 300, 700);
      const late = countIn(result, cold, result.backends.length - 1000);
      return {
        figure: `first at +${first - 300}; ${early} of next 400; ${late} of last 1000`,
        goal: 'first at +0; < 50 while cold; >= 200 of last 1000',
        met: first === 300 && early < 50 && late >= 200,
      };
    },
  },
  {
    name: '100 concurrent 200 ms streams',
    protocol: 'h2',
    endpoints: 4,
    requests: 100,
    concurrency: 100,
    answer: () => ({ delayMs: 200, isStream: true }),
    judge: (result, names) => {
      const counts = names.map((n) => countIn(result, n));
      return { figure: counts.join('/'), goal: 'each 25 +-8', met: counts.every((c) => c >= 17 && c <= 33) };
    },
  },
];

/** Starts the scenario's backends (fresh: counters and behaviour start over). */
export async function startScenarioBackends(s: BalanceScenario): Promise<ScenarioBackend[]> {
  const run: RunState = { served: 0 };
  return Promise.all(Array.from({ length: s.endpoints }, (_, i) => startScenarioBackend(s.protocol, `e${i}`, (nth) => s.answer(i, nth, run))));
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
