import { formatHelp, parseCommand, type CommandSpec, type ParsedCommand } from './common/config.js';
import { MeshletError } from './common/errors.js';
import { MESHLET_VERSION } from './common/version.js';

/** What every subcommand module exports: its flags, and what it does with them. */
export interface CommandModule {
  command: CommandSpec;
  /** Returns the process exit code; long-running commands resolve when they have shut down. */
  run(parsed: ParsedCommand): Promise<number>;
}

/** Subcommands, loaded only when called so `meshlet init` never loads fastify or the kube client. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  webhook: { summary: 'Run the mutating admission webhook that meshes opted-in Pods', load: () => import('./webhook/main.js') },
  certs: { summary: 'Make a CA and a serving certificate for the webhook', load: () => import('./certs/main.js') },
  inject: { summary: 'Mesh Pods and workloads in YAML, exactly as the webhook would', load: () => import('./inject/manual.js') },
  proxy: { summary: 'Run the sidecar proxy that balances every request', load: () => import('../sidecar/main.js') },
  discovery: { summary: 'Run the shared watcher that streams endpoints to sidecars', load: () => import('./discovery/main.js') },
  init: { summary: "Install the Pod's outbound redirect rules (the init container)", load: () => import('../sidecar/init/main.js') },
  diagnose: { summary: "Check whether a Service's traffic is balanced", load: () => import('./diagnose/main.js') },
};

export function formatTopHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 4;
  return [
    `meshlet ${MESHLET_VERSION}: balances every HTTP/2, gRPC and HTTP/1.1 request across a Service's Pods`,
    '',
    'Usage: meshlet COMMAND [flags]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    '',
    "Run 'meshlet COMMAND --help' for a command's flags.",
    '',
  ].join('\n');
}

export async function run(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(formatTopHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${MESHLET_VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`meshlet: unknown command "${name}"; allowed: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  const module = await entry.load();
  try {
    const parsed = parseCommand(module.command, rest);
    if (parsed.help) {
      process.stdout.write(formatHelp(module.command));
      return 0;
    }
    return await module.run(parsed);
  } catch (err) {
    if (err instanceof MeshletError) {
      process.stderr.write(`meshlet ${name}: ${err.message}\n`);
      return err.code === 'MESHLET_INVALID_CONFIG' ? 2 : 1;
    }
    throw err;
  }
}
