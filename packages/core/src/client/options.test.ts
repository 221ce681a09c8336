import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { type FakeClerk, startFakeClerk } from '../../test/support/fake-clerk.js'
import { createM2MClient } from './index.js'
import { parseApiUrl, resolveClientOptions } from './options.js'
import { USER_AGENT, VERSION } from './version.js'

const TOKEN = 'mt_0123456789abcdef0123456789abcdef'

describe('parseApiUrl', () => {
  it.each([
    ['https://api.clerk.com', 'https://api.clerk.com', '/v1'],
    ['https://api.clerk.com/', 'https://api.clerk.com', '/v1'],
    ['https://api.clerk.com/v1', 'https://api.clerk.com', '/v1'],
    ['https://api.clerk.com/v1/', 'https://api.clerk.com', '/v1'],
    ['http://127.0.0.1:4010//', 'http://127.0.0.1:4010', '/v1'],
    ['https://proxy.internal/clerk', 'https://proxy.internal', '/clerk/v1'],
    ['https://proxy.internal/clerk/v1', 'https://proxy.internal', '/clerk/v1'],
  ])('%s → %s%s', (raw, origin, basePath) => {
    expect(parseApiUrl(raw)).toEqual({ origin, basePath })
  })

  it.each([
    ['not a url', /absolute URL/],
    ['ftp://api.clerk.com', /http: or https:/],
    ['https://user:pass@api.clerk.com', /credentials/],
    ['https://api.clerk.com?x=1', /query/],
  ])('rejects %s', (raw, message) => {
    expect(() => parseApiUrl(raw)).toThrow(message)
  })

  it('does not echo credentials found in the URL', () => {
    expect(() => parseApiUrl('https://u:sk_live_hidden@api.clerk.com')).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('sk_live_hidden') }),
    )
  })
})

describe('resolveClientOptions', () => {
  it('prefers CLERK_MACHINE_SECRET_KEY over CLERK_SECRET_KEY, and explicit options over both', () => {
    const env = { CLERK_MACHINE_SECRET_KEY: 'ak_machine', CLERK_SECRET_KEY: 'sk_instance' }
    expect(resolveClientOptions(undefined, env).secretKey).toBe('ak_machine')
    expect(resolveClientOptions(undefined, { CLERK_SECRET_KEY: 'sk_instance' }).secretKey).toBe(
      'sk_instance',
    )
    expect(resolveClientOptions({ secretKey: 'sk_explicit' }, env).secretKey).toBe('sk_explicit')
  })

  it('treats empty variables as unset', () => {
    const env = {
      CLERK_MACHINE_SECRET_KEY: '',
      CLERK_SECRET_KEY: 'sk_instance',
      CLERK_API_URL: ' ',
    }
    const resolved = resolveClientOptions(undefined, env)
    expect(resolved.secretKey).toBe('sk_instance')
    expect(resolved.origin).toBe('https://api.clerk.com')
  })

  it('takes CLERK_API_URL, unless apiUrl is given', () => {
    const env = { CLERK_SECRET_KEY: 'sk_x', CLERK_API_URL: 'http://localhost:4010/v1' }
    expect(resolveClientOptions(undefined, env)).toMatchObject({
      origin: 'http://localhost:4010',
      basePath: '/v1',
    })
    expect(resolveClientOptions({ apiUrl: 'https://other.example' }, env).origin).toBe(
      'https://other.example',
    )
  })

  it('fails at construction without a key, naming both variables', () => {
    expect(() => resolveClientOptions(undefined, {})).toThrow(TypeError)
    expect(() => resolveClientOptions(undefined, {})).toThrow(
      /CLERK_MACHINE_SECRET_KEY.*CLERK_SECRET_KEY/,
    )
  })

  it('refuses a key that would break the Authorization header, without echoing it', () => {
    const key = 'sk_test_abc\r\nX-Injected: 1'
    expect(() => resolveClientOptions({ secretKey: key }, {})).toThrow(TypeError)
    expect(() => resolveClientOptions({ secretKey: key }, {})).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('sk_test_abc') }),
    )
  })

  it.each([
    [
      'a publishable key',
      'pk_test_Y2xlcmsuZXhhbXBsZS5jb20k',
      /is a publishable key \(pk_…\); use an instance secret key/,
    ],
    [
      'a token',
      'mt_0123456789abcdef0123456789abcdef',
      /must be an instance secret key \(sk_…\) or a machine key/,
    ],
    ['anything else', 'abc', /must be an instance secret key \(sk_…\) or a machine key/],
  ])('refuses %s as the secret key at construction, without echoing it', (_, key, message) => {
    const attempt = () => resolveClientOptions({ secretKey: key }, {})
    expect(attempt).toThrow(TypeError)
    expect(attempt).toThrow(message)
    expect(attempt).toThrow(expect.objectContaining({ message: expect.not.stringContaining(key) }))
    // From the environment too.
    expect(() => resolveClientOptions(undefined, { CLERK_SECRET_KEY: key })).toThrow(message)
  })

  it.each([
    [{ apiURL: 'http://127.0.0.1:4010' }, /unknown option `apiURL` \(did you mean `apiUrl`\?\)/],
    [{ timeOut: 1000 }, /unknown option `timeOut` \(did you mean `timeoutMs`\?\)/],
    [{ colour: 'blue' }, /unknown option `colour`$/],
  ])('refuses the unknown option %j, suggesting the known one', (options, message) => {
    const attempt = () => resolveClientOptions({ secretKey: 'sk_x', ...options }, {})
    expect(attempt).toThrow(TypeError)
    expect(attempt).toThrow(message)
  })

  it.each([
    [{ timeoutMs: 0 }, RangeError, /`timeoutMs`/],
    [{ timeoutMs: Number.NaN }, RangeError, /`timeoutMs`/],
    [{ timeoutMs: '5' }, TypeError, /`timeoutMs` must be a number/],
    [{ retry: { maxRetries: 1.5 } }, RangeError, /`retry.maxRetries`/],
    [{ retry: { initialDelayMs: -1 } }, RangeError, /`retry.initialDelayMs`/],
    [{ retry: { maxDelay: 1 } }, TypeError, /unknown parameter `maxDelay`/],
    [{ fetch: 'yes' }, TypeError, /`fetch` must be a function/],
    [{ apiUrl: 42 }, TypeError, /`apiUrl` must be a string/],
  ])('rejects %j', (options, ErrorClass, message) => {
    const attempt = () => resolveClientOptions({ secretKey: 'sk_x', ...(options as object) }, {})
    expect(attempt).toThrow(ErrorClass)
    expect(attempt).toThrow(message)
  })

  it('defaults to a 5 s timeout and the default retry policy', () => {
    expect(resolveClientOptions({ secretKey: 'sk_x' }, {})).toMatchObject({
      timeoutMs: 5000,
      retry: undefined,
    })
  })
})

