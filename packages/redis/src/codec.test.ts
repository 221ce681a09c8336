import type { CachedVerification } from '@m2m-guard/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseMessage } from './bus.js'
import { decodeEntry, encodeEntry } from './codec.js'
import { RedisTierError } from './errors.js'
import { looksLikeRawToken } from './names.js'

const codec = { hmacKeys: [], maxValueBytes: 32_768 }
const key = `m2m-guard:v1:0123456789abcdef:${'h'.repeat(43)}`
const entry: CachedVerification = {
  auth: {
    tokenType: 'm2m_token',
    format: 'jwt',
    id: 'jti-1',
    subject: 'mch_caller',
    scopes: ['mch_a', 'mch_b'],
    claims: { nested: { ok: true } },
    expiration: null,
  },
  verifiedAt: 1_899_999_970_000,
  expiresAt: 1_900_000_000_000,
}

describe('codec', () => {
  it('round-trips an entry, with and without an HMAC', () => {
    expect(decodeEntry(key, encodeEntry(key, entry, codec), codec)).toEqual(entry)
    const signed = { hmacKeys: ['k'.repeat(32)], maxValueBytes: 32_768 }
    expect(decodeEntry(key, encodeEntry(key, entry, signed), signed)).toEqual(entry)
  })

  it('never returns an identity for arbitrary bytes, and only ever throws invalid_value', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json().map((j) => `m2mg2.-.${j}`),
        ),
        (raw) => {
          try {
            decodeEntry(key, raw, codec)
            return false
          } catch (err) {
            return err instanceof RedisTierError && err.code === 'invalid_value'
          }
        },
      ),
    )
  })

  it('while rotating, signs with the first secret and accepts a value signed with any', () => {
    const old = { hmacKeys: ['o'.repeat(32)], maxValueBytes: 32_768 }
    const next = { hmacKeys: ['n'.repeat(32)], maxValueBytes: 32_768 }
    const both = { hmacKeys: ['o'.repeat(32), 'n'.repeat(32)], maxValueBytes: 32_768 }
    const newOnly = { hmacKeys: ['n'.repeat(32)], maxValueBytes: 32_768 }
    // Same wire format: a list signs exactly like its first secret alone.
    expect(encodeEntry(key, entry, both)).toBe(encodeEntry(key, entry, old))
    expect(decodeEntry(key, encodeEntry(key, entry, old), both)).toEqual(entry)
    expect(decodeEntry(key, encodeEntry(key, entry, next), both)).toEqual(entry)
    expect(decodeEntry(key, encodeEntry(key, entry, next), newOnly)).toEqual(entry)
    expect(() => decodeEntry(key, encodeEntry(key, entry, old), newOnly)).toThrow(/HMAC/)
    expect(() => decodeEntry(key, encodeEntry(key, entry, codec), both)).toThrow(/HMAC/)
  })

  it('refuses a flipped byte under an HMAC', () => {
    const signed = { hmacKeys: ['k'.repeat(32)], maxValueBytes: 32_768 }
    const value = encodeEntry(key, entry, signed)
    const tampered = value.replace('mch_caller', 'mch_admin0')
    expect(() => decodeEntry(key, tampered, signed)).toThrow(/HMAC/)
  })
})

describe('raw-token guard', () => {
  it('spots opaque secrets and JWTs, never a hashed key', () => {
    expect(looksLikeRawToken(`ns:mt_${'A1b'.repeat(16)}`)).toBe(true)
    expect(looksLikeRawToken('ns:eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtY2hfMSJ9.c2ln')).toBe(true)
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const hashed = `m2m-guard:v1:0123456789abcdef:${Buffer.from(bytes).toString('base64url')}`
        return !looksLikeRawToken(hashed) && !looksLikeRawToken(`mt_${hashed.slice(-43)}`)
      }),
    )
  })
})

describe('bus messages', () => {
  it('accepts its own shape and ignores anything else', () => {
    expect(parseMessage('{"v":1,"sid":"1-0","id":"mt_1"}')).toEqual({
      streamId: '1-0',
      m2mTokenId: 'mt_1',
    })
    expect(parseMessage('{"v":1,"sid":"x","id":"mt_1"}')).toEqual({
      streamId: undefined,
      m2mTokenId: 'mt_1',
    })
    for (const bad of [
      '',
      'null',
      '[]',
      '{"v":1}',
      '{"v":1,"id":""}',
      '{"v":2,"id":"mt_1"}',
      `{"v":1,"id":"${'x'.repeat(2000)}"}`,
    ]) {
      expect(parseMessage(bad)).toBeUndefined()
    }
  })
})
