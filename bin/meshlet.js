#!/usr/bin/env node
// The `meshlet` executable: runs the compiled CLI, bundled into dist/meshlet/ by `npm run build`
// (which `npm ci` runs via `prepare`). One bundle instead of ~120 modules is about 0.8 MiB less
// memory in every meshed Pod (README, Where the memory goes); each command is its own chunk.
import '../dist/meshlet/bin.js';
