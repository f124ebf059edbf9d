/**
 * Helpers the benchmarks share: how to run the proxy, a free loopback port, HAProxy as a
 * contender, stopping a child process, and printing a table.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PROXY_ENV, PROXY_NODE_FLAGS } from '../../src/common/contract.js';

/**
 * Node flags of the benchmarked proxy: the injector's, unless BENCH_PROXY_NODE_ARGS says otherwise
 * ("--cpu-prof ..." to profile or compare flags; "" for Node's defaults).
 */
export const PROXY_NODE_ARGS: readonly string[] = (process.env.BENCH_PROXY_NODE_ARGS ?? PROXY_NODE_FLAGS.join(' ')).split(' ').filter(Boolean);

/**
 * Environment added for the benchmarked proxy: the injector's, unless BENCH_PROXY_ENV says otherwise
 * ("MALLOC_ARENA_MAX=8 ..."; "" for none). Only the proxy gets it, not HAProxy or the clients.
 */
export const PROXY_RUN_ENV: Readonly<Record<string, string>> =
  process.env.BENCH_PROXY_ENV === undefined
    ? PROXY_ENV
    : Object.fromEntries(
        process.env.BENCH_PROXY_ENV.split(' ')
          .filter(Boolean)
          .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      );

/** A proxy under test: where to send requests, its process (for CPU and RSS), how to stop it. */
export interface Contender {
  name: string;
  url: string;
  pid?: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export function isHaproxyInstalled(): boolean {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * HAProxy with one thread in front of `ports` (HTTP/2 prior knowledge on both sides, or HTTP/1.1),
 * balancing with `balance` (roundrobin, leastconn, ...); its config goes to `workDir`. Undefined
 * when HAProxy is not installed.
 */
export async function startHaproxy(ports: number[], workDir: string, options: { protocol?: 'h2' | 'h1'; balance?: string } = {}): Promise<Contender | undefined> {
  if (!isHaproxyInstalled()) return undefined;
  const protocol = options.protocol ?? 'h2';
  const balance = options.balance ?? 'roundrobin';
  const port = await freePort();
  const config = join(workDir, `haproxy-${protocol}-${balance}.cfg`);
  writeFileSync(
    config,
    [
      'global',
      '  nbthread 1',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend fe',
      `  bind 127.0.0.1:${port}${protocol === 'h2' ? ' proto h2' : ''}`,
      '  default_backend be',
      'backend be',
      `  balance ${balance}`,
      ...ports.map((p, i) => `  server s${i} 127.0.0.1:${p}${protocol === 'h2' ? ' proto h2' : ''}`),
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { name: balance === 'roundrobin' ? 'haproxy 1 thread' : `haproxy ${balance}`, url: `http://127.0.0.1:${port}`, pid: child.pid, stop: () => stopChild(child) };
}

/** SIGTERM (meshlet exits once its clients are gone), SIGKILL after 5 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export function fmt(n: number, digits: number): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** Columns padded to their widest cell; the first left-aligned, the rest right-aligned. */
export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
}
