import { parseArgs } from 'node:util';
import { InvalidConfigError } from './errors.js';

/**
 * Declarative command-line flags with MESHLET_* environment fallbacks. Every subcommand describes
 * its flags once as a CommandSpec; `parseCommand` turns argv + env into raw values and collects every
 * problem before failing once, and `formatHelp` prints `meshlet SUB --help` from the same spec.
 */
export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  /** Shown in help in place of the value, e.g. FILE, HOST:PORT. */
  placeholder?: string;
  /** The flag may repeat (`--dns a --dns b`); its value is then an array. */
  multiple?: boolean;
  default?: string | boolean;
  /** Environment variable read when the flag is absent. Declared only here. */
  env?: string;
  short?: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** One line after `meshlet NAME`, e.g. `SERVICE [-n NS]`. */
  usage?: string;
  flags: Record<string, FlagSpec>;
  /** Extra paragraphs printed after the flags. */
  details?: string;
}

export type FlagValue = string | boolean | string[] | undefined;

export interface ParsedCommand {
  values: Record<string, FlagValue>;
  positionals: string[];
  help: boolean;
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

export function parseCommand(spec: CommandSpec, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedCommand {
  if (argv.includes('--help') || argv.includes('-h')) return { values: {}, positionals: [], help: true };
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    options[name] = { type: flag.type, ...(flag.multiple ? { multiple: true } : {}), ...(flag.short ? { short: flag.short } : {}) };
    if (flag.type === 'boolean') options[`no-${name}`] = { type: 'boolean' };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: normalizeBooleanValues(spec, argv), options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new InvalidConfigError([`meshlet ${spec.name}: ${(err as Error).message}; see 'meshlet ${spec.name} --help'`]);
  }
  const problems: string[] = [];
  const values: Record<string, FlagValue> = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    let value = parsed.values[name] as FlagValue;
    if (flag.type === 'boolean' && parsed.values[`no-${name}`] === true) value = false;
    if (value === undefined && flag.env !== undefined && env[flag.env] !== undefined && env[flag.env] !== '') {
      const raw = env[flag.env]!;
      if (flag.type === 'boolean') {
        const word = raw.trim().toLowerCase();
        if (TRUE_WORDS.has(word)) value = true;
        else if (FALSE_WORDS.has(word)) value = false;
        else problems.push(`${flag.env}: "${raw}" is not valid; allowed: true or false`);
      } else {
        value = flag.multiple ? raw.split(',').map((s) => s.trim()).filter(Boolean) : raw;
      }
    }
    values[name] = value ?? flag.default;
  }
  if (problems.length > 0) throw new InvalidConfigError(problems);
  return { values, positionals: parsed.positionals, help: false };
}

/** `--flag=false` / `--flag=true` on a boolean flag, as users write it, become `--no-flag` / `--flag`. */
function normalizeBooleanValues(spec: CommandSpec, argv: readonly string[]): string[] {
  return argv.map((arg) => {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (!match || spec.flags[match[1]!]?.type !== 'boolean') return arg;
    const word = match[2]!.trim().toLowerCase();
    if (FALSE_WORDS.has(word)) return `--no-${match[1]}`;
    if (TRUE_WORDS.has(word)) return `--${match[1]}`;
    return arg;
  });
}

/**
 * Runs each check over the parsed values, collecting every problem, and throws once with all of
 * them. A check returns an error message or undefined.
 */
export function collectProblems(checks: ReadonlyArray<() => string | undefined>): void {
  const problems = checks.map((check) => check()).filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new InvalidConfigError(problems);
}

export function formatHelp(spec: CommandSpec): string {
  const lines = [`Usage: meshlet ${spec.name}${spec.usage ? ` ${spec.usage}` : ''} [flags]`, '', spec.summary, '', 'Flags:'];
  const entries = Object.entries(spec.flags).map(([name, flag]) => {
    const value = flag.type === 'string' ? ` ${flag.placeholder ?? 'VALUE'}` : '';
    const short = flag.short ? `-${flag.short}, ` : '    ';
    return { left: `  ${short}--${name}${value}`, flag };
  });
  const width = Math.max(...entries.map((e) => e.left.length), 10) + 2;
  for (const { left, flag } of entries) {
    const extras: string[] = [];
    if (flag.default !== undefined) extras.push(`default ${JSON.stringify(flag.default)}`);
    if (flag.env) extras.push(`env ${flag.env}`);
    if (flag.multiple) extras.push('repeatable');
    lines.push(`${left.padEnd(width)}${flag.description}${extras.length ? ` (${extras.join('; ')})` : ''}`);
  }
  lines.push(`${'  -h, --help'.padEnd(width)}Show this help`);
  if (spec.details) lines.push('', spec.details.trim());
  return lines.join('\n') + '\n';
}
