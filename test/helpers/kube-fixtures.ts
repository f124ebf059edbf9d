import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../tools/meshlet-process.js';

/**
 * Responses recorded from a real kube-apiserver, kept in the repository (test/fixtures/kube; its
 * README says which apiserver and how each file was obtained). A missing file is an error, never a skip.
 */
export const KUBE_FIXTURES_DIR = join(REPO_ROOT, 'test', 'fixtures', 'kube');

export function readKubeFixture(name: string): Record<string, any> {
  return JSON.parse(readFileSync(join(KUBE_FIXTURES_DIR, name), 'utf8'));
}

export function readKubeFixtureLines(name: string): Record<string, any>[] {
  return readFileSync(join(KUBE_FIXTURES_DIR, name), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}
