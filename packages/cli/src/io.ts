/**
 * Where the CLI writes text: `process.stdout`, or a collector in tests.
 *
 * @example
 * let text = ''
 * const sink: TextSink = { write: (chunk) => (text += chunk) }
 */
export interface TextSink {
  write(chunk: string): unknown
}

/**
 * Everything the CLI touches outside itself, injectable so `runCli` runs in-process in tests.
 * Every field defaults to the real process.
 *
 * @example
 * const out: string[] = []
 * const code = await runCli(['--version'], { stdout: { write: (s) => out.push(s) } })
 */
export interface CliIo {
  /** @defaultValue process.stdout */
  stdout?: TextSink
  /** @defaultValue process.stderr */
  stderr?: TextSink
  /** Used as is, never merged with `process.env`. @defaultValue process.env */
  env?: Record<string, string | undefined>
  /**
   * Read by `tokens verify -`, up to 64 KiB; destroyed (when it has `destroy`) once `signal`
   * aborts during the read. @defaultValue process.stdin
   */
  stdin?: AsyncIterable<string | Uint8Array>
  /**
   * Aborting it stops `m2m-guard emulator` cleanly (exit 0), and cancels API calls in flight or
   * a read of stdin (exit 130; 143 when the abort reason is `'SIGTERM'`). The bin wires it to
   * SIGINT and SIGTERM, aborting with the signal's name.
   */
  signal?: AbortSignal
}

/**
 * `CliIo` with every default applied.
 *
 * @example
 * const io: ResolvedIo = resolveIo()
 */
export interface ResolvedIo {
  stdout: TextSink
  stderr: TextSink
  env: Record<string, string | undefined>
  stdin: AsyncIterable<string | Uint8Array>
  signal: AbortSignal | undefined
}

/**
 * Applies the process defaults to a partial `CliIo`.
 *
 * @example
 * const io = resolveIo({ env: {} }) // io.stdout === process.stdout
 */
export function resolveIo(io: CliIo = {}): ResolvedIo {
  return {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    stdin: io.stdin ?? process.stdin,
    signal: io.signal,
  }
}
