/** Runs the fleet walk for real: three processes, one redis-server, the emulator. */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { runDemo } from '../src/demo.js'

const haveRedis = spawnSync('redis-server', ['--version']).status === 0
const inCi = process.env['CI'] === 'true'
if (!haveRedis && !inCi) {
  console.warn('[example-fleet] redis-server not found: skipped (apt-get install redis-server)')
}

describe.skipIf(!haveRedis && !inCi)('examples/fleet', () => {
  it('shares one verification across instances, and a revoke on one is rejected by all', async () => {
    const lines: string[] = []
    const steps = await runDemo({ instances: 3, redisUrl: undefined, log: (l) => lines.push(l) })
    expect(steps.map((s) => [s.instance, s.action, s.status, s.error ?? null])).toEqual([
      ['instance-1', 'GET /internal/report', 200, null],
      ['instance-2', 'GET /internal/report', 200, null],
      ['instance-3', 'GET /internal/report', 200, null],
      ['instance-1', 'POST /internal/revoke', 200, null],
      ['instance-1', 'GET /internal/report', 401, 'token_revoked'],
      ['instance-2', 'GET /internal/report', 401, 'token_revoked'],
      ['instance-3', 'GET /internal/report', 401, 'token_revoked'],
    ])
    // One upstream verification served all three instances for the caller's token.
    expect(steps.slice(0, 3).map((s) => s.upstreamVerifyCalls)).toEqual([1, 1, 1])
    expect(lines.filter((l) => l.includes('from store'))).toHaveLength(2)
  }, 60_000)
})
