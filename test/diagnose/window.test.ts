import t from 'tap';
import { parseWindow } from '../../src/diagnose/window.js';

t.test('--window takes a duration with a unit, or 0 for totals since start', async (t) => {
  t.same(parseWindow('500ms'), { ok: true, value: 500 });
  t.same(parseWindow('10s'), { ok: true, value: 10_000 });
  t.same(parseWindow('1.5s'), { ok: true, value: 1500 });
  t.same(parseWindow('2m'), { ok: true, value: 120_000 });
  t.same(parseWindow('0'), { ok: true, value: 0 });
  for (const bad of ['10', 'soon', '-1s', '11m', '']) t.equal(parseWindow(bad).ok, false, `"${bad}" is refused`);
});
