import { unaryCall, type EchoClientInstance } from '../test/helpers/grpc-echo.js';

/** What the client saw between two moments: requests and latency per backend, plus overall latency. */
export interface LoadWindow {
  requests: Map<string, number>;
  latencySumMs: Map<string, number>;
  /** Every call's latency in ms, in completion order (bounded by the demo's short acts). */
  latenciesMs: number[];
  errors: number;
}

const MAX_SAMPLES = 200_000;

/**
 * An unmodified gRPC client application: `concurrency` loops, each sending one unary call after
 * another over the same channel, counting which backend answered (every reply names it).
 */
export class LoadGenerator {
  private window: LoadWindow = emptyWindow();
  private running = false;
  private loops: Promise<void>[] = [];
  /** When each backend answered first (ms since epoch). */
  readonly firstSeen = new Map<string, number>();

  constructor(
    private readonly client: EchoClientInstance,
    private readonly concurrency: number,
  ) {}

  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.concurrency }, (_, i) => this.loop(i));
  }

  /** Returns what was seen since the last take and starts a new window. */
  take(): LoadWindow {
    const seen = this.window;
    this.window = emptyWindow();
    return seen;
  }

  /** The current window, without resetting it. */
  peek(): LoadWindow {
    return this.window;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(index: number): Promise<void> {
    let n = 0;
    while (this.running) {
      const started = performance.now();
      try {
        const reply = await unaryCall(this.client, { text: `loop ${index} call ${n++}` }, { deadline: new Date(Date.now() + 5000) });
        const ms = performance.now() - started;
        const w = this.window;
        w.requests.set(reply.backend, (w.requests.get(reply.backend) ?? 0) + 1);
        w.latencySumMs.set(reply.backend, (w.latencySumMs.get(reply.backend) ?? 0) + ms);
        if (w.latenciesMs.length < MAX_SAMPLES) w.latenciesMs.push(ms);
        if (!this.firstSeen.has(reply.backend)) this.firstSeen.set(reply.backend, Date.now());
      } catch {
        this.window.errors++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
}

function emptyWindow(): LoadWindow {
  return { requests: new Map(), latencySumMs: new Map(), latenciesMs: [], errors: 0 };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}
