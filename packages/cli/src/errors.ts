/**
 * A mistake in how the command was invoked: unknown command or flag, missing or bad value.
 * The CLI prints the message and a pointer to `--help`, then exits 2. Messages name flags, never
 * echo values, because a value may be a token or a secret key.
 *
 * @example
 * throw new UsageError('--limit must be an integer from 1 to 100', 'tokens list')
 */
export class UsageError extends Error {
  override name = 'UsageError'
  /** The command whose help the user should read, e.g. `tokens list`; empty for the top level. */
  readonly command: string
  constructor(message: string, command = '', options?: { cause?: unknown }) {
    super(message, options)
    this.command = command
  }
}
