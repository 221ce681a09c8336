import type { M2MAuth, M2MAuthError } from '@m2m-guard/core'
import Fastify, { type FastifyRequest } from 'fastify'
import { describe, expectTypeOf, it } from 'vitest'
import m2mGuard, { type M2MOnRequestHook, type M2MRouteConfig } from '../src/index.js'

describe('types (checked by tsc)', () => {
  it('request.m2m is M2MAuth | null; config.m2m and requireM2M are typed', () => {
    const compileOnly = async () => {
      const app = Fastify()
      await app.register(m2mGuard, { machineId: 'mch_x', global: false })
      app.get('/', async (request) => {
        expectTypeOf(request.m2m).toEqualTypeOf<M2MAuth | null>()
        return 'ok'
      })
      app.get('/open', { config: { m2m: false } }, async () => 'ok')
      app.get('/policy', { config: { m2m: { allowedSubjects: ['mch_a'] } } }, async () => 'ok')
      app.get<{ Querystring: { q: string } }>(
        '/hooked',
        { onRequest: app.requireM2M({ requireClaims: { tenant: 'acme' } }) },
        async (request) => request.query.q,
      )
      expectTypeOf(app.requireM2M).returns.toEqualTypeOf<M2MOnRequestHook>()
      expectTypeOf<false>().toExtend<M2MRouteConfig>()

      // @ts-expect-error allowedSubjects is a list
      await app.register(m2mGuard, { allowedSubjects: 'mch_a' })
      // @ts-expect-error requireClaims is an object or a predicate
      await app.register(m2mGuard, { requireClaims: 5 })
      // @ts-expect-error unknown option
      await app.register(m2mGuard, { allowedSubject: ['mch_a'] })
      // @ts-expect-error requireM2M takes a policy, not verifier options
      app.requireM2M({ machineId: 'mch_a' })
      await app.register(m2mGuard, {
        getToken: (request) => {
          expectTypeOf(request).toEqualTypeOf<FastifyRequest>()
          return undefined
        },
        onError: (error) => {
          expectTypeOf(error).toEqualTypeOf<M2MAuthError>()
        },
      })
    }
    expectTypeOf(compileOnly).toBeFunction()
  })
})
