import t from 'tap';
import { renderChart } from '../../demo/chart.js';
import { detectTerminal } from '../../demo/terminal.js';

const tty = { isTTY: true, columns: 80 } as NodeJS.WriteStream;
const pipe = { isTTY: false } as NodeJS.WriteStream;

t.test('colours and live bars only on a terminal that wants them', async (t) => {
  t.match(detectTerminal(tty, {}, false), { color: true, live: true, blocks: true });
  t.match(detectTerminal(tty, { NO_COLOR: '1' }, false), { color: false, live: true });
  t.match(detectTerminal(tty, { TERM: 'dumb' }, false), { color: false, live: false, blocks: false });
  t.match(detectTerminal(tty, {}, true), { color: false, live: false, blocks: false });
  t.match(detectTerminal(pipe, {}, false), { color: false, live: false, blocks: false });
});

t.test('bars are scaled to the busiest backend and show count and share', async (t) => {
  const lines = renderChart(
    [
      { name: 'backend-1', requests: 300 },
      { name: 'backend-2', requests: 100, note: 'slow +50 ms' },
      { name: 'backend-3', requests: 0 },
    ],
    detectTerminal(pipe, {}, false),
  );
  const bars = lines.map((l) => (l.match(/#/g) ?? []).length);
  t.ok(bars[0]! > 0 && Math.abs(bars[1]! - bars[0]! / 3) <= 1 && bars[2] === 0, `bar lengths ${bars}`);
  t.match(lines[0], /backend-1 #+\s+300\s+75%$/);
  t.match(lines[1], /100\s+25% {2}slow \+50 ms$/);
  t.match(lines[2], /backend-3 \.+\s+0\s+0%$/);
});
