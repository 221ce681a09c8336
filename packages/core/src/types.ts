/**
 * Public types of the Clerk M2M API client. Wire names are snake_case; these are camelCase.
 * Timestamps stay milliseconds since the epoch, as on the wire.
 */

/**
 * Claims attached to an M2M token. Extend it by declaration merging to type your claims:
 *
 * @example
 * declare module '@m2m-guard/core' {
 *   interface M2MClaims { tenant: string }
 * }
 */
export interface M2MClaims {
  [claim: string]: unknown
}

/**
 * Format of an M2M token: opaque `mt_…` secrets (revocable) or self-contained JWTs.
 *
 * @example
 * await client.createToken({ tokenFormat: 'jwt' satisfies M2MTokenFormat })
 */
export type M2MTokenFormat = 'opaque' | 'jwt'

/**
 * An M2M token as the API describes it (the spec's `machine_to_machine_token`).
 *
 * @example
 * const token: M2MToken = await client.verifyToken({ token: 'mt_…' })
 * console.log(token.subject, token.expiration)
 */
export interface M2MToken {
  object: 'machine_to_machine_token'
  /** `mt_` + 32 hex characters. */
  id: string
  /** The machine that created the token, `mch_…`. */
  subject: string
  /**
   * Custom claims: an object for tokens minted by `createToken`. The spec allows any JSON value,
   * so a token minted by other means may carry an array or a scalar; it is passed through as sent.
   */
  claims: M2MClaims | null
  /** Machines (`mch_…`) this token may call. */
  scopes: string[]
  revoked: boolean
  revocationReason: string | null
  expired: boolean
  /** Expiry in ms since the epoch, or `null` for a token that never expires. */
  expiration: number | null
  lastUsedAt: number | null
  createdAt: number
  updatedAt: number
}

/**
 * A freshly created token: the record plus its secret, returned once.
 *
 * @example
 * const { token } = await client.createToken({ secondsUntilExpiration: 600 })
 */
export type M2MTokenWithSecret = M2MToken & { token: string }

/**
 * Parameters of `createToken` (`POST /m2m_tokens`).
 *
 * @example
 * await client.createToken({ secondsUntilExpiration: 3600, claims: { job: 'nightly' } })
 */
export interface CreateTokenParams {
  /** Lifetime in seconds, > 0. `null` asks for a token that never expires. Default: the machine's TTL. */
  secondsUntilExpiration?: number | null
  claims?: M2MClaims | null
  /** @defaultValue 'opaque' */
  tokenFormat?: M2MTokenFormat
  /** Reuse a live token with at least this many seconds left (opaque only); must be below the lifetime. */
  minRemainingTtlSeconds?: number
}

/**
 * Parameters of `listTokens` (`GET /m2m_tokens`).
 *
 * @example
 * await client.listTokens({ subject: 'mch_…', limit: 50 })
 */
export interface ListTokensParams {
  /** The machine whose tokens to list, `mch_…`. */
  subject: string
  /** @defaultValue false */
  revoked?: boolean
  /** @defaultValue false */
  expired?: boolean
  /** 1–100. @defaultValue 10 */
  limit?: number
  /** ≥ 0. @defaultValue 0 */
  offset?: number
}

/**
 * Parameters of `listAllTokens`: `listTokens` without paging, which it does itself.
 *
 * @example
 * for await (const token of client.listAllTokens({ subject: 'mch_…' })) console.log(token.id)
 */
export interface ListAllTokensParams {
  subject: string
  revoked?: boolean
  expired?: boolean
  /** Page size, 1–100. @defaultValue 100 */
  pageSize?: number
}

/**
 * A page of tokens.
 *
 * @example
 * const { m2mTokens, totalCount } = await client.listTokens({ subject: 'mch_…' })
 */
export interface M2MTokenList {
  m2mTokens: M2MToken[]
  totalCount: number
}

