import { readFile } from 'node:fs/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { dump, loadAll } from 'js-yaml';
import type { CommandSpec, ParsedCommand } from '../common/config.js';
import { InvalidConfigError, MeshletError } from '../common/errors.js';
import { MESHLET_VERSION } from '../common/version.js';
import { ANNOTATION, INJECT_ENABLED } from './annotations.js';
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
  details: `Kinds meshed: ${WORKLOAD_KINDS.join(', ')}; other documents pass through unchanged.
Running the command is the opt-in: a Pod template without meshlet.dev/inject gets "enabled";
"disabled" is respected. Skips are explained on standard error. A bad meshlet.dev/* value fails
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
  const notes: string[] = [];
  const denials: string[] = [];
  const output: unknown[] = [];
  documents.forEach((raw, index) => {
    if (raw === null || raw === undefined) return;
    const document = raw as KubernetesDocument;
    const label = `document ${index + 1} (${[document.kind ?? 'no kind', document.metadata?.name].filter(Boolean).join(' ')})`;
    if (!isWorkloadKind(document.kind)) {
      output.push(document);
      return;
    }
    const template = getPodTemplate(document, document.kind);
    if (!template) {
      denials.push(`${label}: has no Pod template where a ${document.kind} keeps it`);
      return;
    }
    // Running the command is the opt-in; an explicit value (disabled, or a typo to report) is kept.
    const annotations = { ...template.metadata?.annotations };
    annotations[ANNOTATION.inject] ??= INJECT_ENABLED;
    const optedIn = { ...template, metadata: { ...template.metadata, annotations } } as V1Pod;
    const namespace = document.metadata?.namespace ?? defaultNamespace;
    const outcome = injectPod(optedIn, namespace, config, MESHLET_VERSION);
    switch (outcome.kind) {
      case 'injected':
        output.push(withPodTemplate(document, document.kind, outcome.pod));
        break;
      case 'skipped':
        notes.push(`${label}: not meshed: ${outcome.reasons.map((r) => r.message).join('; ')}`);
        output.push(document);
        break;
      case 'denied':
        denials.push(`${label}: ${outcome.message}`);
        break;
    }
  });
  if (denials.length > 0) throw new InjectDeniedError(denials);
  const yaml = output.map((doc) => dump(doc, { noRefs: true, lineWidth: -1 })).join('---\n');
  return { yaml, notes };
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
