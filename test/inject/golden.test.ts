import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { dump, load } from 'js-yaml';
import { injectPod } from '../../src/inject/injector.js';
import { applyPatch, buildPatch } from '../../src/inject/patch.js';
import type { InjectorConfig } from '../../src/inject/settings.js';
import { GOLDEN_DIR, loadPodFixture, PINNED_CONFIG, PINNED_VERSION } from '../helpers/injector-fixtures.js';

const UPDATE = process.env['UPDATE_GOLDEN'] === '1';

const cases: Array<{ name: string; fixture: string; config?: Partial<InjectorConfig> }> = [
  { name: 'plain', fixture: 'plain' },
  { name: 'multi-container', fixture: 'multi-container' },
  { name: 'existing-init', fixture: 'existing-init' },
  { name: 'native-sidecar-off', fixture: 'native-sidecar-off' },
  { name: 'native-sidecar-flag-off', fixture: 'existing-init', config: { nativeSidecar: false } },
  { name: 'override-image', fixture: 'override-image' },
  { name: 'override-resources', fixture: 'override-resources' },
  { name: 'override-limit-below-default-request', fixture: 'override-limit-below-default-request' },
  { name: 'override-log-level-and-policy', fixture: 'override-log-level-and-policy' },
  { name: 'override-outbound', fixture: 'override-outbound' },
  { name: 'discovery-server', fixture: 'plain', config: { discoveryServer: 'meshlet-discovery.meshlet-system.svc:15010' } },
];

for (const c of cases) {
  t.test(`${c.name}: the patch turns the fixture Pod into the golden meshed Pod`, async (t) => {
    const pod = loadPodFixture(c.fixture);
    const outcome = injectPod(pod, 'demo', { ...PINNED_CONFIG, ...c.config }, PINNED_VERSION);
    t.equal(outcome.kind, 'injected', `${c.fixture} is meshed`);
    if (outcome.kind !== 'injected') return;
    const patched = applyPatch(pod, buildPatch(pod, outcome.pod));
    const goldenPath = join(GOLDEN_DIR, `${c.name}.yaml`);
    if (UPDATE) writeFileSync(goldenPath, dump(patched, { noRefs: true, lineWidth: -1 }));
    t.ok(existsSync(goldenPath), `golden ${goldenPath} exists (UPDATE_GOLDEN=1 writes it)`);
    t.same(patched, load(readFileSync(goldenPath, 'utf8')));
  });

  t.test(`${c.name}: meshing the meshed Pod again changes nothing`, async (t) => {
    const pod = loadPodFixture(c.fixture);
    const config = { ...PINNED_CONFIG, ...c.config };
    const first = injectPod(pod, 'demo', config, PINNED_VERSION);
    if (first.kind !== 'injected') return t.fail('first pass did not mesh');
    const second = injectPod(first.pod, 'demo', config, PINNED_VERSION);
    t.equal(second.kind, 'skipped');
    if (second.kind === 'skipped') t.same(second.reasons.map((r) => r.code), ['already-injected']);
  });
}

t.test('the original Pod object is left untouched', async (t) => {
  const pod = loadPodFixture('existing-init');
  const before = structuredClone(pod);
  injectPod(pod, 'demo', PINNED_CONFIG, PINNED_VERSION);
  t.same(pod, before);
});
