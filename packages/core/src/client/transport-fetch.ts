/**
 * Transport for runtimes without undici (Bun, workerd, Deno, browsers): the global `fetch`,
 * looked up per call so a polyfill installed after import still applies.
 */
import { fetchTransport } from './fetch-adapter.js'
import type { Transport } from './transport.js'

/**
 * Which transport `#transport` resolved to, for diagnostics and tests.
 *
 * @example
 * expect(transportName).toBe(isNode ? 'undici' : 'fetch')
 */
export const transportName = 'fetch' as const

/**
 * Sends one request with the global `fetch`.
 *
 * @example
 * const res = await send({ method: 'POST', origin, path: '/v1/m2m_tokens/verify', headers, body, abort })
 */
export const send: Transport = fetchTransport((input, init) => globalThis.fetch(input, init))

/**
 * Nothing to close: `fetch` owns its connections. Present so both transports export the same API.
 *
 * @example
 * await closeTransport()
 */
export async function closeTransport(): Promise<void> {}
