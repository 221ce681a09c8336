/**
 * Errors of the Redis tier. The verifier treats any error from a `CacheStore` as a miss and
 * reports it as a `store_error` event, so these messages are what operators read: they name the
 * problem and never contain a token, a cache key or a stored value.
 */

/**
 * Why a Redis operation did not give a usable answer. `switch (err.code)` narrows.
 *
 * @example
 * const retryable = (code: RedisTierErrorCode) => code === 'unavailable' || code === 'timeout'
 */
export type RedisTierErrorCode =
  /** The connection is not ready (connecting, reconnecting, closed) or cooling down after a timeout. */
  | 'unavailable'
  /** Redis did not answer within `commandTimeoutMs`. */
  | 'timeout'
  /** Redis answered with an error, or the connection dropped mid-command. */
  | 'command_failed'
  /** A stored value failed validation (corrupted, foreign, oversized or failed its HMAC). */
  | 'invalid_value'
  /** A value to store is larger than `maxValueBytes`. */
  | 'value_too_large'
  /** The store or bus was closed. */
  | 'closed'

/**
 * An operation of the Redis tier failed. The underlying failure, if any, is in `cause`.
 *
 * @example
 * try { await store.get(key) } catch (err) {
 *   if (err instanceof RedisTierError && err.code === 'timeout') metrics.increment('redis.timeout')
 * }
 */
export class RedisTierError extends Error {
  override name = 'RedisTierError'
  readonly code: RedisTierErrorCode
  constructor(code: RedisTierErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
