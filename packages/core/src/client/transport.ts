/**
 * The contract between the client and its transports. `#transport` resolves to transport-node.ts
 * (undici) or transport-fetch.ts (global fetch) by package export conditions; both export `send`
 * with this signature, so the client never sniffs the runtime.
 */

/**
 * One HTTP exchange as the client asks for it.
 *
 * @example
 * const req: TransportRequest = { method: 'GET', origin, path: '/v1/m2m_tokens?subject=mch_…', headers, body: undefined, abort }
 */
export interface TransportRequest {
  method: 'GET' | 'POST'
  /** `https://api.clerk.com`: scheme, host and port, no trailing slash. */
  origin: string
  /** Path and query, starting with `/`. */
  path: string
  headers: Record<string, string>
  body: string | undefined
  /** Aborted when the call's deadline passes or the caller's signal aborts. */
  abort: CallAbort
}

/**
 * The abort of one client call: its deadline or the caller's signal. Cheap to create, unlike an
 * `AbortSignal`, which costs ~7 µs on Node 20 and as much again per listener: more than all the
 * rest of a call's own work. A transport that needs a real signal (fetch) reads `signal`, made on
 * first use; undici takes this object itself as the EventEmitter form of its `signal` option
 * (`aborted`, `reason`, `on`/`once`/`removeListener` of `'abort'`).
 *
 * @example
 * const abort = new CallAbort()
 * setTimeout(() => abort.abort(new Error('deadline')), 5_000)
 * await fetch(url, { signal: abort.signal })
 */
export class CallAbort {
  aborted = false
  reason: unknown = undefined
  private listeners: (() => void)[] | undefined = undefined
  private controller: AbortController | undefined = undefined

  /** A standard signal mirroring this abort, created on first use. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController()
      if (this.aborted) this.controller.abort(this.reason)
    }
    return this.controller.signal
  }

  /** Aborts once; later calls do nothing. Listeners run synchronously, a throwing one is ignored. */
  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    const listeners = this.listeners
    this.listeners = undefined
    if (listeners !== undefined) {
      for (const listener of listeners) {
        try {
          listener()
        } catch {}
      }
    }
    this.controller?.abort(reason)
  }

  /** EventEmitter subset (undici): `'abort'` fires at most once, so `on` and `once` agree. */
  on(event: string, listener: () => void): this {
    if (event !== 'abort' || this.aborted) return this
    if (this.listeners === undefined) this.listeners = [listener]
    else this.listeners.push(listener)
    return this
  }

  once(event: string, listener: () => void): this {
    return this.on(event, listener)
  }

  removeListener(event: string, listener: () => void): this {
    const listeners = this.listeners
    if (event === 'abort' && listeners !== undefined) {
      const index = listeners.indexOf(listener)
      if (index >= 0) listeners.splice(index, 1)
    }
    return this
  }

  off(event: string, listener: () => void): this {
    return this.removeListener(event, listener)
  }
}

/**
 * What came back. The body is read separately so a failed read still leaves the status known.
 *
 * @example
 * const res: TransportResponse = await send(req)
 * if (res.status === 429) console.log(res.header('retry-after'))
 */
export interface TransportResponse {
  status: number
  /** A response header by lower-case name, or `undefined`. */
  header(name: string): string | undefined
  /** The body as UTF-8 text; rejects when the connection drops mid-body or the body exceeds the cap. */
  text(): Promise<string>
}

/**
 * Sends one request; rejects on network failure or abort (never on an HTTP status).
 *
 * @example
 * const res = await send({ method: 'GET', origin, path: '/v1/m2m_tokens?subject=mch_…', headers, body: undefined, abort })
 */
export type Transport = (request: TransportRequest) => Promise<TransportResponse>

/**
 * Bodies larger than this are refused: a token page of 100 entries is far below it.
 *
 * @example
 * if (size > MAX_BODY_BYTES) throw new BodyTooLargeError()
 */
export const MAX_BODY_BYTES: number = 8 * 1024 * 1024

/**
 * Thrown by `text()` when a body is over {@link MAX_BODY_BYTES}.
 *
 * @example
 * await expect(collectText(huge)).rejects.toBeInstanceOf(BodyTooLargeError)
 */
export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError'
  constructor() {
    super(`response body exceeds ${MAX_BODY_BYTES} bytes`)
  }
}

/**
 * Collects byte chunks into UTF-8 text, refusing more than {@link MAX_BODY_BYTES}.
 *
 * @example
 * const text = await collectText(response.body)
 */
export async function collectText(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = []
  let size = 0
  for await (const chunk of chunks) {
    size += chunk.byteLength
    if (size > MAX_BODY_BYTES) throw new BodyTooLargeError()
    parts.push(chunk)
  }
  const all = new Uint8Array(size)
  let at = 0
  for (const part of parts) {
    all.set(part, at)
    at += part.byteLength
  }
  return new TextDecoder().decode(all)
}
