/**
 * Records everything a process could leak through, and searches it for secrets. The channels:
 * console and stdout/stderr writes, lines of a framework's own logger (`log`: Fastify's pino,
 * given a stream that records), `onEvent` events, errors handed to `onError` or thrown
 * (inspected in full: message, stack, own properties, the `cause` chain), and HTTP answers.
 */
import { formatWithOptions, inspect } from 'node:util'

export type Channel = 'console' | 'stdout' | 'stderr' | 'log' | 'event' | 'error' | 'response'

interface Record {
  channel: Channel
  text: string
}

/**
 * A leak detector: feed it secrets (`addSecret`) and observations (`record`), then `assertClean`.
 *
 * @example
 * const capture = new LeakCapture()
 * capture.addSecret(token)
 * capture.record('event', event)
 * capture.assertClean()
 */
export class LeakCapture {
  private readonly records: Record[] = []
  private readonly secrets = new Set<string>()
  private restore: Array<() => void> = []
  // assertClean runs after every answer: check only what is new since the last call, or a suite
  // with thousands of records and hundreds of secrets turns quadratic.
  private checkedRecords = 0
  private readonly checkedSecrets = new Set<string>()

  /** A secret, and (for tokens) its random part, which must not appear either. */
  addSecret(secret: string): void {
    // Shorter strings could occur by chance in ordinary text; real tokens and keys are longer.
    if (secret.length < 16) return
    this.secrets.add(secret)
    const random = /^(?:mt_|m2m_|sk_test_|sk_live_|ak_)(.{16,})$/.exec(secret)?.[1]
    if (random !== undefined) this.secrets.add(random)
  }

  /** Adds the credential in each `Authorization` value (the whole value, and after the scheme). */
  addAuthorization(values: readonly string[]): void {
    for (const value of values) {
      this.addSecret(value.trim())
      const space = value.indexOf(' ')
      if (space > 0) this.addSecret(value.slice(space + 1).trim())
    }
  }

  record(channel: Channel, value: unknown): void {
    const text =
      typeof value === 'string'
        ? value
        : value instanceof Error
          ? inspect(value, { depth: 10, showHidden: true })
          : `${JSON.stringify(value)} ${inspect(value, { depth: 10 })}`
    this.records.push({ channel, text })
  }

  /**
   * Routes console.* and process.stdout/stderr writes through the recorder. They are still
   * printed unless `echo` is false (a suite whose apps log every rejection would bury its own
   * report); a leak found in them is reported by `assertClean`, masked, either way.
   */
  captureConsole({ echo = true }: { echo?: boolean } = {}): void {
    for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
      const original = console[method]
      console[method] = (...args: unknown[]) => {
        // As console formats it (`%s`, `%o`…), with errors and objects inspected in full.
        this.record('console', formatWithOptions({ depth: 10 }, ...args))
        if (echo) original.apply(console, args)
      }
      this.restore.push(() => {
        console[method] = original
      })
    }
    for (const [stream, channel] of [
      [process.stdout, 'stdout'],
      [process.stderr, 'stderr'],
    ] as const) {
      const original = stream.write
      stream.write = ((chunk: unknown, ...rest: unknown[]) => {
        this.record(
          channel,
          typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'),
        )
        if (echo) return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest)
        // Not printed, but the write's callback (last argument, if any) still runs.
        const callback = rest[rest.length - 1]
        if (typeof callback === 'function') queueMicrotask(() => callback())
        return true
      }) as typeof stream.write
      this.restore.push(() => {
        stream.write = original
      })
    }
  }

  releaseConsole(): void {
    for (const undo of this.restore.splice(0)) undo()
  }

  /**
   * How many observations were recorded on `channel`, or only those matching `pattern` (a suite
   * that saw nothing proved nothing).
   */
  count(channel: Channel, pattern?: RegExp): number {
    return this.records.filter(
      (r) => r.channel === channel && (pattern === undefined || pattern.test(r.text)),
    ).length
  }

  /**
   * Throws if any secret occurs in any observation. The message names the channel and shows the
   * surroundings with the secret masked, so the failure report does not leak it either.
   */
  assertClean(): void {
    const newSecrets = [...this.secrets].filter((secret) => !this.checkedSecrets.has(secret))
    for (const [index, { channel, text }] of this.records.entries()) {
      const isNew = index >= this.checkedRecords
      if (isNew) {
        // Any opaque token secret (mt_ + 48 base62), even one this capture was never told about
        // (a token minted upstream while the answer was cut, say). Token ids (mt_ + 32 hex) are fine.
        const stray = /mt_[A-Za-z0-9]{48}/.exec(text)
        if (stray) {
          throw new Error(
            `a token-shaped secret leaked through ${channel} at offset ${stray.index}`,
          )
        }
      }
      for (const secret of isNew ? this.secrets : newSecrets) {
        const at = text.indexOf(secret)
        if (at === -1) continue
        const around = text
          .slice(Math.max(0, at - 120), at + secret.length + 120)
          .replaceAll(secret, `[SECRET ${secret.length} chars]`)
        throw new Error(`a secret leaked through ${channel}: …${around}…`)
      }
    }
    this.checkedRecords = this.records.length
    for (const secret of newSecrets) this.checkedSecrets.add(secret)
  }
}
