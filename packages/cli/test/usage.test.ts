import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EMULATOR_SPEC } from '../src/commands/emulator.js'
import {
  CREATE_SPEC,
  LIST_SPEC,
  REVOKE_SPEC,
  TOKENS_SPEC,
  VERIFY_SPEC,
} from '../src/commands/tokens.js'
import { ROOT_SPEC } from '../src/run.js'
import { VERSION } from '../src/version.js'
import { run } from './helpers.js'

// A key that must never show up in output, whatever goes wrong.
const KEY = `ak_${'k'.repeat(40)}`
const TOKEN = `mt_${'s'.repeat(48)}`
const env = { CLERK_API_URL: 'http://127.0.0.1:9', CLERK_MACHINE_SECRET_KEY: KEY }

describe('--help and --version', () => {
  const specs = [
    ROOT_SPEC,
    TOKENS_SPEC,
    CREATE_SPEC,
    LIST_SPEC,
    REVOKE_SPEC,
    VERIFY_SPEC,
    EMULATOR_SPEC,
  ]
  for (const spec of specs) {
    for (const flag of ['--help', '-h']) {
      it(`m2m-guard ${spec.name} ${flag} documents every flag and exits 0`, async () => {
        const argv = [...(spec.name ? spec.name.split(' ') : []), flag]
        const result = await run(argv, { env })
        expect(result.code).toBe(0)
        expect(result.stderr).toBe('')
        expect(result.stdout.split('\n')[0]).toBe(
          `Usage: ${['m2m-guard', spec.name].filter(Boolean).join(' ')} ${spec.usage[0]}`,
        )
        for (const name of Object.keys(spec.options)) expect(result.stdout).toContain(`--${name}`)
        for (const [command] of spec.commands ?? [])
          expect(result.stdout).toMatch(new RegExp(`^  ${command} `, 'm'))
      })
    }
  }

  it('the root and tokens help list every exit code, interruption included', async () => {
    for (const argv of [['--help'], ['tokens', '--help'], ['tokens', 'verify', '--help']]) {
      const result = await run(argv, { env })
      expect(result.code).toBe(0)
      expect(result.stdout).toMatch(
        /Exit codes: 0 ok, 1 API .*, 2 usage error, 130 interrupted \(Ctrl-C, SIGINT\), 143 terminated \(SIGTERM\)\./,
      )
    }
  })

  it('help wins wherever it is, even after other flags', async () => {
    const result = await run(['tokens', 'verify', '--json', '-h'], { env })
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('Usage: m2m-guard tokens verify')
  })

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    expect(VERSION).toBe(pkg.version)
    for (const flag of ['--version', '-v']) {
      const result = await run([flag])
      expect(result).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' })
    }
  })

  it('no command prints the help on stderr and exits 2', async () => {
    const result = await run([])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('Usage: m2m-guard <command>')
  })
})

