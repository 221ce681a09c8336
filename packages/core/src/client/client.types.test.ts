import { describe, expectTypeOf, it } from 'vitest'
import type {
  M2MClient,
  M2MToken,
  M2MTokenList,
  M2MTokenWithSecret,
  RequestOptions,
} from '../index.js'
import { createM2MClient } from '../index.js'

// Checked by `tsc --noEmit -p packages/core/tsconfig.json`: every `@ts-expect-error` below must be
// an error, or the typecheck fails. At runtime the calls never execute (constructing makes no request).
const client: M2MClient = createM2MClient({ secretKey: 'sk_test_types_only' })
const subject = 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk'

describe('M2MClient types', () => {
  it('createM2MClient takes optional options and returns M2MClient', () => {
    expectTypeOf(createM2MClient)
      .parameter(0)
      .toEqualTypeOf<import('../types.js').M2MClientOptions | undefined>()
    expectTypeOf(createM2MClient).returns.toEqualTypeOf<M2MClient>()
    expectTypeOf<M2MClient['apiUrl']>().toEqualTypeOf<string>()
    expectTypeOf<M2MClient['keyFingerprint']>().toEqualTypeOf<string>()
  })

  it('methods return what DESIGN.md documents', () => {
    expectTypeOf(client.createToken).returns.resolves.toEqualTypeOf<M2MTokenWithSecret>()
    expectTypeOf(client.createToken)
      .returns.resolves.toHaveProperty('token')
      .toEqualTypeOf<string>()
    expectTypeOf(client.listTokens).returns.resolves.toEqualTypeOf<M2MTokenList>()
    expectTypeOf(client.listAllTokens).returns.toEqualTypeOf<AsyncIterable<M2MToken>>()
    expectTypeOf(client.revokeToken).returns.resolves.toEqualTypeOf<M2MToken>()
    expectTypeOf(client.verifyToken).returns.resolves.toEqualTypeOf<M2MToken>()
  })

  it('every method takes RequestOptions last', () => {
    expectTypeOf(client.createToken).parameter(1).toEqualTypeOf<RequestOptions | undefined>()
    expectTypeOf(client.listTokens).parameter(1).toEqualTypeOf<RequestOptions | undefined>()
    expectTypeOf(client.listAllTokens).parameter(1).toEqualTypeOf<RequestOptions | undefined>()
    expectTypeOf(client.revokeToken).parameter(1).toEqualTypeOf<RequestOptions | undefined>()
    expectTypeOf(client.verifyToken).parameter(1).toEqualTypeOf<RequestOptions | undefined>()
  })

  it('M2MToken is camelCase with ms timestamps', () => {
    expectTypeOf<M2MToken>().toHaveProperty('revocationReason').toEqualTypeOf<string | null>()
    expectTypeOf<M2MToken>().toHaveProperty('lastUsedAt').toEqualTypeOf<number | null>()
    expectTypeOf<M2MToken>().toHaveProperty('expiration').toEqualTypeOf<number | null>()
    expectTypeOf<M2MToken>().toHaveProperty('createdAt').toEqualTypeOf<number>()
    expectTypeOf<M2MToken>().toHaveProperty('object').toEqualTypeOf<'machine_to_machine_token'>()
    expectTypeOf<M2MToken>().not.toHaveProperty('revocation_reason')
    expectTypeOf<M2MTokenList>().toHaveProperty('totalCount').toEqualTypeOf<number>()
  })

  it('accepts the documented shapes', () => {
    const calls = () => {
      void client.createToken()
      void client.createToken({
        secondsUntilExpiration: null,
        claims: { job: 'nightly' },
        tokenFormat: 'jwt',
        minRemainingTtlSeconds: 60,
      })
      void client.listTokens({ subject, revoked: true, expired: false, limit: 10, offset: 0 })
      void client.listAllTokens({ subject, pageSize: 50 })
      void client.revokeToken({ m2mTokenId: 'mt_x', revocationReason: null })
      void client.verifyToken(
        { token: 'mt_x' },
        { signal: AbortSignal.timeout(1000), timeoutMs: 500, retry: false },
      )
      void client.verifyToken({ token: 'mt_x' }, { retry: { maxRetries: 1, initialDelayMs: 10 } })
    }
    expectTypeOf(calls).toBeFunction()
  })

  it('rejects wrong shapes at compile time', () => {
    const calls = () => {
      // @ts-expect-error subject is required
      void client.listTokens({})
      // @ts-expect-error params are required
      void client.listTokens()
      // @ts-expect-error limit is a number
      void client.listTokens({ subject, limit: '10' })
      // @ts-expect-error revoked is a boolean
      void client.listTokens({ subject, revoked: 'true' })
      // @ts-expect-error tokenFormat is 'opaque' | 'jwt'
      void client.createToken({ tokenFormat: 'x' })
      // @ts-expect-error snake_case is the wire, not the API
      void client.createToken({ seconds_until_expiration: 60 })
      // @ts-expect-error secondsUntilExpiration is a number
      void client.createToken({ secondsUntilExpiration: '60' })
      // @ts-expect-error m2mTokenId is required
      void client.revokeToken({ revocationReason: 'x' })
      // @ts-expect-error token is a string
      void client.verifyToken({ token: 42 })
      // @ts-expect-error listAllTokens pages itself: no offset
      void client.listAllTokens({ subject, offset: 10 })
      // @ts-expect-error retry is an object or false
      void client.verifyToken({ token: 'mt_x' }, { retry: true })
      // @ts-expect-error timeoutMs is a number
      createM2MClient({ timeoutMs: '5000' })
      // @ts-expect-error the response is camelCase
      void client.verifyToken({ token: 'mt_x' }).then((t) => t.last_used_at)
    }
    expectTypeOf(calls).toBeFunction()
  })
})
