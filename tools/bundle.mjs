// The second half of `npm run build`: bundles tsc's output (dist/src/bin.js) into dist/meshlet/,
// one chunk per command, which bin/meshlet.js and the image run. One bundle instead of ~120 ES
// modules is about 1 MiB less in every meshed Pod (README, Where the memory goes).
//
// node:http and node:https are loaded with process.getBuiltinModule, not `import`: importing a
// builtin as an ES module reads every export, and since Node 22 node:http's lazy WebSocket,
// CloseEvent and MessageEvent getters load undici, http2, tls, zlib and worker_threads. That cost
// the proxy 6-7 MiB on Node 24 (the image's), and nothing on Node 20.
import { build } from 'esbuild';

const WITHOUT_ESM_FACADE = /^node:https?$/;

/** Resolves `node:http` and `node:https` to a module that exports process.getBuiltinModule's object. */
const builtinsWithoutEsmFacade = {
  name: 'builtins-without-esm-facade',
  setup(bundle) {
    bundle.onResolve({ filter: WITHOUT_ESM_FACADE }, (args) => ({ path: args.path, namespace: 'builtin' }));
    bundle.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: ['dist/src/bin.js'],
  outdir: 'dist/meshlet',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
  plugins: [builtinsWithoutEsmFacade],
});
