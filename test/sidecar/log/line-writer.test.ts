import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { MAX_BUFFERED_LOG_LINES } from '../../../sidecar/log/line-writer.js';
import { REPO_ROOT } from '../../../tools/meshlet-process.js';
import { withTimeout } from '../../helpers/wait.js';

const WRITER = join(REPO_ROOT, 'sidecar', 'log', 'line-writer.ts');
/** How long a child has to reach each step. */
const STEP_TIMEOUT_MS = 20_000;

/** Runs `body` (ESM, with `LineWriter` and `writer` on fd 1 in scope) in a child whose stdout is a real pipe to this process. */
function runWriter(t: Test, body: string): ChildProcess {
  const script = `import { LineWriter } from ${JSON.stringify(WRITER)};
const writer = new LineWriter(1, (count) => JSON.stringify({ dropped: count }) + '\\n');
${body}`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return child;
}

/** The child's stdout, parsed line by line, until it closes. */
async function readAll(child: ChildProcess): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const reader = createInterface({ input: child.stdout! });
  reader.on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  await once(reader, 'close');
  return lines;
}

/** The first line the child writes to stderr. */
async function stderrLine(child: ChildProcess): Promise<string> {
  const reader = createInterface({ input: child.stderr! });
  const [line] = (await once(reader, 'line')) as [string];
  return line;
}

t.test('a stdout nobody reads: the proxy keeps running, holds a bounded number of lines, and says how many it dropped', async (t) => {
  const burst = 30_000;
  const child = runWriter(
    t,
    `for (let seq = 0; seq < ${burst}; seq++) writer.write(JSON.stringify({ seq }) + '\\n');
setTimeout(() => {
  process.stderr.write('still running\\n');
  writer.flush(() => {
    for (let seq = ${burst}; seq < ${burst + 100}; seq++) writer.write(JSON.stringify({ seq }) + '\\n');
  });
}, 100);`,
  );
  // Nothing reads the child's stdout until it proves its event loop runs while the pipe is full: a
  // writer that blocked on the pipe would never get here.
  child.stdout!.pause();
  t.equal(await withTimeout(stderrLine(child), STEP_TIMEOUT_MS, 'the child running on while its stdout is not read'), 'still running');
  child.stdout!.resume();
  const lines = await withTimeout(readAll(child), STEP_TIMEOUT_MS, "the child's stdout to end");
  const seqs = lines.filter((l) => typeof l['seq'] === 'number').map((l) => l['seq'] as number);
  const dropped = lines.filter((l) => typeof l['dropped'] === 'number').reduce((sum, l) => sum + (l['dropped'] as number), 0);
  t.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!), 'the lines that were written are in order, none twice');
  t.ok(dropped > 0, 'lines were dropped');
  t.equal(seqs.length + dropped, burst + 100, 'every line is either written or counted in a "dropped" line');
  // Outside the writer's bound, the burst can only have been held by the pipe (64 KiB), this
  // process's paused stream (up to 64 KiB) and the child's socket (16 KiB before it asks to drain).
  const heldOutsideLines = Math.ceil((144 * 1024) / Buffer.byteLength('{"seq":29999}\n'));
  t.ok(seqs.filter((seq) => seq < burst).length <= MAX_BUFFERED_LOG_LINES + heldOutsideLines, 'of the burst, at most the bound waited in the writer');
  t.same(seqs.slice(-100), Array.from({ length: 100 }, (_, i) => burst + i), 'the lines after the reader came back are all written');
});

t.test('a line logged just before process.exit reaches the reader', async (t) => {
  const child = runWriter(
    t,
    `for (let seq = 0; seq < 10; seq++) writer.write(JSON.stringify({ seq }) + '\\n');
writer.write(JSON.stringify({ seq: 'fatal' }) + '\\n');
process.exit(70);`,
  );
  const [lines, [code]] = await withTimeout(Promise.all([readAll(child), once(child, 'exit') as Promise<[number]>]), STEP_TIMEOUT_MS, 'the child to exit');
  t.equal(code, 70);
  t.same(
    lines.map((l) => l['seq']),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'fatal'],
  );
});

t.test('flush calls back once the lines are handed to the OS; a natural exit writes everything', async (t) => {
  const child = runWriter(
    t,
    `writer.write(JSON.stringify({ seq: 0 }) + '\\n');
writer.flush((err) => {
  process.stderr.write((err ? 'flush failed ' + err.message : 'flushed') + '\\n');
  writer.write(JSON.stringify({ seq: 1 }) + '\\n');
});`,
  );
  t.equal(await withTimeout(stderrLine(child), STEP_TIMEOUT_MS, 'the flush callback'), 'flushed');
  const lines = await withTimeout(readAll(child), STEP_TIMEOUT_MS, "the child's stdout to end");
  t.same(lines, [{ seq: 0 }, { seq: 1 }]);
});

t.test('a reader that goes away: writing stops quietly and the process goes on', async (t) => {
  const child = runWriter(
    t,
    `let failed = 0;
const timer = setInterval(() => { if (!writer.write(JSON.stringify({ seq: 1 }) + '\\n')) failed++; }, 1);
setTimeout(() => { clearInterval(timer); process.stderr.write('alive, refused ' + (failed > 0) + '\\n'); }, 500);`,
  );
  child.stdout!.destroy();
  t.equal(await withTimeout(stderrLine(child), STEP_TIMEOUT_MS, 'the child to carry on after its reader closed'), 'alive, refused true');
});
