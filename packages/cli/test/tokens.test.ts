import { PassThrough } from 'node:stream'
import type { M2MToken, M2MTokenList, M2MTokenWithSecret } from '@m2m-guard/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Fixture, fakeApi, fields, run, startFixture } from './helpers.js'

let f: Fixture

beforeAll(async () => {
  f = await startFixture()
})
afterAll(async () => {
  await f.emulator.close()
})

async function createToken(args: string[] = [], env = f.callerEnv): Promise<M2MTokenWithSecret> {
  const result = await run(['tokens', 'create', '--json', ...args], { env })
  expect(result.stderr).toBe('')
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout) as M2MTokenWithSecret
}

describe('tokens create', () => {
  it('sends every flag and prints the created token as fields', async () => {
    const before = Date.now()
    const result = await run(
      [
        'tokens',
        'create',
        '--seconds-until-expiration',
        '600',
        '--claims',
        '{"job":"nightly","n":1}',
        '--token-format',
        'opaque',
        '--min-remaining-ttl-seconds',
        '60',
      ],
      { env: f.callerEnv },
    )
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const out = fields(result.stdout)
    expect(out.token).toMatch(/^mt_\w+$/)
    expect(out.id).toMatch(/^mt_[0-9a-f]{32}$/)
    expect(out.subject).toBe(f.caller.id)
    expect(out.scopes).toBe(f.receiver.id)
    expect(out.claims).toBe('{"job":"nightly","n":1}')
    expect(out.revoked).toBe('no')
    const expiration = Date.parse(out.expiration ?? '')
    expect(expiration).toBeGreaterThanOrEqual(before + 600_000 - 1000)
    expect(expiration).toBeLessThanOrEqual(Date.now() + 600_000 + 1000)
    expect(out.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

    // --min-remaining-ttl-seconds reached the wire: the same request reuses the live token.
    const again = await run(
      [
        'tokens',
        'create',
        '--seconds-until-expiration',
        '600',
        '--claims',
        '{"job":"nightly","n":1}',
        '--min-remaining-ttl-seconds',
        '60',
        '--token-only',
      ],
      { env: f.callerEnv },
    )
    expect(again.code).toBe(0)
    expect(again.stdout).toBe(`${out.token}\n`)
  })

  it('--no-expiration creates a token that never expires; --json prints the decoded object', async () => {
    const token = await createToken(['--no-expiration'])
    expect(token.expiration).toBeNull()
    expect(token.object).toBe('machine_to_machine_token')
    expect(token.subject).toBe(f.caller.id)
    expect(token.claims).toBeNull()
    const human = await run(['tokens', 'create', '--no-expiration'], { env: f.callerEnv })
    expect(fields(human.stdout).expiration).toBe('never')
  })

  it('--token-format jwt returns a JWT', async () => {
    const token = await createToken(['--token-format', 'jwt', '--seconds-until-expiration', '120'])
    expect(token.token.split('.')).toHaveLength(3)
  })

  it('an instance key cannot create tokens: exit 1 with the API message and trace id', async () => {
    const result = await run(['tokens', 'create'], { env: f.instanceEnv })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toMatch(/the API answered (401|403)/)
    expect(result.stderr).toMatch(/clerk trace id: \S+/)
    expect(result.stderr).not.toContain('(none in the response)')
    expect(result.stderr).not.toContain(f.emulator.secretKey)
  })

  it('the API rejects a reuse threshold at or above the default lifetime: exit 1 (server-side)', async () => {
    const result = await run(['tokens', 'create', '--min-remaining-ttl-seconds', '999999'], {
      env: f.callerEnv,
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('the API answered 400')
  })
})

describe('tokens list', () => {
  let subject: string
  beforeAll(async () => {
    // A machine of its own, so other tests' tokens do not change the counts.
    const lister = await f.emulator.createMachine({ name: 'lister' })
    subject = lister.id
    const env = { CLERK_API_URL: f.emulator.url, CLERK_MACHINE_SECRET_KEY: lister.secretKey }
    for (let i = 0; i < 5; i++) await createToken(['--claims', JSON.stringify({ i })], env)
    const revoked = await createToken([], env)
    const r = await run(['tokens', 'revoke', revoked.id], { env: f.instanceEnv })
    expect(r.code).toBe(0)
  })

  it('prints an aligned table with ISO dates and a count', async () => {
    const result = await run(['tokens', 'list', '--subject', subject], { env: f.instanceEnv })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const lines = result.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(
      /^ID\s+SUBJECT\s+SCOPES\s+REVOKED\s+EXPIRED\s+EXPIRATION\s+LAST USED\s+CREATED$/,
    )
    const rows = lines.slice(1, -1)
    expect(rows).toHaveLength(5)
    const subjectColumn = lines[0]?.indexOf('SUBJECT')
    for (const row of rows) {
      expect(row.indexOf(subject)).toBe(subjectColumn)
      expect(row).toMatch(/^mt_[0-9a-f]{32}\s/)
      expect(row).toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    }
    expect(lines.at(-1)).toBe('1–5 of 5 tokens')
  })

  it('--revoked, --limit and --offset reach the API; --json prints { m2mTokens, totalCount }', async () => {
    const all = await run(['tokens', 'list', '--subject', subject, '--revoked', '--json'], {
      env: f.instanceEnv,
    })
    expect(all.code).toBe(0)
    const listed = JSON.parse(all.stdout) as M2MTokenList
    expect(listed.totalCount).toBe(6)
    expect(listed.m2mTokens.filter((t) => t.revoked)).toHaveLength(1)

    const page = await run(
      [
        'tokens',
        'list',
        '--subject',
        subject,
        '--revoked',
        '--limit',
        '2',
        '--offset',
        '3',
        '--json',
      ],
      { env: f.instanceEnv },
    )
    const paged = JSON.parse(page.stdout) as M2MTokenList
    expect(paged.totalCount).toBe(6)
    expect(paged.m2mTokens.map((t) => t.id)).toEqual(listed.m2mTokens.slice(3, 5).map((t) => t.id))
    const human = await run(
      ['tokens', 'list', '--subject', subject, '--limit', '2', '--offset', '3'],
      { env: f.instanceEnv },
    )
    expect(human.stdout.trimEnd().split('\n').at(-1)).toBe('4–5 of 5 tokens')
  })

  it('--expired includes expired tokens, which are left out by default', async () => {
    const machine = await f.emulator.createMachine({ name: 'short-lived' })
    const env = { CLERK_API_URL: f.emulator.url, CLERK_MACHINE_SECRET_KEY: machine.secretKey }
    const { id } = await createToken(['--seconds-until-expiration', '0.5'], env)
    await new Promise((resolve) => setTimeout(resolve, 700))
    const list = async (...flags: string[]) => {
      const result = await run(['tokens', 'list', '--subject', machine.id, '--json', ...flags], {
        env,
      })
      expect(result.code).toBe(0)
      return JSON.parse(result.stdout) as M2MTokenList
    }
    expect((await list()).totalCount).toBe(0)
    const withExpired = await list('--expired')
    expect(withExpired.m2mTokens.map((t) => [t.id, t.expired])).toEqual([[id, true]])
    const human = await run(['tokens', 'list', '--subject', machine.id, '--expired'], { env })
    expect(human.stdout).toMatch(new RegExp(`^${id}\\s.*\\byes\\s+\\d{4}-`, 'm'))
  })

  it('--all pages through every token (--limit sets the page size)', async () => {
    const before = f.emulator.stats().byOperation.getM2MTokens ?? 0
    const result = await run(
      ['tokens', 'list', '--subject', subject, '--revoked', '--all', '--limit', '2', '--json'],
      { env: f.instanceEnv },
    )
    expect(result.code).toBe(0)
    const listed = JSON.parse(result.stdout) as M2MTokenList
    expect(listed.totalCount).toBe(6)
    expect(new Set(listed.m2mTokens.map((t) => t.id)).size).toBe(6)
    expect(f.emulator.stats().byOperation.getM2MTokens).toBe(before + 3)
    const human = await run(['tokens', 'list', '--subject', subject, '--all'], {
      env: f.instanceEnv,
    })
    expect(human.code).toBe(0)
    expect(human.stdout.trimEnd().split('\n')).toHaveLength(1 + 5 + 1)
    expect(human.stdout.trimEnd().split('\n').at(-1)).toBe('5 tokens')
  })

  it("a machine key cannot list another machine's tokens: exit 1", async () => {
    const result = await run(['tokens', 'list', '--subject', subject], { env: f.callerEnv })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/the API answered 4\d\d/)
    expect(result.stderr).toMatch(/clerk trace id: \S+/)
  })
})

describe('tokens revoke and verify', () => {
  it('verify a valid token: exit 0, prints its subject; the receiver may verify it', async () => {
    const { token, id } = await createToken()
    const env = { CLERK_API_URL: f.emulator.url, CLERK_MACHINE_SECRET_KEY: f.receiver.secretKey }
    const result = await run(['tokens', 'verify', token], { env })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const out = fields(result.stdout)
    expect(out.subject).toBe(f.caller.id)
    expect(out.id).toBe(id)
    expect(out.token).toBeUndefined()
    expect(result.stdout).not.toContain(token)
    expect(out['last used']).toMatch(/^\d{4}-/)
  })

  it('verify reads the token from stdin with - and from --token', async () => {
    const { token, id } = await createToken()
    const viaStdin = await run(['tokens', 'verify', '-', '--json'], {
      env: f.instanceEnv,
      stdin: `${token}\n`,
    })
    expect(viaStdin.code).toBe(0)
    expect((JSON.parse(viaStdin.stdout) as M2MToken).id).toBe(id)
    const viaFlag = await run(['tokens', 'verify', '--token', token, '--json'], {
      env: f.instanceEnv,
    })
    expect(viaFlag.code).toBe(0)
    expect((JSON.parse(viaFlag.stdout) as M2MToken).subject).toBe(f.caller.id)
  })

  it('verify by a machine the token is not scoped to: exit 1', async () => {
    const { token } = await createToken()
    const env = { CLERK_API_URL: f.emulator.url, CLERK_MACHINE_SECRET_KEY: f.outsider.secretKey }
    const result = await run(['tokens', 'verify', token], { env })
    expect(result.code).toBe(1)
    expect(result.stderr).not.toContain(token)
  })

  it('verify an unknown token: exit 1 with message and trace id, never the token', async () => {
    const unknown = `mt_${'a'.repeat(48)}`
    const result = await run(['tokens', 'verify', unknown], { env: f.instanceEnv })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('the API answered 404')
    expect(result.stderr).toMatch(/clerk trace id: \S+/)
    expect(result.stderr).not.toContain(unknown)
  })

  it('revoke with --reason, then verify fails with exit 1 and a trace id', async () => {
    const { token, id } = await createToken()
    const revoked = await run(['tokens', 'revoke', id, '--reason', 'rotated'], { env: f.callerEnv })
    expect(revoked.stderr).toBe('')
    expect(revoked.code).toBe(0)
    const out = fields(revoked.stdout)
    expect(out.id).toBe(id)
    expect(out.revoked).toBe('yes')
    expect(out['revocation reason']).toBe('rotated')

    const verified = await run(['tokens', 'verify', '-'], { env: f.instanceEnv, stdin: token })
    expect(verified.code).toBe(1)
    expect(verified.stderr).toContain('the API answered 404')
    const trace = /clerk trace id: (\S+)/.exec(verified.stderr)?.[1]
    // The emulator's trace ids are 32 hex digits, as Clerk's are.
    expect(trace).toMatch(/^[0-9a-f]{32}$/)
  })

  it('revoke --json prints the decoded token; revoking an unknown id exits 1', async () => {
    const { id } = await createToken()
    const result = await run(['tokens', 'revoke', id, '--json'], { env: f.instanceEnv })
    expect(result.code).toBe(0)
    const token = JSON.parse(result.stdout) as M2MToken
    expect(token).toMatchObject({ id, revoked: true, revocationReason: null })
    const missing = await run(['tokens', 'revoke', `mt_${'0'.repeat(32)}`], { env: f.instanceEnv })
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('the API answered 404')
  })
})

describe('tokens verify: a 200 that describes a revoked or expired token', () => {
  // The emulator answers 404 for those; Clerk may answer 200 with the flags set.
  const wire = (revoked: boolean, expired: boolean) => ({
    object: 'machine_to_machine_token',
    id: 'mt_0123456789abcdef0123456789abcdef',
    subject: 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk',
    claims: null,
    scopes: [],
    revoked,
    revocation_reason: revoked ? 'rotated' : null,
    expired,
    expiration: Date.now() + (expired ? -60_000 : 60_000),
    last_used_at: null,
    created_at: Date.now() - 120_000,
    updated_at: Date.now(),
  })
  const cases = [
    [true, false, 'revoked'],
    [false, true, 'expired'],
    [true, true, 'revoked and expired'],
  ] as const
  for (const [revoked, expired, state] of cases) {
    it(`${state}: exit 1 with a line on stderr; the record is still printed`, async () => {
      const api = await fakeApi(200, wire(revoked, expired))
      try {
        const env = { CLERK_API_URL: api.url, CLERK_SECRET_KEY: 'sk_test_fake_instance_key' }
        const token = `mt_${'a'.repeat(48)}`
        const human = await run(['tokens', 'verify', token], { env })
        expect(human.code).toBe(1)
        expect(human.stderr).toBe(`m2m-guard tokens verify: the token is ${state}: not valid\n`)
        expect(fields(human.stdout)).toMatchObject({
          revoked: revoked ? 'yes' : 'no',
          expired: expired ? 'yes' : 'no',
        })
        const asJson = await run(['tokens', 'verify', '-', '--json'], { env, stdin: token })
        expect(asJson.code).toBe(1)
        expect(JSON.parse(asJson.stdout)).toMatchObject({ revoked, expired })
      } finally {
        await api.close()
      }
    })
  }
})

describe('server text cannot forge output lines or reach the terminal as controls', () => {
  // Newline, carriage return, ESC (clear screen), C1 CSI, DEL, a bidi override, a line separator.
  const hostile = 'rotated\nrevoked  no\r\x1b[2J\x9b31m\x7f\u202eevil\u2028x'
  const escaped = 'rotated\\u000arevoked  no\\u000d\\u001b[2J\\u009b31m\\u007f\\u202eevil\\u2028x'
  const CONTROL = /[\p{Cc}\u202e\u2028]/u
  const lines = (text: string) => text.replace(/\n$/, '').split('\n')

  it('a revocation reason is escaped in the table and exact in --json', async () => {
    const first = await createToken()
    const human = await run(['tokens', 'revoke', first.id, '--reason', hostile], {
      env: f.callerEnv,
    })
    expect(human.code).toBe(0)
    expect(lines(human.stdout)).toHaveLength(11)
    for (const line of lines(human.stdout)) expect(line).not.toMatch(CONTROL)
    expect(fields(human.stdout)).toMatchObject({ revoked: 'yes', 'revocation reason': escaped })

    const second = await createToken()
    const asJson = await run(['tokens', 'revoke', second.id, '--reason', hostile, '--json'], {
      env: f.callerEnv,
    })
    expect(asJson.code).toBe(0)
    for (const line of lines(asJson.stdout)) expect(line).not.toMatch(CONTROL)
    expect((JSON.parse(asJson.stdout) as M2MToken).revocationReason).toBe(hostile)
  })

  it("an API error's code, messages and trace id are escaped on stderr", async () => {
    const api = await fakeApi(400, {
      errors: [
        {
          code: 'form_param_invalid\x1b[31m',
          message: 'bad\n  clerk trace id: forged',
          long_message: 'see \x9b2J\u202e',
        },
      ],
      clerk_trace_id: 'trace\r\n  retry after: 0 s',
    })
    try {
      const result = await run(['tokens', 'verify', `mt_${'a'.repeat(48)}`], {
        env: { CLERK_API_URL: api.url, CLERK_SECRET_KEY: 'sk_test_fake_instance_key' },
      })
      expect(result.code).toBe(1)
      expect(lines(result.stderr)).toEqual([
        'm2m-guard tokens verify: the API answered 400',
        '  form_param_invalid\\u001b[31m: bad\\u000a  clerk trace id: forged (see \\u009b2J\\u202e)',
        '  clerk trace id: trace\\u000d\\u000a  retry after: 0 s',
      ])
    } finally {
      await api.close()
    }
  })
})

describe('interruption', () => {
  it('aborting while verify - waits on stdin stops reading it: exit 130', async () => {
    const stdin = new PassThrough() // a pipe whose writer never closes it
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 200)
    const result = await run(['tokens', 'verify', '-'], {
      env: f.instanceEnv,
      stdin,
      signal: controller.signal,
    })
    expect(result).toEqual({
      code: 130,
      stdout: '',
      stderr: 'm2m-guard tokens verify: interrupted\n',
    })
    expect(stdin.destroyed).toBe(true)
  })

  it("aborted with the reason 'SIGTERM' (the bin's, on SIGTERM): exit 143", async () => {
    const controller = new AbortController()
    setTimeout(() => controller.abort('SIGTERM'), 200)
    const result = await run(['tokens', 'verify', '-'], {
      env: f.instanceEnv,
      stdin: new PassThrough(),
      signal: controller.signal,
    })
    expect(result.code).toBe(143)
    expect(result.stderr).toBe('m2m-guard tokens verify: interrupted\n')
  })

  it('stdin past 64 KiB (say < /dev/zero) is refused: exit 2, and reading stops', {
    timeout: 5000,
  }, async () => {
    let pulled = 0
    // Zeros, 16 KiB at a time; after 1 MiB it waits forever, as an endless pipe would.
    async function* zeros() {
      for (; pulled < 64; pulled++) yield new Uint8Array(16 * 1024)
      await new Promise(() => {})
    }
    const result = await run(['tokens', 'verify', '-'], { env: f.instanceEnv, stdin: zeros() })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(
      'm2m-guard tokens verify: stdin holds more than 64 KiB: a token is at most 4 KiB',
    )
    expect(pulled).toBeLessThanOrEqual(5)
  })

  it('aborting the signal (SIGINT in the bin) cancels a request in flight: exit 130', async () => {
    const { token } = await createToken()
    f.emulator.setFaults({ latencyMs: 10_000, operations: ['verifyM2MToken'] })
    try {
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 200)
      const started = Date.now()
      const result = await run(['tokens', 'verify', token, '--timeout-ms', '15000'], {
        env: f.instanceEnv,
        signal: controller.signal,
      })
      expect(result.code).toBe(130)
      expect(result.stderr).toBe('m2m-guard tokens verify: interrupted\n')
      expect(Date.now() - started).toBeLessThan(5000)
    } finally {
      f.emulator.setFaults({})
    }
  })
})

