/**
 * `@m2m-guard/cli`: the `m2m-guard` command, also callable in-process through {@link runCli}.
 */
export type { CommandSpec, OptionSpec } from './args.js'
export type { EmulatorConnectionInfo } from './commands/emulator.js'
export { UsageError } from './errors.js'
export type { CliIo, TextSink } from './io.js'
export { EXIT, runCli } from './run.js'
export { VERSION } from './version.js'
