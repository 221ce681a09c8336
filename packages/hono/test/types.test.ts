import type { M2MAuth, M2MAuthError } from '@m2m-guard/core'
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { describe, expectTypeOf, it } from 'vitest'
import { type M2MMiddleware, requireM2M } from '../src/index.js'

describe('types (checked by tsc)', () => {
  it("c.get('m2m') and c.var.m2m are M2MAuth", () => {
    const app = new Hono()
    app.use('/internal/*', requireM2M())
    app.get('/internal/report', (c) => {
      expectTypeOf(c.get('m2m')).toEqualTypeOf<M2MAuth>()
      expectTypeOf(c.var.m2m).toEqualTypeOf<M2MAuth>()
      return c.json({ caller: c.get('m2m').subject })
    })
    expectTypeOf(requireM2M).returns.toEqualTypeOf<M2MMiddleware>()
    expectTypeOf<M2MMiddleware>().toExtend<MiddlewareHandler>()
  })

  it('options may be a function of the context; callbacks get the context', () => {
    const compileOnly = () => {
      requireM2M((c) => {
        expectTypeOf(c).toEqualTypeOf<Context>()
        return { machineId: c.env.MACHINE_ID as string }
      })
      requireM2M({
        getToken: (c) => c.req.header('x-token'),
        onError: (error, c) => {
          expectTypeOf(error).toEqualTypeOf<M2MAuthError>()
          expectTypeOf(c).toEqualTypeOf<Context>()
        },
      })
    }
    expectTypeOf(compileOnly).toBeFunction()
  })

  it('works on an app with typed bindings (the README example)', () => {
    const app = new Hono<{ Bindings: { MACHINE_ID: string } }>()
    app.use(
      '/internal/*',
      requireM2M((c) => ({ machineId: c.env.MACHINE_ID })),
    )
    app.get('/internal/report', (c) => c.json({ caller: c.get('m2m').subject }))
    expectTypeOf(app).toExtend<Hono<{ Bindings: { MACHINE_ID: string } }>>()
  })

  it('wrong option shapes do not compile', () => {
    const compileOnly = () => {
      // @ts-expect-error allowedSubjects is a list
      requireM2M({ allowedSubjects: 'mch_a' })
      // @ts-expect-error requireClaims is an object or a predicate
      requireM2M({ requireClaims: 5 })
      // @ts-expect-error unknown option
      requireM2M({ allowedSubject: ['mch_a'] })
      // @ts-expect-error the options function must return options
      requireM2M(() => ({ requireClaims: 5 }))
    }
    expectTypeOf(compileOnly).toBeFunction()
  })
})