describe('key and URL resolution', () => {
  it('takes CLERK_MACHINE_SECRET_KEY over CLERK_SECRET_KEY, and --secret-key over both', async () => {
    // The machine key wins: create works (an instance key alone would be refused).
    const both = {
      CLERK_API_URL: f.emulator.url,
      CLERK_MACHINE_SECRET_KEY: f.caller.secretKey,
      CLERK_SECRET_KEY: f.emulator.secretKey,
    }
    expect((await run(['tokens', 'create', '--json'], { env: both })).code).toBe(0)
    // The flag wins over both: the instance key passed explicitly is refused for create.
    const flagged = await run(['tokens', 'create', '--secret-key', f.emulator.secretKey], {
      env: both,
    })
    expect(flagged.code).toBe(1)
    // CLERK_SECRET_KEY alone is used when nothing else is set.
    const { token } = await createToken()
    const instance = await run(['tokens', 'verify', token], {
      env: { CLERK_API_URL: f.emulator.url, CLERK_SECRET_KEY: f.emulator.secretKey },
    })
    expect(instance.code).toBe(0)
  })

  it('--api-url wins over CLERK_API_URL, with or without /v1', async () => {
    const env = {
      CLERK_API_URL: 'http://127.0.0.1:9',
      CLERK_MACHINE_SECRET_KEY: f.caller.secretKey,
    }
    const direct = await run(['tokens', 'create', '--api-url', f.emulator.apiUrl, '--json'], {
      env,
    })
    expect(direct.code).toBe(0)
    const refused = await run(['tokens', 'create', '--timeout-ms', '2000'], { env })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('could not reach')
  })

  it('a wrong key is an API error (exit 1) and is never printed', async () => {
    const badKey = `ak_${'x'.repeat(40)}`
    const result = await run(['tokens', 'create', '--secret-key', badKey], {
      env: { CLERK_API_URL: f.emulator.url },
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('the API answered 401')
    expect(result.stderr).not.toContain(badKey)
  })
})