describe('usage errors exit 2 with a message naming the problem, before any request', () => {
  const cases: [string[], RegExp][] = [
    [['frob'], /unknown command 'frob'/],
    [['--frob'], /unknown option --frob/],
    [['tokens'], /missing command: create, list, revoke or verify/],
    [['tokens', 'frob'], /unknown command 'frob'/],
    [['tokens', 'create', `--frob=${TOKEN}`], /unknown option --frob$/m],
    [['tokens', 'create', TOKEN], /takes no arguments/],
    [
      ['tokens', 'create', '--seconds-until-expiration', '0'],
      /--seconds-until-expiration must be a number > 0/,
    ],
    [
      ['tokens', 'create', '--seconds-until-expiration', '1e3'],
      /--seconds-until-expiration must be a number/,
    ],
    [
      ['tokens', 'create', '--seconds-until-expiration', '--json'],
      /--seconds-until-expiration needs a value/,
    ],
    [
      ['tokens', 'create', '--no-expiration', '--seconds-until-expiration', '5'],
      /exclude each other/,
    ],
    [['tokens', 'create', '--no-expiration=yes'], /--no-expiration takes no value/],
    [['tokens', 'create', '--claims', '{'], /--claims must be valid JSON/],
    [['tokens', 'create', '--claims', '[1]'], /--claims must be a JSON object/],
    [['tokens', 'create', '--token-format', 'paseto'], /--token-format must be opaque or jwt/],
    [['tokens', 'create', '--min-remaining-ttl-seconds', '-1'], /needs a value/],
    [['tokens', 'create', '--min-remaining-ttl-seconds', '1.5'], /must be an integer ≥ 0/],
    // The client's own check (reuse threshold ≥ lifetime) counts as a usage error too.
    [
      ['tokens', 'create', '--seconds-until-expiration', '60', '--min-remaining-ttl-seconds', '60'],
      /`minRemainingTtlSeconds` \(60\) must be less than `secondsUntilExpiration` \(60\)/,
    ],
    [['tokens', 'create', '--token-only', '--json'], /exclude each other/],
    [['tokens', 'create', '--timeout-ms', '0'], /--timeout-ms must be an integer from 1/],
    [
      ['tokens', 'create', '--api-url', 'ftp://example.com'],
      /API URL \(--api-url or CLERK_API_URL\) must use http/,
    ],
    [['tokens', 'list'], /--subject is required/],
    [
      ['tokens', 'list', '--subject', 'mch_short'],
      /--subject must be a machine id: mch_ followed by 27 letters, digits or _$/m,
    ],
    [
      ['tokens', 'list', '--subject', `mch_${'a'.repeat(27)}`, '--limit', '101'],
      /--limit must be an integer from 1 to 100/,
    ],
    [
      ['tokens', 'list', '--subject', `mch_${'a'.repeat(27)}`, '--offset', 'x'],
      /--offset must be an integer/,
    ],
    [
      ['tokens', 'list', '--subject', `mch_${'a'.repeat(27)}`, '--all', '--offset', '2'],
      /drop --offset/,
    ],
    [
      ['tokens', 'list', '--subject', `mch_${'a'.repeat(27)}`, '--limit', '5', '--limit', '6'],
      /given more than once/,
    ],
    [['tokens', 'revoke'], /missing <m2m_token_id>/],
    [['tokens', 'revoke', TOKEN], /must be a token id.*not its secret/],
    [['tokens', 'revoke', `mt_${'0'.repeat(32)}`, 'extra'], /expected one <m2m_token_id>/],
    [['tokens', 'verify'], /missing <token>/],
    [['tokens', 'verify', TOKEN, TOKEN], /give the token once/],
    [['tokens', 'verify', TOKEN, '--token', TOKEN], /give the token once/],
    [['tokens', 'verify', '-'], /stdin held no token/],
    [['emulator', '--port', '70000'], /--port must be an integer from 0 to 65535/],
    [['emulator', '--secret-key', KEY], /--secret-key must be an instance key/],
    [['emulator', '--faults', '{"latencyMs": "slow"}'], /faults\.latencyMs must be a number/],
    [['emulator', '--faults', '[]'], /--faults must be a JSON object/],
    [['emulator', 'now'], /takes no arguments/],
  ]
  for (const [argv, message] of cases) {
    it(`m2m-guard ${argv.join(' ').replaceAll(TOKEN, 'TOKEN').replaceAll(KEY, 'KEY')}`, async () => {
      const result = await run(argv, { env })
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      expect(result.stderr).toMatch(message)
      expect(result.stderr).toMatch(/Run 'm2m-guard[\w ]* --help' for usage\.\n$/)
      expect(result.stderr).not.toContain(TOKEN)
      expect(result.stderr).not.toContain(KEY)
    })
  }

  it('no key anywhere: exit 2 naming both environment variables', async () => {
    const result = await run(['tokens', 'verify', TOKEN], {
      env: { CLERK_API_URL: 'http://127.0.0.1:9' },
    })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('CLERK_MACHINE_SECRET_KEY')
    expect(result.stderr).toContain('CLERK_SECRET_KEY')
    // Blank values count as unset, as in the client.
    const blank = await run(['tokens', 'verify', TOKEN], { env: { CLERK_SECRET_KEY: '  ' } })
    expect(blank.code).toBe(2)
  })

  it('an unreachable API is exit 1, not 2', async () => {
    const result = await run(['tokens', 'verify', TOKEN, '--timeout-ms', '2000'], { env })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('could not reach')
    expect(result.stderr).not.toContain(KEY)
    expect(result.stderr).not.toContain(TOKEN)
  })
})

describe('a token or key typed where a command goes is not echoed', () => {
  for (const argv of [[TOKEN], ['tokens', TOKEN], [KEY]]) {
    it(`m2m-guard ${argv.join(' ').replaceAll(TOKEN, 'TOKEN').replaceAll(KEY, 'KEY')}`, async () => {
      const result = await run(argv, { env })
      expect(result.code).toBe(2)
      expect(result.stderr).toMatch(/unknown command: expected/)
      expect(result.stderr).not.toContain(TOKEN)
      expect(result.stderr).not.toContain(KEY)
    })
  }
})
