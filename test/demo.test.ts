/**
 * `npm start -- --once` as a user runs it: a real child process through scripts/start.mjs (tsx,
 * source condition), the real emulator and the three example servers. Exit 0 means every answer
 * of the walk was the expected one.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

function runDemoOnce(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['scripts/start.mjs', '--once'], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, output }))
  })
}

it('npm start -- --once walks through every step and exits 0', { timeout: 90_000 }, async () => {
  const { code, output } = await runDemoOnce()
  expect(output).toContain('All 18 answers were as expected.')
  expect(code, output).toBe(0)
  for (const heading of [
    '1. nightly-job asks Clerk for a token',
    '2. nightly-job calls reports-api with the token',
    '3. marketing-bot tries with its own token',
    '4. A call without any token',
    "5. nightly-job's token is revoked at Clerk",
    '6. Clerk goes down',
    '7. Clerk is back',
  ]) {
    expect(output).toContain(heading)
  }
  for (const answer of ['200 OK', '403 Forbidden', '401 Unauthorized', '503 Service Unavailable']) {
    expect(output).toContain(answer)
  }
  // Secrets never appear whole: token secrets are mt_ + 48 characters (ids are mt_ + 32 hex),
  // generated keys are long random strings.
  expect(output).not.toMatch(/mt_[A-Za-z0-9]{33,}/)
  expect(output).not.toMatch(/sk_test_[A-Za-z0-9]{20,}/)
  expect(output).not.toMatch(/ak_[A-Za-z0-9]{40}/)
  // A user must never see a stack trace.
  expect(output).not.toMatch(/\n\s+at .+:\d+:\d+/)
})
