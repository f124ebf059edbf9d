import { readFile } from 'node:fs/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { dump, loadAll } from 'js-yaml';
import type { CommandSpec, ParsedCommand } from '../common/config.js';
import { ANNOTATION, INJECT_DISABLED, INJECT_ENABLED } from '../common/contract.js';
import { InvalidConfigError, MeshletError } from '../common/errors.js';
import { MESHLET_VERSION } from '../common/version.js';
import { injectPod } from './injector.js';
import { INJECTOR_FLAGS, parseInjectorConfig, type InjectorConfig } from './settings.js';
import { getPodTemplate, isWorkloadKind, withPodTemplate, WORKLOAD_KINDS, type KubernetesDocument } from './workloads.js';

export const command: CommandSpec = {
  name: 'inject',
  summary: 'Mesh the Pods and workloads in multi-document YAML, exactly as the webhook would, and print the result',
  usage: '-f FILE|-',
  flags: {
    filename: { type: 'string', short: 'f', placeholder: 'FILE|-', description: 'YAML to read ("-" for standard input)' },
    namespace: {
      type: 'string',
      short: 'n',
      placeholder: 'NS',
      description: 'Namespace assumed for objects that do not name one',
      default: 'default',
    },
    ...INJECTOR_FLAGS,
  },
  details: `Kinds meshed: ${WORKLOAD_KINDS.join(', ')}, also as the items of a List (what kubectl get -o yaml
prints; the List is kept); other documents pass through unchanged.
Running the command is the opt-in: a Pod template without ${ANNOTATION.inject} gets "${INJECT_ENABLED}";
"${INJECT_DISABLED}" is respected. Skips are explained on standard error. A bad meshlet.dev/* value fails
the whole command (exit 1) and prints nothing on standard output.`,
};

/** A document that could not be meshed because of its own annotations. */
export class InjectDeniedError extends MeshletError {
  constructor(messages: readonly string[]) {
    super('MESHLET_INJECT_DENIED', messages.join('\n'));
  }
}

export interface ManualInjectResult {
  yaml: string;
  /** One line per document that was not meshed, saying why. */
  notes: string[];
}

/** Meshes every workload in a multi-document YAML text; throws InjectDeniedError listing every bad document. */
export function injectYaml(text: string, config: InjectorConfig, defaultNamespace: string): ManualInjectResult {
  let documents: unknown[];
  try {
    documents = loadAll(text);
  } catch (err) {
    throw new InvalidConfigError([`input is not valid YAML: ${(err as Error).message}`]);
  }
  const found: Findings = { notes: [], denials: [] };
  const output: unknown[] = [];
  documents.forEach((raw, index) => {
    if (raw === null || raw === undefined) return;
    const document = raw as KubernetesDocument;
    const label = `document ${index + 1} (${describe(document)})`;
    const result = isList(document) ? injectList(document, label, config, defaultNamespace, found) : injectDocument(document, label, config, defaultNamespace, found);
    if (result) output.push(result);
  });
  if (found.denials.length > 0) throw new InjectDeniedError(found.denials);
  const yaml = output.map((doc) => dump(doc, { noRefs: true, lineWidth: -1 })).join('---\n');
  return { yaml, notes: found.notes };
}

/** What one run found to say: skips (printed on standard error) and denials (which fail the command). */
interface Findings {
  notes: string[];
  denials: string[];
}

/** `kubectl get ... -o yaml` wraps what it prints in `apiVersion: v1, kind: List, items: [...]`. */
function isList(document: KubernetesDocument): boolean {
  return document.kind === 'List' && (document.apiVersion === undefined || document.apiVersion === 'v1');
}

function describe(document: KubernetesDocument): string {
  return [document.kind ?? 'no kind', document.metadata?.name].filter(Boolean).join(' ');
}

/** Meshes each item of a List as if it were its own document; the List wrapper is kept. */
function injectList(list: KubernetesDocument, label: string, config: InjectorConfig, defaultNamespace: string, found: Findings): KubernetesDocument | undefined {
  const items = list['items'] ?? [];
  if (!Array.isArray(items)) {
    found.denials.push(`${label}: items is not a list of objects; a List keeps its objects in items: [...]`);
    return undefined;
  }
  const injected: unknown[] = [];
  items.forEach((raw: unknown, index) => {
    if (raw === null || typeof raw !== 'object') {
      found.denials.push(`${label} item ${index + 1}: is not an object; a List item is a Kubernetes object`);
      return;
    }
    const item = raw as KubernetesDocument;
    const itemLabel = `${label} item ${index + 1} (${describe(item)})`;
    if (isList(item)) {
      found.denials.push(`${itemLabel}: a List inside a List is not supported; put its items in the outer List or in their own documents`);
      return;
    }
    const result = injectDocument(item, itemLabel, config, defaultNamespace, found);
    if (result) injected.push(result);
  });
  return { ...list, items: injected };
}

/** The document meshed, or unchanged when it is not a workload or is skipped; undefined when denied. */
function injectDocument(document: KubernetesDocument, label: string, config: InjectorConfig, defaultNamespace: string, found: Findings): KubernetesDocument | undefined {
  if (!isWorkloadKind(document.kind)) return document;
  const template = getPodTemplate(document, document.kind);
  if (!template) {
    found.denials.push(`${label}: has no Pod template where a ${document.kind} keeps it`);
    return undefined;
  }
  // Running the command is the opt-in; an explicit value (disabled, or a typo to report) is kept.
  const annotations = { ...template.metadata?.annotations };
  annotations[ANNOTATION.inject] ??= INJECT_ENABLED;
  const optedIn = { ...template, metadata: { ...template.metadata, annotations } } as V1Pod;
  const namespace = document.metadata?.namespace ?? defaultNamespace;
  const outcome = injectPod(optedIn, namespace, config, MESHLET_VERSION);
  switch (outcome.kind) {
    case 'injected':
      return withPodTemplate(document, document.kind, outcome.pod);
    case 'skipped':
      found.notes.push(`${label}: not meshed: ${outcome.reasons.map((r) => r.message).join('; ')}`);
      return document;
    case 'denied':
      found.denials.push(`${label}: ${outcome.message}`);
      return undefined;
  }
}

export async function run(parsed: ParsedCommand): Promise<number> {
  const file = parsed.values['filename'];
  const config = parseInjectorConfig(parsed, [() => (typeof file === 'string' && file !== '' ? undefined : '-f FILE is required ("-" reads standard input)')]);
  const text = file === '-' ? await readStdin() : await readInput(file as string);
  const result = injectYaml(text, config, String(parsed.values['namespace']));
  for (const note of result.notes) process.stderr.write(`meshlet inject: ${note}\n`);
  process.stdout.write(result.yaml);
  return 0;
}

async function readInput(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidConfigError([`-f ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
