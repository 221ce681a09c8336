import { decodeJwt, importSPKI, jwtVerify } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { startEmulator } from './emulator.js'
import type { Emulator } from './types.js'

let emulator: Emulator | undefined
afterEach(async () => {
  await emulator?.close()
  emulator = undefined
})

describe('JWT-format tokens with a fractional lifetime', () => {
  // 900 ms into a second: a sub-second lifetime used to end before the whole second did.
  it.each([
    [1_700_000_000_900, 0.05],
    [1_700_000_000_900, 0.5],
    [1_700_000_000_999, 0.001],
    [1_700_000_000_500, 1.5],
    [1_700_000_000_000, 0.25],
  ])(
    'issued at %i ms for %d s: not expired on issue, exp and expiration agree',
    async (nowMs, seconds) => {
      emulator = await startEmulator({ port: 0, now: () => nowMs })
      const machine = await emulator.createMachine({ name: 'caller' })
      const created = await emulator.createToken(machine.id, {
        tokenFormat: 'jwt',
        secondsUntilExpiration: seconds,
      })
      const payload = decodeJwt(created.token as string)
      expect(created.expired).toBe(false)
      expect(created.expiration).toBe((payload.exp as number) * 1000)
      expect(created.expiration as number).toBeGreaterThan(nowMs)
      // Whole seconds, never shorter than a whole second rounded up from what was asked.
      expect((payload.exp as number) - (payload.iat as number)).toBe(Math.ceil(seconds))
      // At the very moment of issue, the token verifies: locally with jose, and by the emulator.
      const key = await importSPKI(await emulator.jwtPublicKey(), 'RS256')
      await expect(
        jwtVerify(created.token as string, key, { currentDate: new Date(nowMs) }),
      ).resolves.toBeDefined()
      const res = await fetch(`${emulator.apiUrl}/m2m_tokens/verify`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${emulator.secretKey}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ token: created.token }),
      })
      expect(res.status).toBe(200)
      const verified = (await res.json()) as { expired: boolean; expiration: number }
      expect(verified).toMatchObject({ expired: false, expiration: created.expiration })
    },
  )
})
