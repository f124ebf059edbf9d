import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '../../tools/meshlet-process.js';

/** The whole demo as a newcomer runs it (`npm run demo`), as a real process with output to a pipe. */
async function runDemo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'demo', 'main.ts'), ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearTimeout(timer);
  return { code, stdout, stderr, seconds: (Date.now() - started) / 1000 };
}

t.test('the demo plays four acts, each with the verdict it is meant to show, and exits 0', async (t) => {
  // Full-length acts: on a busy machine the short --quick acts see too few requests to judge.
  const run = await runDemo([], { NO_COLOR: '1' });
  if (run.code !== 0) t.comment(`stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  t.equal(run.code, 0, 'exit code 0');
  t.comment(`the demo took ${run.seconds.toFixed(1)} s`);
  const out = run.stdout;
  for (const act of [1, 2, 3, 4]) t.match(out, new RegExp(`^Act ${act}: `, 'm'), `act ${act} is shown`);
  t.match(out, /^ {2}\[problem\] imbalanced: backend-\d takes 100% \(fair share 33%\); endpoints receiving nothing: backend-\d, backend-\d — 1 TCP connection/m, 'act 1: one backend takes everything');
  t.match(out, /^ {2}\[ok\] every backend gets its share: backend-1 \d+%, backend-2 \d+%, backend-3 \d+% \(fair share 33%, CV [\d.]+\)$/m, 'act 2: every backend gets its share');
  t.match(out, /^ {2}\[ok\] backend-4 and backend-5 got their first requests \d+\.\d s and \d+\.\d s after joining; since then backend-4 \d+%, backend-5 \d+% \(fair share 20%\)$/m, 'act 3: new backends get traffic at once');
  t.match(out, /^ {2}\[ok\] backend-2 got (?:<1|\d+)% \(fair share 20%\): its \+50 ms added [\d.]+ ms to the client's mean latency instead of [\d.]+ ms; client p50 [\d.]+ ms/m, 'act 4: the slow backend gets less');
  t.match(out, /^Summary \([\d.]+ s\)$/m);
  t.match(out, /^ {2}ACT\s+BALANCING\s+REQUESTS\s+SPLIT\s+CV\s+P50\s+P99\s+ERRORS\s+RESULT$/m, 'summary table header');
  t.match(out, /^ {2}1\s+per connection \(kube-proxy\)\s+\d+\s+0%–100%\s+1\.41\s.*\sproblem shown$/m, 'summary row of act 1');
  for (const act of [2, 3, 4]) t.match(out, new RegExp(`^ {2}${act}\\s+meshlet.*\\sas expected$`, 'm'), `summary row of act ${act}`);
  t.match(out, 'All four acts behaved as expected.');
  t.notMatch(out, /\x1b\[/, 'no escape sequences when output is not a terminal');
});

t.test('a bad flag is a usage error that says what is allowed', async (t) => {
  const run = await runDemo(['--fast']);
  t.equal(run.code, 2);
  t.match(run.stderr, "Unknown option '--fast'");
  t.match(run.stderr, '--quick');
});
