/**
 * The contract between the client and its transports. `#transport` resolves to transport-node.ts
 * (undici) or transport-fetch.ts (global fetch) by package export conditions; both export `send`
 * with this signature, so the client never sniffs the runtime.
 */

/**
 * One HTTP exchange as the client asks for it.
 *
 * @example
 * const req: TransportRequest = { method: 'GET', origin, path: '/v1/m2m_tokens?subject=mch_…', headers, body: undefined, signal }
 */
export interface TransportRequest {
  method: 'GET' | 'POST'
  /** `https://api.clerk.com`: scheme, host and port, no trailing slash. */
  origin: string
  /** Path and query, starting with `/`. */
  path: string
  headers: Record<string, string>
  body: string | undefined
  signal: AbortSignal
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
 * const res = await send({ method: 'GET', origin, path: '/v1/m2m_tokens?subject=mch_…', headers, body: undefined, signal })
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
