import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { dump, loadAll } from 'js-yaml';
import { injectPod } from '../../src/inject/injector.js';
import { applyPatch, buildPatch } from '../../src/inject/patch.js';
import { getPodTemplate, isWorkloadKind } from '../../src/inject/workloads.js';
import { MESHLET_VERSION } from '../../src/common/version.js';
import { FIXTURES_DIR, GOLDEN_DIR, PINNED_CONFIG } from '../helpers/injector-fixtures.js';
import { runMeshlet } from '../../tools/meshlet-process.js';

const ALL_KINDS = join(FIXTURES_DIR, 'workloads', 'all-kinds.yaml');
const PINNED_FLAGS = ['--proxy-image', PINNED_CONFIG.proxyImage];
const names = (containers: Array<{ name: string }> | undefined) => (containers ?? []).map((c) => c.name);
const docs = (yaml: string) => loadAll(yaml).filter((d) => d !== null) as any[];

t.test('every workload kind in multi-document YAML is meshed where it keeps its Pod template', async (t) => {
  const run = await runMeshlet(['inject', '-f', ALL_KINDS, ...PINNED_FLAGS]);
  t.equal(run.code, 0, run.stderr);
  const input = docs(readFileSync(ALL_KINDS, 'utf8'));
  const output = docs(run.stdout);
  t.equal(output.length, input.length, 'every document comes out, in order');
  t.same(output.map((d) => `${d.kind}/${d.metadata.name}`), input.map((d) => `${d.kind}/${d.metadata.name}`));

  const meshed = ['Deployment/web', 'StatefulSet/db', 'DaemonSet/agent', 'ReplicaSet/legacy', 'Job/migrate', 'CronJob/report', 'Pod/debug'];
  for (const doc of output) {
    const id = `${doc.kind}/${doc.metadata.name}`;
    if (!isWorkloadKind(doc.kind) || !meshed.includes(id)) continue;
    const template = getPodTemplate(doc, doc.kind)!;
    t.same(names(template.spec!.initContainers).slice(0, 2), ['meshlet-init', 'meshlet-proxy'], `${id} is meshed`);
    t.match(template.metadata!.annotations, { 'meshlet.dev/inject': 'enabled', 'meshlet.dev/status': 'injected' }, `${id} is marked`);
  }
  const sts = output.find((d) => d.kind === 'StatefulSet');
  t.same(sts.spec.template.spec.initContainers[1].env.find((e: any) => e.name === 'MESHLET_LB_POLICY'), { name: 'MESHLET_LB_POLICY', value: 'round-robin' }, 'template annotations apply');
  t.same(output[0], input[0], 'a Service passes through unchanged');
  t.same(output.find((d) => d.metadata.name === 'opted-out'), input.find((d) => d.metadata.name === 'opted-out'), 'disabled is respected');
  t.same(output.find((d) => d.metadata.name === 'node-agent'), input.find((d) => d.metadata.name === 'node-agent'), 'kube-system / hostNetwork are left alone');
  t.match(run.stderr, /document 9 \(Deployment opted-out\): not meshed: annotation meshlet.dev\/inject is "disabled"/);
  t.match(run.stderr, /document 10 \(DaemonSet node-agent\): not meshed: .*hostNetwork.*namespace kube-system/);

  const goldenPath = join(GOLDEN_DIR, 'workloads-all-kinds.yaml');
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(goldenPath, output.map((d) => dump(d, { noRefs: true, lineWidth: -1 })).join('---\n'));
  t.ok(existsSync(goldenPath), 'golden exists (UPDATE_GOLDEN=1 writes it)');
  t.same(output, docs(readFileSync(goldenPath, 'utf8')), 'matches the reviewed golden');
});

t.test('a template is meshed exactly as the webhook meshes the Pod made from it', async (t) => {
  const run = await runMeshlet(['inject', '-f', ALL_KINDS, ...PINNED_FLAGS]);
  const deployment = docs(readFileSync(ALL_KINDS, 'utf8')).find((d) => d.kind === 'Deployment');
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { ...deployment.spec.template.metadata, annotations: { 'meshlet.dev/inject': 'enabled' } }, spec: deployment.spec.template.spec };
  const outcome = injectPod(pod, 'demo', PINNED_CONFIG, MESHLET_VERSION);
  if (outcome.kind !== 'injected') return t.fail('webhook path did not mesh');
  const viaWebhook = applyPatch(pod, buildPatch(pod, outcome.pod));
  const viaManual = docs(run.stdout).find((d) => d.kind === 'Deployment').spec.template;
  t.same(viaManual.spec, viaWebhook.spec);
  t.same(viaManual.metadata, viaWebhook.metadata);
});

t.test('reading standard input, --native-sidecar=false makes the proxy the first container', async (t) => {
  for (const flag of ['--native-sidecar=false', '--no-native-sidecar']) {
    const run = await runMeshlet(['inject', '-f', '-', flag], { stdin: readFileSync(ALL_KINDS, 'utf8') });
    t.equal(run.code, 0, run.stderr);
    const job = docs(run.stdout).find((d) => d.kind === 'Job');
    t.same(names(job.spec.template.spec.containers), ['meshlet-proxy', 'migrate'], flag);
    t.same(names(job.spec.template.spec.initContainers), ['meshlet-init'], flag);
    t.equal(job.spec.template.spec.containers[0].restartPolicy, undefined);
  }
});

t.test('running the output through again changes nothing', async (t) => {
  const first = await runMeshlet(['inject', '-f', ALL_KINDS, ...PINNED_FLAGS]);
  const second = await runMeshlet(['inject', '-f', '-', ...PINNED_FLAGS], { stdin: first.stdout });
  t.equal(second.code, 0);
  t.same(docs(second.stdout), docs(first.stdout));
  t.match(second.stderr, /document 2 \(Deployment web\): not meshed: Pod already has the meshlet proxy/);
});

