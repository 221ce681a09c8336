import type { M2MAuth, M2MAuthError } from '@m2m-guard/core'
import express, { type NextFunction, type Request, type Response } from 'express'
import express4 from 'express4'
import { describe, expectTypeOf, it } from 'vitest'
import { getM2M, type M2MMiddleware, requireM2M } from '../src/index.js'

// Claims are typed by augmenting M2MClaims through the adapter, which re-exports core's interface.
declare module '@m2m-guard/express' {
  interface M2MClaims {
    tenant?: string
  }
}

describe('types (checked by tsc)', () => {
  it('req.m2m is M2MAuth | undefined and getM2M returns M2MAuth', () => {
    const app = express()
    app.get('/', (req, res) => {
      expectTypeOf(req.m2m).toEqualTypeOf<M2MAuth | undefined>()
      expectTypeOf(getM2M(req)).toEqualTypeOf<M2MAuth>()
      expectTypeOf(getM2M(req).claims?.tenant).toEqualTypeOf<string | undefined>()
      res.end()
    })
  })

  it('requireM2M returns an Express middleware usable with app.use', () => {
    expectTypeOf(requireM2M).returns.toEqualTypeOf<M2MMiddleware>()
    expectTypeOf<M2MMiddleware>().toBeCallableWith(
      {} as Request,
      {} as Response,
      (() => {}) as NextFunction,
    )
  })

  it('option callbacks get the Express request', () => {
    const compileOnly = () => {
      requireM2M({
        getToken: (req) => {
          expectTypeOf(req).toEqualTypeOf<Request>()
          return req.get('x-token')
        },
        onError: (error, req) => {
          expectTypeOf(error).toEqualTypeOf<M2MAuthError>()
          expectTypeOf(req).toEqualTypeOf<Request>()
        },
        requireClaims: (claims, auth) => {
          expectTypeOf(auth).toEqualTypeOf<M2MAuth>()
          return claims?.tenant === 'acme'
        },
      })
    }
    expectTypeOf(compileOnly).toBeFunction()
  })

  it('wrong option shapes do not compile', () => {
    const compileOnly = () => {
      // @ts-expect-error allowedSubjects is a list
      requireM2M({ allowedSubjects: 'mch_a' })
      // @ts-expect-error requireClaims is an object or a predicate
      requireM2M({ requireClaims: 5 })
      // @ts-expect-error unknown option
      requireM2M({ allowedSubject: ['mch_a'] })
      // @ts-expect-error passErrors is a boolean
      requireM2M({ passErrors: 'yes' })
      // @ts-expect-error a requireClaims predicate returns a boolean
      requireM2M({ requireClaims: () => 'yes' })
    }
    expectTypeOf(compileOnly).toBeFunction()
  })
})

describe('types across Express versions (checked by tsc)', () => {
  it('the middleware fits Express 4 apps too, and req.m2m is typed there', () => {
    const compileOnly = () => {
      const app = express4()
      app.use('/internal', requireM2M())
      app.get('/internal/x', (req, res) => {
        expectTypeOf(req.m2m).toEqualTypeOf<M2MAuth | undefined>()
        res.end()
      })
    }
    expectTypeOf(compileOnly).toBeFunction()
  })
})
