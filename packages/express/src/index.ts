/**
 * Express 4 and 5 middleware over `@m2m-guard/core`: it reads the request, asks the core's guard,
 * and writes the core's answer. Every decision (parsing, policy, rendering) is in the core.
 */

import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  authorizationOfNodeRequest,
  createM2MGuard,
  type M2MAuth,
  M2MAuthError,
  type M2MGuardOptions,
  type M2MVerifier,
} from '@m2m-guard/core'
import type { Request } from 'express'

declare global {
  namespace Express {
    interface Request {
      /** The verified M2M identity, set by `requireM2M()`; absent on optional routes without credentials. */
      m2m?: M2MAuth
    }
  }
}

export { type M2MAuth, M2MAuthError, type M2MAuthErrorCode, type M2MClaims } from '@m2m-guard/core'

/**
 * Options of `requireM2M`: verifier options (or a shared `verifier`), the route policy
 * (`allowedSubjects`, `requireClaims`, `optional`), `getToken`, `realm`, `onError`, and
 * `passErrors`.
 *
 * @example
 * const options: RequireM2MOptions = { machineId: 'mch_reports', allowedSubjects: ['mch_cron'] }
 */
export interface RequireM2MOptions extends M2MGuardOptions<Request> {
  /**
   * Hand the `M2MAuthError` to `next(err)` instead of answering, for apps that render errors in
   * their own error handler. @defaultValue false
   */
  passErrors?: boolean
}

/**
 * The middleware `requireM2M` returns: an Express handler, plus the verifier it uses and a way to
 * release it (timers, connection pool) when the app shuts down.
 *
 * @example
 * const guard: M2MMiddleware = requireM2M({ machineId: 'mch_reports' })
 * server.on('close', () => void guard.close())
 */
export interface M2MMiddleware {
  // Node's types, not Express's: one signature that fits the Request types of Express 4 and 5.
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void
  readonly verifier: M2MVerifier
  /** Closes the verifier if this middleware built it; a shared `verifier` is left alone. */
  close(): Promise<void>
}

/**
 * Guards Express 4 and 5 routes with Clerk M2M tokens. Built once: options are validated and the
 * verifier is created here (a `TypeError` names a wrong option). Per request it sets `req.m2m`
 * and calls `next()`, or answers per the behaviour table (401/400/403/503/500, JSON body,
 * `WWW-Authenticate`), or with `passErrors` calls `next(err)` with the `M2MAuthError`. It never
 * leaves a rejected promise behind (Express 4 does not handle them).
 *
 * @param [options={}] - See `RequireM2MOptions`; secret key and API URL default to the environment.
 * @param [options.passErrors=false] - Hand rejections to `next(err)`.
 * @throws TypeError naming a wrong option.
 * @example
 * import express from 'express'
 * import { requireM2M } from '@m2m-guard/express'
 *
 * const app = express()
 * app.use('/internal', requireM2M({ machineId: 'mch_reports' }))
 * app.get('/internal/report', (req, res) => res.json({ caller: req.m2m?.subject }))
 */
export function requireM2M(options: RequireM2MOptions = {}): M2MMiddleware {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('requireM2M: options must be an object')
  }
  const { passErrors = false, ...guardOptions } = options
  if (typeof passErrors !== 'boolean') {
    throw new TypeError('requireM2M: passErrors must be a boolean')
  }
  const guard = createM2MGuard<Request>(guardOptions, { name: 'requireM2M' })

  // Not named requireM2M: the bundler would rename a shadowing name, and stack traces with it.
  function requireM2MMiddleware(
    incoming: IncomingMessage,
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void {
    // Mounted in Express, the request is Express's.
    const req = incoming as Request
    guard
      .authenticate({
        method: req.method,
        authorization: authorizationOfNodeRequest(req),
        native: req,
      })
      .then((result) => {
        if (result.ok) {
          if (result.auth) req.m2m = result.auth
          next()
        } else if (passErrors || res.headersSent) {
          next(result.error)
        } else {
          // Node's own setHeader, not res.set(): Express would rewrite the content type.
          res.statusCode = result.response.status
          for (const [name, value] of Object.entries(result.response.headers)) {
            res.setHeader(name, value)
          }
          res.end(result.response.bodyText)
        }
      })
      // authenticate() never rejects; this catches a throw while answering, so Express 4 (which
      // ignores promises) is never left with an unhandled rejection.
      .catch(next)
  }

  return Object.assign(requireM2MMiddleware, {
    verifier: guard.verifier,
    close: () => guard.close(),
  })
}

/**
 * The verified identity of a request behind `requireM2M()`, typed as present.
 *
 * @param req - The Express request.
 * @returns `req.m2m`.
 * @throws M2MAuthError `verifier_misconfigured` (500) when there is none: the route is not behind
 * `requireM2M()`, or it is optional and the caller sent no token (read `req.m2m` there).
 * @example
 * app.get('/internal/report', (req, res) => res.json({ caller: getM2M(req).subject }))
 */
export function getM2M(req: Request): M2MAuth {
  if (req.m2m) return req.m2m
  throw new M2MAuthError(
    'verifier_misconfigured',
    'No M2M identity on this request: mount requireM2M() before this route (on optional routes, read req.m2m)',
  )
}