const LIST = join(FIXTURES_DIR, 'workloads', 'list.yaml');

t.test('the items of a List (kubectl get -o yaml) are meshed like documents, and the List is kept', async (t) => {
  const run = await runMeshlet(['inject', '-f', LIST, ...PINNED_FLAGS]);
  t.equal(run.code, 0, run.stderr);
  const input = docs(readFileSync(LIST, 'utf8'));
  const output = docs(run.stdout);
  t.same(output.map((d) => d.kind), ['List', 'Job'], 'the List and the document after it come out, in order');
  const [list, job] = output;
  t.same(list.metadata, input[0].metadata, 'the List wrapper is kept');
  t.same(list.items.map((d: any) => `${d.kind}/${d.metadata.name}`), ['Deployment/web', 'Deployment/opted-out', 'Service/web'], 'every item comes out, in order');
  t.same(names(list.items[0].spec.template.spec.initContainers).slice(0, 2), ['meshlet-init', 'meshlet-proxy'], 'the Deployment item is meshed');
  t.same(list.items[0].status, input[0].items[0].status, "the item's other fields are kept");
  t.same(list.items[1], input[0].items[1], 'disabled is respected inside a List');
  t.same(list.items[2], input[0].items[2], 'a Service item passes through unchanged');
  t.match(run.stderr, /document 1 \(List\) item 2 \(Deployment opted-out\): not meshed: annotation meshlet.dev\/inject is "disabled"/);
  t.same(names(job.spec.template.spec.initContainers).slice(0, 2), ['meshlet-init', 'meshlet-proxy'], 'a document after the List is meshed too');

  const alone = await runMeshlet(['inject', '-f', '-', ...PINNED_FLAGS], { stdin: dump(input[0].items[0]) });
  t.same(list.items[0], docs(alone.stdout)[0], 'an item is meshed exactly as the same object on its own');
  const again = await runMeshlet(['inject', '-f', '-', ...PINNED_FLAGS], { stdin: run.stdout });
  t.same(docs(again.stdout), output, 'running the output through again changes nothing');
  t.match(again.stderr, /document 1 \(List\) item 1 \(Deployment web\): not meshed: Pod already has the meshlet proxy/);

  const goldenPath = join(GOLDEN_DIR, 'workloads-list.yaml');
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(goldenPath, output.map((d) => dump(d, { noRefs: true, lineWidth: -1 })).join('---\n'));
  t.ok(existsSync(goldenPath), 'golden exists (UPDATE_GOLDEN=1 writes it)');
  t.same(output, docs(readFileSync(goldenPath, 'utf8')), 'matches the reviewed golden');
});

t.test('a List inside a List, a List item that is not an object, or a bad item fails the command naming the item', async (t) => {
  const bad = dump({
    apiVersion: 'v1',
    kind: 'List',
    items: [{ apiVersion: 'v1', kind: 'List', items: [] }, 'web', loadAll(readFileSync(join(FIXTURES_DIR, 'workloads', 'bad-annotations.yaml'), 'utf8'))[0]],
  });
  const run = await runMeshlet(['inject', '-f', '-'], { stdin: bad });
  t.equal(run.code, 1);
  t.equal(run.stdout, '', 'no YAML is printed');
  t.match(run.stderr, /document 1 \(List\) item 1 \(List\): a List inside a List is not supported; put its items in the outer List or in their own documents/);
  t.match(run.stderr, /document 1 \(List\) item 2: is not an object/);
  t.match(run.stderr, /document 1 \(List\) item 3 \(Deployment web\): meshlet.dev\/proxy-memory-limit: "lots" is not valid/);
  const notAList = await runMeshlet(['inject', '-f', '-'], { stdin: 'apiVersion: v1\nkind: List\nitems: {web: 1}\n' });
  t.equal(notAList.code, 1);
  t.match(notAList.stderr, /document 1 \(List\): items is not a list of objects/);
});

t.test('bad annotations fail the command with every problem and print no YAML', async (t) => {
  const run = await runMeshlet(['inject', '-f', join(FIXTURES_DIR, 'workloads', 'bad-annotations.yaml')]);
  t.equal(run.code, 1);
  t.equal(run.stdout, '');
  t.match(run.stderr, /document 1 \(Deployment web\): meshlet.dev\/proxy-memory-limit: "lots" is not valid; allowed: a Kubernetes quantity/);
  t.match(run.stderr, /meshlet.dev\/lb-policy: "fastest" is not valid; allowed: one of round-robin, least-request, peak-ewma/);
});

t.test('bad flags and unreadable input are named', async (t) => {
  const policy = await runMeshlet(['inject', '-f', ALL_KINDS, '--lb-policy', 'fastest', '--proxy-log-level', 'loud']);
  t.equal(policy.code, 2);
  t.match(policy.stderr, /--lb-policy: "fastest" is not valid; allowed: one of round-robin, least-request, peak-ewma/);
  t.match(policy.stderr, /--proxy-log-level: "loud" is not valid/);
  const missing = await runMeshlet(['inject', '-f', join(FIXTURES_DIR, 'does-not-exist.yaml')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /does-not-exist.yaml: cannot read it \(ENOENT\)/);
  const notYaml = await runMeshlet(['inject', '-f', '-'], { stdin: 'a: [unclosed' });
  t.equal(notYaml.code, 2);
  t.match(notYaml.stderr, /input is not valid YAML/);
  const noFile = await runMeshlet(['inject']);
  t.equal(noFile.code, 2);
  t.match(noFile.stderr, /-f FILE is required/);
});
