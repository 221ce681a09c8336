import { type Emulator, type EmulatorMachine, startEmulator } from '@m2m-guard/emulator'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { M2MClient } from '../types.js'
import { createM2MClient } from './index.js'

// listAllTokens against the real emulator: a newest-first list that omits revoked tokens, which
// is what makes plain offset paging skip or repeat tokens when the list moves underneath it.
describe('listAllTokens over a list that changes while it is read', () => {
  let emulator: Emulator
  let machine: EmulatorMachine
  let client: M2MClient

  beforeEach(async () => {
    emulator = await startEmulator({ port: 0 })
    machine = await emulator.createMachine({ name: 'worker' })
    client = createM2MClient({ secretKey: machine.secretKey, apiUrl: emulator.url, retry: false })
  })

  afterEach(async () => {
    await emulator.close()
  })

  async function mint(count: number): Promise<string[]> {
    const ids: string[] = []
    for (let i = 0; i < count; i++) ids.push((await emulator.createToken(machine.id)).id)
    return ids
  }

  const listRequests = () => emulator.stats().byOperation['getM2MTokens'] ?? 0

  it('revoking every token it yields revokes them all, re-reading only what slipped past', async () => {
    const minted = await mint(150)
    emulator.resetStats()
    const yielded: string[] = []
    for await (const token of client.listAllTokens({ subject: machine.id })) {
      yielded.push(token.id)
      await client.revokeToken({ m2mTokenId: token.id })
    }
    // Page 1, page 2 found the count down by 100 (empty), page 1 again: the last 50.
    expect(listRequests()).toBe(3)
    expect((await client.listTokens({ subject: machine.id })).totalCount).toBe(0)
    expect(new Set(yielded).size).toBe(yielded.length)
    expect([...yielded].sort()).toEqual([...minted].sort())
  })

  it('revoking every token it yields also works in small pages', async () => {
    const minted = await mint(150)
    const yielded: string[] = []
    for await (const token of client.listAllTokens({ subject: machine.id, pageSize: 7 })) {
      yielded.push(token.id)
      await emulator.revokeToken(token.id)
    }
    expect((await client.listTokens({ subject: machine.id })).totalCount).toBe(0)
    expect([...yielded].sort()).toEqual([...minted].sort())
  })

  it('a token minted during the iteration does not make another one come twice', async () => {
    const minted = await mint(150)
    const yielded: string[] = []
    let extra: string | undefined
    emulator.resetStats()
    for await (const token of client.listAllTokens({ subject: machine.id })) {
      yielded.push(token.id)
      if (extra === undefined) extra = (await emulator.createToken(machine.id)).id
    }
    // A growing list only repeats ids, it cannot hide any: no page is read again.
    expect(listRequests()).toBe(2)
    expect(new Set(yielded).size).toBe(yielded.length)
    // Every token present for the whole iteration came out; the new one may or may not.
    expect(yielded.filter((id) => id !== extra).sort()).toEqual([...minted].sort())
  })

  it('ends while tokens keep being minted, re-reading nothing', async () => {
    const minted = await mint(300)
    emulator.resetStats()
    const yielded: string[] = []
    for await (const token of client.listAllTokens({ subject: machine.id, pageSize: 10 })) {
      yielded.push(token.id)
      if (yielded.length % 5 === 0) await emulator.createToken(machine.id)
    }
    expect(new Set(yielded).size).toBe(yielded.length)
    expect(yielded.filter((id) => minted.includes(id)).sort()).toEqual([...minted].sort())
    // Two new tokens per page of 10: the offset still gains 8 a page on the growing list.
    expect(listRequests()).toBeLessThanOrEqual(Math.ceil(300 / 8) + 1)
  })

  it('a token revoked elsewhere during the iteration costs no token present throughout', async () => {
    const minted = await mint(150)
    const yielded: string[] = []
    for await (const token of client.listAllTokens({ subject: machine.id, pageSize: 40 })) {
      yielded.push(token.id)
      // Someone else revokes tokens this iteration has already passed, shifting the rest left.
      if (yielded.length % 30 === 0) await emulator.revokeToken(yielded[yielded.length - 10]!)
    }
    expect(new Set(yielded).size).toBe(yielded.length)
    expect([...yielded].sort()).toEqual([...minted].sort())
  })

  it.each([1, 2, 3, 4, 5])(
    'under churn (seed %i) it ends, and yields each token present throughout once',
    async (seed) => {
      const minted = await mint(120)
      const live = new Set(minted)
      const touched = new Set<string>()
      // Small deterministic PRNG (mulberry32), so a failure can be replayed.
      let state = seed
      const random = () => {
        state = (state + 0x6d2b79f5) | 0
        let t = Math.imul(state ^ (state >>> 15), 1 | state)
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296
      }
      const yielded: string[] = []
      for await (const token of client.listAllTokens({ subject: machine.id, pageSize: 9 })) {
        yielded.push(token.id)
        if (random() < 0.3) touched.add((await emulator.createToken(machine.id)).id)
        if (random() < 0.4) {
          const victims = [...live]
          const victim = victims[Math.floor(random() * victims.length)]!
          live.delete(victim)
          touched.add(victim)
          await emulator.revokeToken(victim)
        }
      }
      expect(new Set(yielded).size).toBe(yielded.length)
      const presentThroughout = minted.filter((id) => !touched.has(id))
      expect(yielded.filter((id) => !touched.has(id)).sort()).toEqual(presentThroughout.sort())
    },
  )

  it.each([
    [0, 100, 1],
    [150, undefined, 2],
    [200, undefined, 2],
    [45, 10, 5],
  ])(
    'an unchanged list of %i tokens in pages of %s costs %i requests',
    async (count, pageSize, requests) => {
      const minted = await mint(count)
      emulator.resetStats()
      const yielded: string[] = []
      for await (const token of client.listAllTokens({
        subject: machine.id,
        ...(pageSize === undefined ? {} : { pageSize }),
      })) {
        yielded.push(token.id)
      }
      expect(listRequests()).toBe(requests)
      expect(yielded).toEqual([...minted].reverse())
    },
  )
})
