import { once } from 'node:events';
import type { SpawnOptions } from 'node:child_process';
import { spawnMeshlet } from './meshlet-process.js';

export interface MeshletRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `meshlet <args>` as a real process to completion (killed after timeoutMs), feeding stdin. */
export async function runMeshlet(args: string[], options: { stdin?: string; timeoutMs?: number; spawn?: SpawnOptions } = {}): Promise<MeshletRun> {
  const child = spawnMeshlet(args, { stdio: ['pipe', 'pipe', 'pipe'], ...options.spawn });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => stdout.push(c));
  child.stderr!.on('data', (c: Buffer) => stderr.push(c));
  child.stdin!.on('error', () => {});
  child.stdin!.end(options.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
}
