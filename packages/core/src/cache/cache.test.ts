import { hash as nodeHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import type { CachedVerification } from '../verifier/types.js'
import {
  digestSync,
  digestToBase64url,
  digestViaWebCrypto,
  sha256,
  sha256ViaWebCrypto,
} from './hash.js'
import { memoryCacheStore, memoryRevocationBus } from './memory.js'

describe('sha256', () => {
  test('Node has the synchronous one-shot hash', () => {
    expect(typeof digestSync).toBe('function')
    expect(sha256('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0')
    // The in-process key is the same digest, 32 bytes as a binary string.
    expect(digestSync!('abc')).toHaveLength(32)
    expect(digestToBase64url(digestSync!('abc'))).toBe(sha256('abc'))
  })

  test('the WebCrypto path (workerd) gives the same keys for any string', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 300 }), async (input) => {
        expect(await digestViaWebCrypto(input)).toBe(digestSync!(input))
        // Against Node's own base64url, so the btoa conversion is checked, not compared with itself.
        expect(await sha256ViaWebCrypto(input)).toBe(nodeHash('sha256', input, 'base64url'))
      }),
      { seed: 7, numRuns: 200 },
    )
  })
})

const value = (expiresAt: number): CachedVerification => ({
  auth: {
    tokenType: 'm2m_token',
    format: 'opaque',
    id: 'mt_0123456789abcdef0123456789abcdef',
    subject: 'mch_abc',
    scopes: [],
    claims: null,
    expiration: expiresAt,
  },
  verifiedAt: expiresAt - 30_000,
  expiresAt,
})

describe('memoryCacheStore', () => {
  test('entries die at min(ttl, expiresAt) on its clock, and the store is bounded', () => {
    let t = 1_000
    const store = memoryCacheStore({ maxEntries: 2, now: () => t })
    store.set('a', value(1_500), 10_000)
    store.set('b', value(100_000), 200)
    expect(store.get('a')).toBeDefined()
    t = 1_200
    expect(store.get('b')).toBeUndefined()
    t = 1_500
    expect(store.get('a')).toBeUndefined()
    store.set('c', value(1e9), 1e6)
    store.set('d', value(1e9), 1e6)
    store.set('e', value(1e9), 1e6)
    expect(store.size).toBe(2)
    store.delete('e')
    expect(store.get('e')).toBeUndefined()
    store.set('z', value(1e9), 0)
    expect(store.get('z')).toBeUndefined()
  })
})

describe('memoryRevocationBus', () => {
  test('publish reaches every subscriber; a throwing one does not stop the rest; unsubscribe works', () => {
    const bus = memoryRevocationBus()
    const seen: string[] = []
    bus.subscribe(() => {
      throw new Error('boom')
    })
    const off = bus.subscribe((id) => seen.push(`1:${id}`))
    bus.subscribe((id) => seen.push(`2:${id}`))
    bus.publish('mt_a')
    off()
    bus.publish('mt_b')
    expect(seen).toEqual(['1:mt_a', '2:mt_a', '2:mt_b'])
    expect(bus.listenerCount).toBe(2)
  })
})