/**
 * Parameters of `revokeToken` (`POST /m2m_tokens/{m2m_token_id}/revoke`).
 *
 * @example
 * await client.revokeToken({ m2mTokenId: 'mt_…', revocationReason: 'rotated' })
 */
export interface RevokeTokenParams {
  /** `mt_` + 32 hex characters. */
  m2mTokenId: string
  revocationReason?: string | null
}

/**
 * Parameters of `verifyToken` (`POST /m2m_tokens/verify`).
 *
 * @example
 * await client.verifyToken({ token: 'mt_…' })
 */
export interface VerifyTokenParams {
  token: string
}

/**
 * Retry policy for 429, 5xx and connection errors: full-jitter exponential backoff that honours
 * `Retry-After`, always inside the call's deadline. `false` disables retries.
 *
 * @example
 * createM2MClient({ retry: { maxRetries: 3, initialDelayMs: 50 } })
 */
export interface RetryOptions {
  /** @defaultValue 2 */
  maxRetries?: number
  /** @defaultValue 100 */
  initialDelayMs?: number
  /** @defaultValue 2000 */
  maxDelayMs?: number
  /** Retry when the connection failed or was reset. @defaultValue true */
  retryConnectionErrors?: boolean
}

/**
 * Per-call options, the last argument of every client method.
 *
 * @example
 * await client.verifyToken({ token }, { timeoutMs: 1000, signal: AbortSignal.timeout(2000) })
 */
export interface RequestOptions {
  signal?: AbortSignal
  /** Deadline for the whole call, retries included. @defaultValue the client's timeoutMs */
  timeoutMs?: number
  retry?: RetryOptions | false
}

/**
 * The subset of the Fetch API the client needs; lets tests and unusual runtimes inject their own.
 *
 * @example
 * const logged: FetchLike = (url, init) => (console.log(init.method, new URL(url).pathname), fetch(url, init))
 * createM2MClient({ fetch: logged })
 */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>

/**
 * Options of `createM2MClient`. Explicit options win over the environment.
 *
 * @example
 * createM2MClient({ secretKey: process.env.CLERK_SECRET_KEY, apiUrl: 'http://127.0.0.1:4010' })
 */
export interface M2MClientOptions {
  /** `ak_…` (machine) or `sk_…` (instance). Default: CLERK_MACHINE_SECRET_KEY, then CLERK_SECRET_KEY. */
  secretKey?: string
  /** API origin, with or without `/v1`. Default: CLERK_API_URL, then https://api.clerk.com */
  apiUrl?: string
  /** @defaultValue 5000 */
  timeoutMs?: number
  retry?: RetryOptions | false
  /** Replaces the built-in transport (undici on Node, fetch elsewhere). */
  fetch?: FetchLike
}

/**
 * Typed client for Clerk's four M2M token operations.
 *
 * @example
 * const client = createM2MClient()
 * const created = await client.createToken({ secondsUntilExpiration: 600 })
 * const verified = await client.verifyToken({ token: created.token })
 */
export interface M2MClient {
  /** The resolved API base, ending in `/v1`. */
  readonly apiUrl: string
  /**
   * A short, non-reversible fingerprint of the secret key (hex), so caches can be namespaced per
   * key without ever holding the key itself.
   */
  readonly keyFingerprint: string
  createToken(params?: CreateTokenParams, options?: RequestOptions): Promise<M2MTokenWithSecret>
  listTokens(params: ListTokensParams, options?: RequestOptions): Promise<M2MTokenList>
  /**
   * Every token of a subject, paging itself. Each id is yielded at most once, and every token
   * present for the whole iteration exactly once, even when the loop revokes what it is given.
   */
  listAllTokens(params: ListAllTokensParams, options?: RequestOptions): AsyncIterable<M2MToken>
  revokeToken(params: RevokeTokenParams, options?: RequestOptions): Promise<M2MToken>
  verifyToken(params: VerifyTokenParams, options?: RequestOptions): Promise<M2MToken>
}
