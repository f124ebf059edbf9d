import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from which `node --import tsx` resolves. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** argv that runs the `meshlet` CLI from source (no build needed): `node ...MESHLET_ARGS proxy ...`. */
export const MESHLET_NODE_ARGS = ['--import', 'tsx', join(REPO_ROOT, 'src', 'bin.ts')];

/** argv that runs the compiled `meshlet` CLI, as the image does (needs `npm run build`). */
export const MESHLET_BUILT_ARGS = [join(REPO_ROOT, 'bin', 'meshlet.js')];

/** Starts `meshlet <args>` as a real child process from the repository root. */
export function spawnMeshlet(args: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, [...MESHLET_NODE_ARGS, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options });
}
