import type { M2MClient, M2MClientOptions } from '../types.js'
import { buildM2MClient } from './client.js'

/**
 * Creates a typed client for Clerk's four M2M token operations. Options are checked here, once:
 * a missing key or a bad option throws now, not on the first request.
 *
 * @param [options.secretKey] `ak_…` or `sk_…`; default CLERK_MACHINE_SECRET_KEY, then CLERK_SECRET_KEY.
 * @param [options.apiUrl='https://api.clerk.com'] API origin, with or without `/v1`; default CLERK_API_URL.
 * @param [options.timeoutMs=5000] Deadline of each call, retries included.
 * @param [options.retry={ maxRetries: 2, initialDelayMs: 100, maxDelayMs: 2000 }] Retry policy, or `false`.
 * @param [options.fetch] Replaces the built-in transport (undici on Node, global fetch elsewhere).
 * @throws {TypeError} when no secret key is given or found, naming both environment variables.
 * @throws {TypeError | RangeError} when an option is invalid, naming it.
 * @example
 * import { createM2MClient } from '@m2m-guard/core'
 *
 * const client = createM2MClient({ secretKey: process.env.CLERK_MACHINE_SECRET_KEY })
 * const { token } = await client.createToken({ secondsUntilExpiration: 600 })
 * const verified = await client.verifyToken({ token })
 * console.log(verified.subject, verified.scopes)
 */
export function createM2MClient(options?: M2MClientOptions): M2MClient {
  return buildM2MClient(options)
}
