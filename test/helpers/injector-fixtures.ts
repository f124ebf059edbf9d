import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import type { V1Pod } from '@kubernetes/client-node';
import { REPO_ROOT } from '../../tools/meshlet-process.js';
import type { InjectorConfig } from '../../src/inject/settings.js';

export const FIXTURES_DIR = join(REPO_ROOT, 'test', 'fixtures');
export const GOLDEN_DIR = join(REPO_ROOT, 'test', 'golden', 'injected');

/** Pinned so goldens do not move when the package version or default image changes. */
export const PINNED_VERSION = '0.1.0';
export const PINNED_CONFIG: InjectorConfig = {
  proxyImage: 'ghcr.io/meshlet/meshlet:0.1.0',
  nativeSidecar: true,
  lbPolicy: 'peak-ewma',
  proxyLogLevel: 'info',
};

export function loadPodFixture(name: string): V1Pod {
  return load(readFileSync(join(FIXTURES_DIR, 'pods', `${name}.yaml`), 'utf8')) as V1Pod;
}
