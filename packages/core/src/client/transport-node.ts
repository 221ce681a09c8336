/**
 * Transport for Node: undici with one keep-alive pool per origin, shared by every client in the
 * process, so a verifier and an admin client talking to the same API reuse warm connections.
 */
import { errors, Pool } from 'undici'
import {
  BodyTooLargeError,
  MAX_BODY_BYTES,
  type Transport,
  type TransportResponse,
} from './transport.js'

/**
 * Which transport `#transport` resolved to, for diagnostics and tests.
 *
 * @example
 * expect(transportName).toBe(isNode ? 'undici' : 'fetch')
 */
export const transportName = 'undici' as const

const pools = new Map<string, Pool>()

function poolFor(origin: string): Pool {
  let pool = pools.get(origin)
  if (!pool) {
    // Idle sockets are unref'd by undici, so an open pool never keeps the process alive.
    // undici enforces the body cap itself (declared length and bytes received): one check per
    // chunk in its parser, no stream of our own to collect through.
    pool = new Pool(origin, {
      keepAliveTimeout: 10_000,
      keepAliveMaxTimeout: 60_000,
      maxResponseSize: MAX_BODY_BYTES,
    })
    pools.set(origin, pool)
  }
  return pool
}

/**
 * Sends one request through the shared undici pool of its origin.
 *
 * @example
 * const res = await send({ method: 'POST', origin, path: '/v1/m2m_tokens/verify', headers, body, abort })
 */
export const send: Transport = async function sendWithUndici(request) {
  const response = await poolFor(request.origin).request({
    method: request.method,
    path: request.path,
    headers: request.headers,
    body: request.body,
    // The EventEmitter form undici accepts: no AbortSignal per call (see CallAbort).
    signal: request.abort,
  })
  let consumed = false
  const result: TransportResponse = {
    status: response.statusCode,
    header: (name) => {
      const value = response.headers[name]
      return Array.isArray(value) ? value.join(', ') : value
    },
    text: () => {
      if (consumed) return Promise.reject(new Error('response body already read'))
      consumed = true
      // undici's own consumer: no async iterator and no copy into one more buffer.
      return response.body.text().catch(rethrowBodyError)
    },
  }
  return result
}

function rethrowBodyError(error: unknown): never {
  if (error instanceof errors.ResponseExceededMaxSizeError) throw new BodyTooLargeError()
  throw error
}

/**
 * Closes every pooled connection (for graceful shutdown; pools reopen on the next request).
 *
 * @example
 * await closeTransport()
 */
export async function closeTransport(): Promise<void> {
  const all = [...pools.values()]
  pools.clear()
  await Promise.all(all.map((pool) => pool.close()))
}
