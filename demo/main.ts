import { parseArgs } from 'node:util';
import { playDemo, FULL_DURATIONS, QUICK_DURATIONS } from './acts.js';
import { renderSummary } from './summary.js';
import { detectTerminal, paint } from './terminal.js';

const USAGE = `Usage: npm run demo [-- --quick] [-- --plain]

Plays four acts on loopback with real gRPC backends, an unmodified gRPC client and a real
meshlet proxy: kube-proxy-style balancing, meshlet, a scale-up, and a slow backend.
  --quick   shorter acts (about 10 s in all instead of about 25 s)
  --plain   no colours and no live redraw (also when output is not a terminal, or NO_COLOR is set)
`;

async function main(): Promise<number> {
  let flags: { quick?: boolean; plain?: boolean; help?: boolean };
  try {
    flags = parseArgs({ args: process.argv.slice(2), options: { quick: { type: 'boolean' }, plain: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const out = process.stdout;
  const style = detectTerminal(out, process.env, flags.plain === true);
  const started = Date.now();
  out.write(`${paint(style, 'meshlet demo', 'bold')}: why one Pod melts while the others idle, and how meshlet fixes it\n`);
  const results = await playDemo({ out, style, durations: flags.quick ? QUICK_DURATIONS : FULL_DURATIONS });
  out.write(`\n${paint(style, 'Summary', 'bold')} (${((Date.now() - started) / 1000).toFixed(1)} s)\n${renderSummary(results, style).join('\n')}\n`);
  const failed = results.filter((r) => !r.asExpected);
  if (failed.length > 0) {
    out.write(`\n${paint(style, `Act ${failed.map((r) => r.act).join(', ')} did not show what it should (see the verdicts above).`, 'red')}\n`);
    return 1;
  }
  out.write(`\nAll four acts behaved as expected. On a cluster: ${paint(style, 'meshlet diagnose SERVICE -n NAMESPACE', 'cyan')} tells whether a Service is balanced.\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
