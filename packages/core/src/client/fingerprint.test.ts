import { describe, expect, it } from 'vitest'
import { fingerprintSecretKey } from './fingerprint.js'

describe('fingerprintSecretKey', () => {
  it('is FNV-1a 64 (published test vectors)', () => {
    expect(fingerprintSecretKey('')).toBe('cbf29ce484222325')
    expect(fingerprintSecretKey('a')).toBe('af63dc4c8601ec8c')
    expect(fingerprintSecretKey('foobar')).toBe('85944171f73967e8')
  })

  it('is 16 hex characters, stable, distinct per key and never contains the key', () => {
    const key = 'sk_test_abcdef0123456789'
    const print = fingerprintSecretKey(key)
    expect(print).toMatch(/^[0-9a-f]{16}$/)
    expect(fingerprintSecretKey(key)).toBe(print)
    expect(fingerprintSecretKey(`${key}x`)).not.toBe(print)
    expect(print).not.toContain(key.slice(8, 14))
  })
})