describe('createM2MClient reads the process environment', () => {
  let fake: FakeClerk
  beforeAll(async () => {
    fake = await startFakeClerk()
  })
  afterAll(() => fake.close())
  afterEach(() => {
    vi.unstubAllEnvs()
  })

  it('sends the key and uses the API URL from the environment', async () => {
    vi.stubEnv('CLERK_MACHINE_SECRET_KEY', 'ak_from_env_machine')
    vi.stubEnv('CLERK_SECRET_KEY', 'sk_from_env_instance')
    vi.stubEnv('CLERK_API_URL', `${fake.url}/v1/`)
    const client = createM2MClient()
    expect(client.apiUrl).toBe(`${fake.url}/v1`)
    await client.verifyToken({ token: TOKEN })
    expect(fake.requests.at(-1)!.headers.authorization).toBe('Bearer ak_from_env_machine')
  })

  it('falls back to CLERK_SECRET_KEY; explicit options win', async () => {
    vi.stubEnv('CLERK_MACHINE_SECRET_KEY', '')
    vi.stubEnv('CLERK_SECRET_KEY', 'sk_from_env_instance')
    vi.stubEnv('CLERK_API_URL', 'http://127.0.0.1:9')
    await createM2MClient({ apiUrl: fake.url }).verifyToken({ token: TOKEN })
    expect(fake.requests.at(-1)!.headers.authorization).toBe('Bearer sk_from_env_instance')
    await createM2MClient({ apiUrl: fake.url, secretKey: 'sk_explicit' }).verifyToken({
      token: TOKEN,
    })
    expect(fake.requests.at(-1)!.headers.authorization).toBe('Bearer sk_explicit')
  })

  it('throws at construction when no key is set', () => {
    vi.stubEnv('CLERK_MACHINE_SECRET_KEY', '')
    vi.stubEnv('CLERK_SECRET_KEY', '')
    expect(() => createM2MClient()).toThrow(/CLERK_MACHINE_SECRET_KEY.*CLERK_SECRET_KEY/)
  })

  it('exposes a fingerprint of the key, never the key', () => {
    const a = createM2MClient({ secretKey: 'sk_test_key_one_abcdef' })
    const b = createM2MClient({ secretKey: 'sk_test_key_two_abcdef' })
    expect(a.keyFingerprint).toMatch(/^[0-9a-f]{16}$/)
    expect(a.keyFingerprint).not.toBe(b.keyFingerprint)
    expect(JSON.stringify(a)).not.toContain('sk_test_key_one_abcdef')
    expect(inspectAll(a)).not.toContain('sk_test_key_one_abcdef')
  })
})

function inspectAll(value: unknown): string {
  return `${JSON.stringify(value)} ${Object.values(value as object)
    .map(String)
    .join(' ')}`
}

describe('User-Agent', () => {
  it('names this package at the version in package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    expect(VERSION).toBe(pkg.version)
    expect(USER_AGENT).toBe(`m2m-guard/${pkg.version}`)
  })
})
