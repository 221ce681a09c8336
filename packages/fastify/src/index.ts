/**
 * Fastify 4 and 5 plugin over `@m2m-guard/core`: it reads the request, asks the core's guard, and
 * writes the core's answer. Every decision (parsing, policy, rendering) is in the core.
 */
import {
  authorizationOfNodeRequest,
  createM2MGuard,
  type M2MAuth,
  type M2MCompiledPolicy,
  type M2MGuardOptions,
  type M2MRoutePolicy,
} from '@m2m-guard/core'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/**
 * A route's `config.m2m`: `false` leaves the route open, `true` guards it with the plugin's
 * policy (useful with `global: false`), an object guards it with that policy merged over the
 * plugin's.
 *
 * @example
 * app.get('/health', { config: { m2m: false } }, () => 'ok')
 * app.get('/admin', { config: { m2m: { allowedSubjects: ['mch_admin'] } } }, handler)
 */
export type M2MRouteConfig = boolean | M2MRoutePolicy

/**
 * An `onRequest` hook that guards one route, from `fastify.requireM2M(policy)`.
 *
 * @example
 * app.get('/report', { onRequest: app.requireM2M({ allowedSubjects: ['mch_cron'] }) }, handler)
 */
export type M2MOnRequestHook = (
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<FastifyReply | undefined>

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified M2M identity; `null` on open or optional routes without credentials. */
    m2m: M2MAuth | null
  }
  interface FastifyContextConfig {
    /** This route's M2M policy; see `M2MRouteConfig`. */
    m2m?: M2MRouteConfig
  }
  interface FastifyInstance {
    /** An `onRequest` hook guarding one route with `policy` merged over the plugin's options. */
    requireM2M(policy?: M2MRoutePolicy): M2MOnRequestHook
  }
}

export type { M2MAuth, M2MAuthErrorCode, M2MClaims, M2MRoutePolicy } from '@m2m-guard/core'
export { M2MAuthError } from '@m2m-guard/core'

/**
 * Options of the plugin: verifier options (or a shared `verifier`), the default policy
 * (`allowedSubjects`, `requireClaims`, `optional`), `getToken`, `realm`, `onError`, and `global`.
 *
 * @example
 * await app.register(m2mGuard, { machineId: 'mch_reports', global: false })
 */
export interface M2MFastifyOptions extends M2MGuardOptions<FastifyRequest> {
  /**
   * Guard every route with an `onRequest` hook (routes opt out with `config: { m2m: false }`).
   * With `false`, only routes with `config.m2m` set, or using `fastify.requireM2M()`, are guarded.
   * @defaultValue true
   */
  global?: boolean
}

const NAME = '@m2m-guard/fastify'
// Fastify's own register options may arrive with the plugin options; they are not ours to judge.
const REGISTER_OPTIONS = ['prefix', 'logLevel', 'logSerializers']

interface LegacyRequest {
  routeConfig?: { m2m?: M2MRouteConfig }
  context?: { config?: { m2m?: M2MRouteConfig } }
}

function routeConfigOf(request: FastifyRequest): M2MRouteConfig | undefined {
  // Fastify ≥ 4.10 has routeOptions; 4.7–4.9 only routeConfig; 4.0–4.6 only request.context,
  // deprecated later (reading it there warns), so it is read only where nothing else exists.
  // Missing the route's config would guard an open route and leave a `global: false` one open.
  const options = request.routeOptions as FastifyRequest['routeOptions'] | undefined
  if (options !== undefined) return options.config?.m2m
  const legacy = request as unknown as LegacyRequest
  return ('routeConfig' in legacy ? legacy.routeConfig : legacy.context?.config)?.m2m
}

