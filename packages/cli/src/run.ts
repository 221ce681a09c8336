/**
 * `runCli`: dispatch, and the one place where failures become exit codes and stderr lines.
 */
import { M2MApiError, M2MConnectionError } from '@m2m-guard/core'
import { type CommandSpec, renderHelp, wantsHelp } from './args.js'
import { EMULATOR_SPEC, runEmulator } from './commands/emulator.js'
import { runTokens } from './commands/tokens.js'
import { UsageError } from './errors.js'
import { printable } from './format.js'
import { type CliIo, type ResolvedIo, resolveIo } from './io.js'
import { VERSION } from './version.js'
import { quoteWord } from './words.js'

/**
 * Exit codes of the `m2m-guard` command.
 *
 * @example
 * if ((await runCli(argv)) === EXIT.usage) console.error('see --help')
 */
export const EXIT = {
  ok: 0,
  /** The API answered with an error, or could not be reached. */
  apiError: 1,
  /** Unknown command or flag, bad or missing value. */
  usage: 2,
  /** Interrupted by SIGINT (Ctrl-C) during a request or while reading stdin: 128 + 2. */
  interrupted: 130,
  /** Terminated by SIGTERM during a request or while reading stdin: 128 + 15. */
  terminated: 143,
} as const

/**
 * `m2m-guard` (top level): its commands and help text.
 *
 * @example
 * process.stdout.write(renderHelp(ROOT_SPEC))
 */
export const ROOT_SPEC: CommandSpec = {
  name: '',
  summary:
    "Machine-to-machine auth on Clerk's M2M tokens: a local emulator, and the token operations.",
  usage: ['<command> [options]', '--version'],
  commands: [
    ['emulator', 'Run a local Clerk-compatible M2M API'],
    ['tokens', 'Create, list, revoke and verify M2M tokens (create | list | revoke | verify)'],
  ],
  options: { version: { type: 'boolean', short: 'v', description: 'Print the version' } },
  details: [
    "Run 'm2m-guard <command> --help' for a command's options. Exit codes: 0 ok, 1 API error, 2 usage error, 130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM).",
  ],
  examples: [
    'm2m-guard emulator --port 4010',
    'CLERK_API_URL=http://127.0.0.1:4010 CLERK_MACHINE_SECRET_KEY=ak_… m2m-guard tokens create',
  ],
}

/**
 * Runs the `m2m-guard` command in-process and resolves to its exit code; nothing is written
 * outside `io`, and `process.exit` is never called.
 *
 * @param argv Arguments after the command name (`process.argv.slice(2)`).
 * @param [io] Streams, environment and stop signal; each defaults to the real process.
 * @returns 0 ok, 1 API or connection error, 2 usage error, 130 interrupted (143 when `io.signal`
 * was aborted with the reason `'SIGTERM'`).
 * @example
 * import { runCli } from '@m2m-guard/cli'
 *
 * const out: string[] = []
 * const code = await runCli(['tokens', 'verify', token, '--json'], {
 *   stdout: { write: (s) => out.push(s) },
 *   env: { CLERK_API_URL: 'http://127.0.0.1:4010', CLERK_SECRET_KEY: 'sk_test_…' },
 * })
 */
export async function runCli(argv: readonly string[], io?: CliIo): Promise<number> {
  const resolved = resolveIo(io)
  try {
    return await dispatch(argv, resolved)
  } catch (err) {
    return report(err, argv, resolved)
  }
}

async function dispatch(argv: readonly string[], io: ResolvedIo): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'emulator':
      if (wantsHelp(rest)) {
        io.stdout.write(renderHelp(EMULATOR_SPEC))
        return EXIT.ok
      }
      return await runEmulator(rest, io)
    case 'tokens':
      return await runTokens(rest, io)
    case '--version':
    case '-v':
      io.stdout.write(`${VERSION}\n`)
      return EXIT.ok
    case '--help':
    case '-h':
    case 'help':
      io.stdout.write(renderHelp(ROOT_SPEC))
      return EXIT.ok
    case undefined:
      io.stderr.write(renderHelp(ROOT_SPEC))
      return EXIT.usage
    default:
      throw new UsageError(
        command.startsWith('-')
          ? `unknown option ${command.split('=')[0]}`
          : `unknown command${quoteWord(command)}: expected emulator or tokens`,
      )
  }
}

function commandOf(argv: readonly string[]): string {
  const [first, second] = argv
  if (first === 'tokens' && second !== undefined && !second.startsWith('-'))
    return `tokens ${second}`
  return first ?? ''
}

// Every message goes through `printable`: API errors carry the server's text, and others may
// quote a file or a server too; none may forge a line or send the terminal a control.
function report(err: unknown, argv: readonly string[], io: ResolvedIo): number {
  if (err instanceof UsageError) {
    const command = err.command ? `m2m-guard ${err.command}` : 'm2m-guard'
    io.stderr.write(`${command}: ${printable(err.message)}\nRun '${command} --help' for usage.\n`)
    return EXIT.usage
  }
  const command = commandOf(argv)
  const prefix = command ? `m2m-guard ${command}` : 'm2m-guard'
  if (io.signal?.aborted) {
    io.stderr.write(`${prefix}: interrupted\n`)
    return io.signal.reason === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted
  }
  if (err instanceof M2MApiError) {
    // The client has already scrubbed anything key-shaped from these wire strings.
    const lines = [`${prefix}: the API answered ${err.status}`]
    for (const entry of err.errors) {
      const detail =
        entry.longMessage && entry.longMessage !== entry.message ? ` (${entry.longMessage})` : ''
      lines.push(`  ${printable(`${entry.code}: ${entry.message}${detail}`)}`)
    }
    if (err.errors.length === 0) lines.push(`  ${printable(err.message)}`)
    if (err.retryAfterMs !== undefined)
      lines.push(`  retry after: ${Math.ceil(err.retryAfterMs / 1000)} s`)
    const trace = err.clerkTraceId === undefined ? undefined : printable(err.clerkTraceId)
    lines.push(`  clerk trace id: ${trace ?? '(none in the response)'}`)
    io.stderr.write(`${lines.join('\n')}\n`)
    return EXIT.apiError
  }
  if (err instanceof M2MConnectionError) {
    io.stderr.write(`${prefix}: ${err.code.replace('_', ' ')}: ${printable(err.message)}\n`)
    return EXIT.apiError
  }
  const message = err instanceof Error ? err.message : String(err)
  io.stderr.write(`${prefix}: ${printable(message)}\n`)
  return EXIT.apiError
}
