/**
 * `npm run bench`: runs every test/bench/*.bench.ts in turn, each as its own process (so one's
 * memory and CPU never colour another's figures), and prints their output. Asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .sort();
let failed = 0;
for (const file of benches) {
  console.log(`\n=== ${file} ===`);
  const started = Date.now();
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(here, file)], { stdio: 'inherit', cwd: join(here, '..', '..') });
  if (result.status !== 0) failed++;
  console.log(`=== ${file}: ${result.status === 0 ? 'done' : `exit ${result.status ?? result.signal}`} in ${((Date.now() - started) / 1000).toFixed(1)} s ===`);
}
process.exitCode = failed > 0 ? 1 : 0;