const plugin: FastifyPluginAsync<M2MFastifyOptions> = async function m2mGuardPlugin(
  fastify,
  options,
) {
  const { global: guardAll = true, ...guardOptions } = options
  if (typeof guardAll !== 'boolean') throw new TypeError(`${NAME}: global must be a boolean`)
  const guard = createM2MGuard<FastifyRequest>(guardOptions, {
    name: NAME,
    adapterOptions: REGISTER_OPTIONS,
  })
  const defaultPolicy = guard.policy({})
  // Route policies are compiled (validated and merged) once per route, not per request.
  const compiled = new WeakMap<M2MRoutePolicy, M2MCompiledPolicy>()
  function compile(policy: M2MRoutePolicy, where: string): M2MCompiledPolicy {
    let result = compiled.get(policy)
    if (result === undefined) {
      result = guard.policy(policy, where)
      compiled.set(policy, result)
    }
    return result
  }

  // Not async: the guard's promise is chained once, rather than wrapped in another async frame.
  function guardRequest(
    request: FastifyRequest,
    reply: FastifyReply,
    policy: M2MCompiledPolicy,
  ): Promise<FastifyReply | undefined> {
    return guard
      .authenticate(
        {
          method: request.method,
          authorization: authorizationOfNodeRequest(request.raw),
          native: request,
        },
        policy,
      )
      .then((result) => {
        if (result.ok) {
          request.m2m = result.auth
          return undefined
        }
        const { status, headers, bodyText } = result.response
        // A hook that answers must return the reply, or Fastify would run the route too.
        return reply.code(status).headers(headers).send(bodyText)
      })
  }

  fastify.decorateRequest('m2m', null)
  fastify.decorate('requireM2M', function requireM2M(policy: M2MRoutePolicy = {}) {
    const routePolicy = guard.policy(policy, `${NAME}: requireM2M()`)
    return function m2mRouteGuard(request: FastifyRequest, reply: FastifyReply) {
      return guardRequest(request, reply, routePolicy)
    }
  })

  // Fail at startup, naming the route, when a route's config.m2m is not a valid policy.
  fastify.addHook('onRoute', (route) => {
    const m2m = (route.config as { m2m?: unknown } | undefined)?.m2m
    if (m2m === undefined || typeof m2m === 'boolean') return
    compile(m2m as M2MRoutePolicy, `${NAME}: config.m2m of ${route.method} ${route.url}`)
  })

  // Not async either: a route left open answers with an already-resolved promise, and a guarded
  // one with the guard's own, not one more async frame around it.
  const OPEN: Promise<undefined> = Promise.resolve(undefined)
  fastify.addHook('onRequest', function m2mGuardOnRequest(request, reply) {
    const config = routeConfigOf(request)
    if (config === false || (config === undefined && !guardAll)) return OPEN
    const policy =
      typeof config === 'object' && config !== null
        ? compile(config, `${NAME}: config.m2m of ${request.method} ${request.url}`)
        : defaultPolicy
    return guardRequest(request, reply, policy)
  })

  fastify.addHook('onClose', async () => {
    await guard.close()
  })
}

/**
 * Guards Fastify 4 and 5 routes with Clerk M2M tokens. Registered with fastify-plugin, so it
 * applies to the context it is registered in. Options are validated and the verifier is built at
 * registration (a `TypeError` names a wrong option); it is closed with the app. By default every
 * route is guarded by an `onRequest` hook: the identity is `request.m2m`, rejections are answered
 * per the behaviour table. Routes adjust with `config: { m2m: false | true | policy }`;
 * `fastify.requireM2M(policy)` returns a hook for route-level use (with `global: false`).
 *
 * @param [options.global=true] - Guard every route.
 * @throws TypeError naming a wrong option (at registration), or a route's wrong `config.m2m`.
 * @example
 * import Fastify from 'fastify'
 * import m2mGuard from '@m2m-guard/fastify'
 *
 * const app = Fastify()
 * await app.register(m2mGuard, { machineId: 'mch_reports' })
 * app.get('/health', { config: { m2m: false } }, async () => 'ok')
 * app.get('/report', async (request) => ({ caller: request.m2m?.subject }))
 */
export const m2mGuard: FastifyPluginAsync<M2MFastifyOptions> = fp(plugin, {
  name: NAME,
  fastify: '4.x || 5.x',
})

export default m2mGuard
