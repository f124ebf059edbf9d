// `npm ci` runs this (package.json "install"): builds the SO_ORIGINAL_DST addon with node-gyp.
// Plain JavaScript because it runs before TypeScript tooling is guaranteed to exist. A failed build
// never fails the install: the proxy then says at start that the addon is missing and still
// balances traffic whose authority it can resolve.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

if (process.platform !== 'linux') {
  console.warn(`meshlet: skipping the SO_ORIGINAL_DST addon: it exists only on Linux (this is ${process.platform})`);
  process.exit(0);
}

// Use the headers of the running Node when they are installed next to it (no download needed).
const prefix = resolve(dirname(process.execPath), '..');
const nodedirArgs = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];

// npm puts its own node-gyp on PATH for install scripts; fall back to a locally installed one.
function nodeGypCommand() {
  try {
    return [process.execPath, createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    return ['node-gyp'];
  }
}

const [command, ...prefixArgs] = nodeGypCommand();
const result = spawnSync(command, [...prefixArgs, 'rebuild', ...nodedirArgs], { stdio: 'inherit' });
if (result.status !== 0) {
  const why = result.error ? result.error.message : `node-gyp exited with ${result.status ?? result.signal}`;
  console.warn(
    `meshlet: could not build the SO_ORIGINAL_DST addon (${why}). It needs python3, make and g++. ` +
      'Without it the proxy cannot recover original destinations of redirected connections and balances only by authority.',
  );
}
process.exit(0);
