/**
 * Hono middleware (Node, Bun, Cloudflare Workers) over `@m2m-guard/core`: it reads the request,
 * asks the core's guard, and throws the core's answer as an `HTTPException`. Every decision
 * (parsing, policy, rendering) is in the core.
 */
import {
  callObserver,
  createM2MGuard,
  hasM2MEnv,
  M2M_ENV_VARIABLES,
  type M2MAuth,
  type M2MAuthError,
  type M2MGuard,
  type M2MGuardOptions,
  type RenderedAuthError,
  renderAuthError,
  toM2MAuthError,
  validateM2MGuardOptions,
  verifierOptionsFromEnv,
} from '@m2m-guard/core'
import type { Context, MiddlewareHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'

declare module 'hono' {
  interface ContextVariableMap {
    /** The verified M2M identity, set by `requireM2M()` (not set on optional routes without credentials). */
    m2m: M2MAuth
  }
}

export type { M2MAuth, M2MAuthErrorCode, M2MClaims } from '@m2m-guard/core'
export { M2MAuthError } from '@m2m-guard/core'

/**
 * Options of `requireM2M`: verifier options (or a shared `verifier`), the route policy
 * (`allowedSubjects`, `requireClaims`, `optional`), `getToken`, `realm`, `onError`. Callbacks
 * receive the Hono `Context`.
 *
 * @example
 * const options: RequireM2MOptions = { machineId: 'mch_reports', allowedSubjects: ['mch_cron'] }
 */
export type RequireM2MOptions = M2MGuardOptions<Context>

/**
 * The middleware `requireM2M` returns: a Hono `MiddlewareHandler`, plus `close()` to release the
 * verifiers it built (timers, connection pool) on Node when the server shuts down.
 *
 * @example
 * const guard: M2MMiddleware = requireM2M()
 * process.on('SIGTERM', () => void guard.close())
 */
export interface M2MMiddleware extends MiddlewareHandler {
  close(): Promise<void>
}

type StatusOf = NonNullable<ConstructorParameters<typeof HTTPException>[0]>

function toHTTPException(response: RenderedAuthError, cause: unknown): HTTPException {
  const res = new Response(response.bodyText, {
    status: response.status,
    headers: response.headers,
  })
  return new HTTPException(response.status as StatusOf, {
    res,
    message: response.body.error_description,
    cause,
  })
}

// Workers put variables in c.env (bindings); Node and Bun in process.env. Hono's env() helper
// reads process.env on Node even when the app was given bindings, so look at c.env first.
// On Node, c.env is @hono/node-server's `{ incoming, outgoing }`: none of the four names is set,
// which four property reads tell without calling `hasM2MEnv` (and its closure) per request.
function bindingsOf(c: Context): Readonly<Record<string, unknown>> | undefined {
  const env = c.env as Record<string, unknown> | undefined
  if (typeof env !== 'object' || env === null) return undefined
  if (
    env.CLERK_MACHINE_SECRET_KEY === undefined &&
    env.CLERK_SECRET_KEY === undefined &&
    env.CLERK_API_URL === undefined &&
    env.CLERK_JWT_KEY === undefined
  ) {
    return undefined
  }
  return hasM2MEnv(env) ? env : undefined
}

// process.env is a getter per variable on Node (1–2 µs for the four), so it is read once, at the
// first request that needs it, and the copy is used from then on.
function snapshotProcessEnv(): Readonly<Record<string, unknown>> {
  const source = (globalThis as { process?: { env?: Record<string, unknown> } }).process?.env
  const snapshot: Record<string, unknown> = {}
  if (source !== undefined) {
    for (const name of M2M_ENV_VARIABLES) {
      const value = source[name]
      if (value !== undefined) snapshot[name] = value
    }
  }
  return Object.freeze(snapshot)
}

/**
 * Guards Hono routes with Clerk M2M tokens, on Node, Bun and Cloudflare Workers. The secret key,
 * API URL and JWT key come from `c.env` on Workers and `process.env` elsewhere
 * (`CLERK_MACHINE_SECRET_KEY`, `CLERK_SECRET_KEY`, `CLERK_API_URL`, `CLERK_JWT_KEY`); explicit
 * options win. `process.env` is read once, on the first request without bindings: set the
 * variables before the server starts serving. Because Workers bindings exist only inside a request, the verifier is built on the
 * first request and then reused for every request that sees the same values of those variables:
 * once per isolate, never per request. Static options are validated at once (a `TypeError` names
 * a wrong option). On success `c.get('m2m')` is the identity; a rejection is thrown as an
 * `HTTPException` carrying the behaviour-table response, so `app.onError` sees it and Hono's
 * default handler sends it as is.
 *
 * @param [options={}] - See `RequireM2MOptions`; or a function of the context returning them,
 * called on the first request of each environment (read bindings in it, not per-request data).
 * @throws TypeError naming a wrong static option.
 * @example
 * import { Hono } from 'hono'
 * import { requireM2M } from '@m2m-guard/hono'
 *
 * const app = new Hono()
 * app.use('/internal/*', requireM2M((c) => ({ machineId: c.env.MACHINE_ID })))
 * app.get('/internal/report', (c) => c.json({ caller: c.get('m2m').subject }))
 * export default app
 */
export function requireM2M(
  options: RequireM2MOptions | ((c: Context) => RequireM2MOptions) = {},
): M2MMiddleware {
  const context = { name: 'requireM2M' }
  if (typeof options !== 'function') validateM2MGuardOptions(options, context)
  // One guard (and verifier) per distinct environment, found by the values that configure it, so
  // even a fresh env object per request cannot make a verifier per request. The values are
  // compared, not joined into a string key: that string would hold the secret key, built anew on
  // every request.
  type Entry = M2MGuard<Context> | { failed: M2MAuthError; options: RequireM2MOptions | undefined }
  const guards: { values: unknown[]; entry: Entry }[] = []
  // The guard of process.env (Node, Bun): its variables are read once, on the first request
  // whose c.env has none of them; every later such request uses this entry directly.
  let processEntry: Entry | undefined
  // The bindings' entry used last (Workers): one isolate has one set of bindings, so this is the
  // one nearly every request needs; comparing its four values allocates nothing.
  let last: { values: unknown[]; entry: Entry } | undefined

  function build(c: Context, env: Readonly<Record<string, unknown>>): Entry {
    let resolved: RequireM2MOptions | undefined
    try {
      resolved = typeof options === 'function' ? options(c) : options
      // A shared verifier was configured by its owner; otherwise the environment fills in
      // what the options leave out.
      const withEnv =
        resolved.verifier === undefined
          ? { ...verifierOptionsFromEnv(env), ...definedOnly(resolved) }
          : resolved
      return createM2MGuard<Context>(withEnv, context)
    } catch (err) {
      // Remember the failure: retrying would build (and fail) once per request. Every request
      // then answers 500; the reason (an option's name, never a value) is told once, loudly,
      // since Express and Fastify would have thrown it at startup.
      const failed = toM2MAuthError(err)
      const reason = err instanceof Error ? err.message : 'the options could not be used'
      console.error(`@m2m-guard/hono: requireM2M cannot verify any request: ${reason}`)
      callObserver(resolved?.onEvent, { type: 'misconfigured', status: 0, message: reason })
      return { failed, options: resolved }
    }
  }

  function entryOf(c: Context, env: Readonly<Record<string, unknown>>): Entry {
    const values = M2M_ENV_VARIABLES.map((name) => env[name] ?? null)
    let found = guards.find((g) => g.values.every((value, i) => Object.is(value, values[i])))
    if (found === undefined) {
      found = { values, entry: build(c, env) }
      guards.push(found)
    }
    return found.entry
  }

  function sameValues(values: readonly unknown[], env: Readonly<Record<string, unknown>>): boolean {
    for (let i = 0; i < M2M_ENV_VARIABLES.length; i++) {
      if (!Object.is(values[i], env[M2M_ENV_VARIABLES[i] as string] ?? null)) return false
    }
    return true
  }

  function guardFor(c: Context): M2MGuard<Context> {
    const bindings = bindingsOf(c)
    let entry: Entry
    if (bindings === undefined) {
      entry = processEntry ??= entryOf(c, snapshotProcessEnv())
    } else if (last !== undefined && sameValues(last.values, bindings)) {
      entry = last.entry
    } else {
      entry = entryOf(c, bindings)
      last = guards.find((g) => g.entry === entry)
    }
    if ('failed' in entry) {
      // No guard exists to call onError, so it is called here: it sees every rejection.
      callObserver(entry.options?.onError, entry.failed, c)
      throw entry.failed
    }
    return entry
  }

  // Not named requireM2M: the bundler would rename a shadowing name, and stack traces with it.
  async function requireM2MMiddleware(c: Context, next: () => Promise<void>): Promise<void> {
    let guard: M2MGuard<Context>
    try {
      guard = guardFor(c)
    } catch (err) {
      // Fail closed: a guard that cannot be built answers 500, never lets the request through.
      const failed = toM2MAuthError(err)
      throw toHTTPException(renderAuthError(failed), failed)
    }
    const result = await guard.authenticate({
      method: c.req.method,
      authorization: c.req.header('authorization'),
      native: c,
    })
    if (!result.ok) throw toHTTPException(result.response, result.error)
    if (result.auth) c.set('m2m', result.auth)
    await next()
  }

  return Object.assign(requireM2MMiddleware, {
    async close() {
      processEntry = undefined
      last = undefined
      const built = guards.splice(0)
      await Promise.all(built.map(({ entry }) => ('failed' in entry ? undefined : entry.close())))
    },
  })
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<T>
}
