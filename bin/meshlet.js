#!/usr/bin/env node
// The `meshlet` executable: runs the compiled CLI (built by `npm run build`, which `npm ci` runs via `prepare`).
import '../dist/src/bin.js';
