/**
 * Errors of the Workers stores. The verifier treats any error from a `CacheStore` as a miss and
 * reports it as a `store_error` event, so these messages are what operators read: they name the
 * problem and never contain a token, a cache key or a stored value.
 */

/**
 * Why a store operation gave no usable answer. `switch (err.code)` narrows.
 *
 * @example
 * const code: CloudflareStoreErrorCode = 'invalid_value'
 */
export type CloudflareStoreErrorCode =
  /** The key is not one the verifier makes (empty, too long, not printable ASCII, or a raw token). */
  | 'invalid_key'
  /** A stored value failed validation: corrupted, foreign, oversized or of another version. */
  | 'invalid_value'
  /** A value to store is larger than the store's bound; it is not shared. */
  | 'value_too_large'

/**
 * A KV or Cache API store operation failed. The underlying failure, if any, is in `cause`;
 * failures of KV or the Cache API themselves (limits, outages) reach the verifier as they are.
 *
 * @example
 * try { await store.get(key) } catch (err) {
 *   if (err instanceof CloudflareStoreError && err.code === 'invalid_value') console.warn(err.message)
 * }
 */
export class CloudflareStoreError extends Error {
  override name = 'CloudflareStoreError'
  readonly code: CloudflareStoreErrorCode
  constructor(code: CloudflareStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
