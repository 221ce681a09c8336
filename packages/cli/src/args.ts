/**
 * Declarative commands: one spec gives both the parser and the `--help` text, so they never
 * disagree. Parsing is node:util parseArgs in its lenient mode, with our own checks on its
 * tokens, because its strict-mode messages echo argument values and a value may be a secret.
 */
import { parseArgs } from 'node:util'
import { UsageError } from './errors.js'

/**
 * One flag of a command.
 *
 * @example
 * const limit: OptionSpec = { type: 'string', value: 'N', description: 'Page size, 1–100' }
 */
export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  /** Placeholder in the help text, e.g. `N`, `JSON`, `URL`. */
  value?: string
  description: string
}

/**
 * A command: its usage lines, flags and examples.
 *
 * @example
 * const spec: CommandSpec = { name: 'tokens verify', summary: 'Verify a token', usage: ['<token>'], options: {} }
 */
export interface CommandSpec {
  /** Words after `m2m-guard`, e.g. `tokens create`; empty for the top level. */
  name: string
  summary: string
  /** Argument synopsis lines, each shown after `m2m-guard <name>`. */
  usage: string[]
  /** Paragraphs after the summary. */
  details?: string[]
  options: Record<string, OptionSpec>
  /** Subcommands listed in the help, `[name, summary]`. */
  commands?: [string, string][]
  examples?: string[]
}

/**
 * Parsed flags (`--help` is handled before you see them) and positional arguments.
 *
 * @example
 * const { values, positionals }: ParsedArgs = parseCommand(spec, ['mt_…', '--json'])
 */
export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', description: 'Show this help' }

/**
 * Whether the arguments ask for help (`-h` or `--help` before any `--`).
 *
 * @example
 * wantsHelp(['create', '--help']) // true
 */
export function wantsHelp(args: readonly string[]): boolean {
  for (const arg of args) {
    if (arg === '--') return false
    if (arg === '--help' || arg === '-h') return true
  }
  return false
}

/**
 * Parses arguments against a command spec.
 *
 * @throws {UsageError} for an unknown flag, a missing value, a value given to a switch, or a
 * flag given twice; the message names the flag and never shows its value.
 * @example
 * parseCommand(spec, ['--limit', '5']).values.limit // '5'
 */
export function parseCommand(spec: CommandSpec, args: readonly string[]): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {}
  for (const [name, option] of Object.entries({ ...spec.options, help: HELP })) {
    options[name] = option.short
      ? { type: option.type, short: option.short }
      : { type: option.type }
  }
  let tokens: ReturnType<typeof parseArgs>['tokens']
  try {
    tokens = parseArgs({
      args: [...args],
      options,
      strict: false,
      allowPositionals: true,
      tokens: true,
    }).tokens
  } catch (cause) {
    throw new UsageError('could not parse the arguments', spec.name, { cause })
  }
  const values: ParsedArgs['values'] = {}
  const positionals: string[] = []
  for (const token of tokens ?? []) {
    if (token.kind === 'positional') {
      positionals.push(token.value)
      continue
    }
    if (token.kind !== 'option') continue
    const option = token.name === 'help' ? HELP : spec.options[token.name]
    if (option === undefined) {
      throw new UsageError(`unknown option ${token.rawName}`, spec.name)
    }
    if (option.type === 'boolean') {
      if (token.value !== undefined)
        throw new UsageError(`${token.rawName} takes no value`, spec.name)
      values[token.name] = true
      continue
    }
    // Lenient parseArgs takes the next argument as the value even when it is another flag
    // (`--limit --json`); refuse that rather than guess. `-` alone is a value (stdin).
    const value = token.value
    if (value === undefined || (!token.inlineValue && value.startsWith('-') && value !== '-')) {
      throw new UsageError(
        `${token.rawName} needs a value${option.value ? ` (${option.value})` : ''}; write ${token.rawName}=VALUE for a value starting with '-'`,
        spec.name,
      )
    }
    if (values[token.name] !== undefined) {
      throw new UsageError(`${token.rawName} given more than once`, spec.name)
    }
    values[token.name] = value
  }
  return { values, positionals }
}

/**
 * The `--help` text of a command.
 *
 * @example
 * process.stdout.write(renderHelp(spec))
 */
export function renderHelp(spec: CommandSpec): string {
  const command = spec.name ? `m2m-guard ${spec.name}` : 'm2m-guard'
  const lines: string[] = []
  lines.push(`Usage: ${command} ${spec.usage[0] ?? ''}`.trimEnd())
  for (const usage of spec.usage.slice(1)) lines.push(`       ${command} ${usage}`.trimEnd())
  lines.push('', spec.summary)
  for (const paragraph of spec.details ?? []) lines.push('', paragraph)
  if (spec.commands?.length) {
    lines.push('', 'Commands:')
    const width = Math.max(...spec.commands.map(([name]) => name.length))
    for (const [name, summary] of spec.commands) lines.push(`  ${name.padEnd(width)}  ${summary}`)
  }
  const entries = Object.entries({ ...spec.options, help: HELP })
  const labels = entries.map(([name, option]) => {
    const long = `--${name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}`
    return option.short ? `-${option.short}, ${long}` : `    ${long}`
  })
  const width = Math.max(...labels.map((label) => label.length))
  lines.push('', 'Options:')
  entries.forEach(([, option], i) => {
    lines.push(`  ${(labels[i] ?? '').padEnd(width)}  ${option.description}`)
  })
  if (spec.examples?.length) {
    lines.push('', 'Examples:')
    for (const example of spec.examples) lines.push(`  ${example}`)
  }
  return `${lines.join('\n')}\n`
}
