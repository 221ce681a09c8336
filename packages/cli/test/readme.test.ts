import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { startEmulator } from '@m2m-guard/emulator'
import { describe, expect, it } from 'vitest'
import { readSeedFile } from '../src/seed.js'
import { bundleCli } from './bundle.js'

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const SEED = fileURLToPath(new URL('../examples/seed.json', import.meta.url))

describe('README', () => {
  it('shows examples/seed.json as it is', () => {
    expect(README).toContain(readFileSync(SEED, 'utf8').trim())
  })

  it('runs the tokens session as written, against an emulator started as the README says', {
    timeout: 120_000,
  }, async () => {
    const session = /<!-- readme-session -->\n```sh\n([\s\S]*?)```/.exec(README)?.[1]
    expect(session).toBeTruthy()
    const start = /npx m2m-guard emulator (--seed \S+ --secret-key (\S+))/.exec(README)
    expect(start?.[1]).toBe(
      '--seed packages/cli/examples/seed.json --secret-key sk_test_demo_instance_key',
    )
    const cli = await bundleCli()
    const emulator = await startEmulator({
      port: 0,
      seed: await readSeedFile(SEED),
      secretKey: start?.[2] as string,
    })
    try {
      // Only the port differs (tests never take a fixed one). `npx m2m-guard` becomes the command
      // bundled from source, so the test needs neither npx nor a build.
      const script = [
        'set -e',
        `m2m-guard() { node ${JSON.stringify(cli.file)} "$@"; }`,
        'npx() { "$@"; }',
        (session as string).replaceAll('http://127.0.0.1:4010', emulator.url),
      ].join('\n')
      const child = spawn('bash', ['-c', script], {
        env: { PATH: process.env.PATH ?? '' },
      })
      let stdout = ''
      let stderr = ''
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
      // 'close', not 'exit': 'exit' can come before the last output has been read from the pipes.
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
      expect(stderr).toMatch(/tokens verify: the API answered 404\n {2}token_revoked/)
      expect(code).toBe(0)
      expect(stdout).toMatch(/^claims\s+\{"job":"nightly"\}$/m)
      expect(stdout).toMatch(/^subject\s+mch_democaller00000000000000000$/m)
      expect(stdout).toMatch(/^revocation reason\s+rotated$/m)
      expect(stdout).toMatch(/^2 tokens$/m)
      expect(stdout.trimEnd()).toMatch(/exit code 1$/)
    } finally {
      await emulator.close()
      await cli.remove()
    }
  })
})
