#!/usr/bin/env node
// The `meshlet` executable: runs the compiled CLI (built by `npm run build`, which `npm ci` runs via `prepare`).
import { run } from '../dist/src/cli.js';

process.exitCode = await run(process.argv.slice(2));
