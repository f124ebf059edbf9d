#!/usr/bin/env node
// The `meshlet` executable: runs the compiled CLI, bundled into dist/meshlet/ by `npm run build`
// (tools/bundle.mjs; `npm ci` runs it via `prepare`).
import '../dist/meshlet/bin.js';
