import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '../../tools/meshlet-process.js';

/**
 * What `npm run build` (tools/bundle.mjs) leaves in dist/meshlet/, the code the image runs. `npm ci`
 * builds it before the tests run.
 */
const BUNDLE = join(REPO_ROOT, 'dist', 'meshlet');

t.test('the bundle loads node:http and node:https without their ES module facade', async (t) => {
  const chunks = readdirSync(BUNDLE).filter((name) => name.endsWith('.js'));
  t.ok(chunks.includes('bin.js'), 'bin.js is the entry');
  const text = chunks.map((name) => readFileSync(join(BUNDLE, name), 'utf8'));
  // An `import` from node:http reads every export, and on Node 22 and later its WebSocket getter
  // loads undici, http2, tls and zlib: 6-7 MiB per proxy on Node 24.
  t.notOk(
    text.some((code) => /\bfrom\s*["']node:https?["']|\bimport\s*\(\s*["']node:https?["']/.test(code)),
    'no chunk imports node:http or node:https as an ES module',
  );
  t.ok(
    text.some((code) => code.includes('process.getBuiltinModule("node:http")')),
    'node:http is loaded with process.getBuiltinModule',
  );
});
