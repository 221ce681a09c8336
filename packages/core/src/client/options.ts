/**
 * Client options resolved once, at construction: explicit options win over the environment, and
 * every mistake is reported there, naming the option.
 */

import { nearestKey } from '../hint.js'
import type { FetchLike, M2MClientOptions, RetryOptions } from '../types.js'
import { validateRetryOptions, validateTimeout } from './validation.js'

/**
 * Where requests go when neither the option nor CLERK_API_URL says otherwise.
 *
 * @example
 * parseApiUrl(DEFAULT_API_URL) // { origin: 'https://api.clerk.com', basePath: '/v1' }
 */
export const DEFAULT_API_URL = 'https://api.clerk.com'
/**
 * Per-call deadline, retries included.
 *
 * @example
 * resolveClientOptions({ secretKey: 'sk_test_…' }).timeoutMs === DEFAULT_TIMEOUT_MS // true
 */
export const DEFAULT_TIMEOUT_MS = 5000

/**
 * Options with defaults applied.
 *
 * @example
 * const { origin, basePath }: ResolvedClientOptions = resolveClientOptions(options)
 */
export interface ResolvedClientOptions {
  secretKey: string
  /** `https://api.clerk.com` */
  origin: string
  /** `/v1`, or `/prefix/v1` behind a proxy. */
  basePath: string
  timeoutMs: number
  retry: RetryOptions | false | undefined
  fetch: FetchLike | undefined
}

type Env = Record<string, string | undefined>

/**
 * The process environment where there is one (Node, Bun, workerd with nodejs_compat), read through
 * `globalThis` so no runtime needs a `process` global.
 *
 * @example
 * readEnv().CLERK_API_URL
 */
export function readEnv(): Env {
  const env = (globalThis as { process?: { env?: Env } }).process?.env
  return env ?? {}
}

/**
 * A configured string as the client reads it: trimmed, and blank means unset (so the environment
 * is read next). The verifier reads its JWT settings the same way.
 *
 * @internal
 * @example
 * nonEmpty(' sk_test_abc\n') // 'sk_test_abc'
 */
export function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim()
}

/**
 * Splits an API URL into origin and a base path that ends in `/v1` (appended unless present).
 *
 * @throws {TypeError} when it is not an absolute http(s) URL without credentials, query or fragment.
 * @example
 * parseApiUrl('http://127.0.0.1:4010/') // { origin: 'http://127.0.0.1:4010', basePath: '/v1' }
 */
export function parseApiUrl(raw: string): { origin: string; basePath: string } {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new TypeError(
      'createM2MClient: `apiUrl` must be an absolute URL such as https://api.clerk.com',
    )
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError('createM2MClient: `apiUrl` must use http: or https:')
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new TypeError(
      'createM2MClient: `apiUrl` must not contain credentials, a query or a fragment; pass the key as `secretKey`',
    )
  }
  let basePath = url.pathname.replace(/\/+$/, '')
  if (!/\/v1$/.test(basePath)) basePath += '/v1'
  return { origin: url.origin, basePath }
}

const CLIENT_OPTION_KEYS = [
  'secretKey',
  'apiUrl',
  'timeoutMs',
  'retry',
  'fetch',
] as const satisfies readonly (keyof M2MClientOptions)[]

/**
 * Applies defaults and the environment to client options.
 *
 * @throws {TypeError | RangeError} naming the option; when no key is found, naming both variables.
 * @example
 * resolveClientOptions({ apiUrl: 'http://127.0.0.1:4010' }, { CLERK_SECRET_KEY: 'sk_test_…' })
 */
export function resolveClientOptions(
  options: M2MClientOptions | undefined,
  env: Env = readEnv(),
): ResolvedClientOptions {
  const where = 'createM2MClient'
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TypeError(`${where}: options must be an object`)
  }
  const o = options ?? {}
  // A misspelt `apiUrl` would silently talk to the production API: unknown keys are errors.
  for (const key of Object.keys(o)) {
    if (!(CLIENT_OPTION_KEYS as readonly string[]).includes(key)) {
      const near = nearestKey(key, CLIENT_OPTION_KEYS)
      throw new TypeError(
        `${where}: unknown option \`${key}\`${near === undefined ? '' : ` (did you mean \`${near}\`?)`}`,
      )
    }
  }
  if (o.secretKey !== undefined && typeof o.secretKey !== 'string') {
    throw new TypeError(`${where}: \`secretKey\` must be a string`)
  }
  const secretKey =
    nonEmpty(o.secretKey) ??
    nonEmpty(env.CLERK_MACHINE_SECRET_KEY) ??
    nonEmpty(env.CLERK_SECRET_KEY)
  if (secretKey === undefined) {
    throw new TypeError(
      `${where}: no secret key. Pass \`secretKey\`, or set CLERK_MACHINE_SECRET_KEY (a machine key, ak_…) or CLERK_SECRET_KEY (an instance key, sk_…)`,
    )
  }
  // A key with spaces or control characters would break (or inject into) the Authorization header.
  if (!/^[\x21-\x7e]+$/.test(secretKey)) {
    throw new TypeError(
      `${where}: the secret key contains characters a key never has (whitespace or non-ASCII)`,
    )
  }
  // Clerk's secrets are instance keys (sk_…) and machine keys (ak_…). Anything else would only
  // show up as a 500 on every request; a publishable key (pk_…) is the likeliest mix-up.
  if (!/^(?:sk|ak)_/.test(secretKey)) {
    throw new TypeError(
      secretKey.startsWith('pk_')
        ? `${where}: the secret key is a publishable key (pk_…); use an instance secret key (sk_…) or a machine key (ak_…)`
        : `${where}: the secret key must be an instance secret key (sk_…) or a machine key (ak_…)`,
    )
  }
  if (o.apiUrl !== undefined && typeof o.apiUrl !== 'string') {
    throw new TypeError(`${where}: \`apiUrl\` must be a string`)
  }
  const { origin, basePath } = parseApiUrl(
    nonEmpty(o.apiUrl) ?? nonEmpty(env.CLERK_API_URL) ?? DEFAULT_API_URL,
  )
  const timeoutMs =
    o.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : validateTimeout(where, o.timeoutMs)
  const retry = o.retry === undefined ? undefined : validateRetryOptions(where, o.retry)
  if (o.fetch !== undefined && typeof o.fetch !== 'function') {
    throw new TypeError(`${where}: \`fetch\` must be a function`)
  }
  return { secretKey, origin, basePath, timeoutMs, retry, fetch: o.fetch }
}
