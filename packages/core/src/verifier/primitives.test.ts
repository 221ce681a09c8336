import { describe, expect, test } from 'vitest'
import { Bulkhead, CircuitBreaker, type Lease } from './primitives.js'

describe('Bulkhead', () => {
  test('admits maxActive, queues maxQueued, refuses the rest; a release hands the slot over', async () => {
    const b = new Bulkhead(1, 1)
    const first = b.acquire()
    expect(first).toMatchObject({ startedAt: expect.any(Number) })
    const queued = b.acquire()
    expect(queued).toBeInstanceOf(Promise)
    expect(b.acquire()).toBe(false)
    b.release(first as Lease)
    const second = await (queued as Promise<Lease>)
    expect(b.active).toBe(1)
    expect(b.queued).toBe(0)
    b.release(second)
    b.release(second)
    expect(b.active).toBe(0)
  })

  test('a lease that never comes back (a hung call) is reclaimed after leaseMs', () => {
    let t = 0
    const b = new Bulkhead(1, 0, 1_000, () => t)
    const hung = b.acquire() as Lease
    expect(b.acquire()).toBe(false)
    t = 1_000
    const next = b.acquire()
    expect(next).not.toBe(false)
    // The late release of the reclaimed lease must not free the new holder's slot.
    b.release(hung)
    expect(b.active).toBe(1)
    b.release(next as Lease)
    expect(b.active).toBe(0)
  })

  test('a queued waiter gives up after its wait; a slot freed later is not lost to it', async () => {
    const b = new Bulkhead(1, 1)
    const held = b.acquire() as Lease
    const pending = b.acquire() as Promise<Lease>
    expect(await b.wait(pending, 10)).toBeUndefined()
    expect(b.queued).toBe(0)
    b.release(held)
    expect(b.active).toBe(0)
  })
})

describe('CircuitBreaker', () => {
  test('closed → open after threshold → half-open single probe → closed', () => {
    let t = 0
    const changes: string[] = []
    const cb = new CircuitBreaker(
      2,
      1_000,
      () => t,
      (s) => changes.push(s),
    )
    expect(cb.admit()).toBe(0)
    cb.failure(undefined)
    cb.success()
    cb.failure(undefined)
    expect(cb.state).toBe('closed')
    cb.failure(3_000)
    expect(cb.state).toBe('open')
    expect(cb.admit()).toBe(3_000)
    t = 3_000
    expect(cb.admit()).toBe(0)
    expect(cb.state).toBe('half_open')
    expect(cb.admit()).toBeGreaterThan(0)
    cb.cancel(cb.currentProbe())
    expect(cb.admit()).toBe(0)
    cb.success()
    expect(cb.state).toBe('closed')
    expect(changes).toEqual(['open', 'closed'])
  })

  test('a probe that never reports back is given up after probeTimeoutMs; current() reads the clock', () => {
    let t = 0
    const cb = new CircuitBreaker(
      1,
      1_000,
      () => t,
      () => {},
      5_000,
    )
    cb.failure(undefined)
    expect(cb.current()).toBe('open')
    t = 1_000
    expect(cb.state).toBe('open')
    expect(cb.current()).toBe('half_open')
    expect(cb.admit()).toBe(0)
    t = 5_999
    expect(cb.admit()).toBeGreaterThan(0)
    const givenUp = cb.currentProbe()
    t = 6_000
    expect(cb.admit()).toBe(0)
    // The given-up probe's late cancel must not free its successor's slot.
    cb.cancel(givenUp)
    expect(cb.admit()).toBeGreaterThan(0)
    // A clock stepped back gives the probe up instead of keeping it for the step.
    t = 1_000
    expect(cb.admit()).toBe(0)
    cb.success()
    expect(cb.current()).toBe('closed')
  })
})

describe('CircuitBreaker and the clock', () => {
  test('a clock stepped back while open ends the open period instead of stretching it', () => {
    let t = 1_000_000
    const b = new CircuitBreaker(
      1,
      5_000,
      () => t,
      () => {},
    )
    b.failure(undefined)
    expect(b.admit()).toBe(5_000)
    t -= 3_600_000
    // An hour back: without the bound, 3 605 000 ms of fail-fast with Clerk healthy.
    expect(b.remainingMs()).toBe(0)
    expect(b.admit()).toBe(0)
    expect(b.state).toBe('half_open')
  })

  test("upstream's Retry-After keeps it open at most a minute", () => {
    let t = 0
    const b = new CircuitBreaker(
      1,
      5_000,
      () => t,
      () => {},
    )
    b.failure(86_400_000)
    expect(b.remainingMs()).toBe(60_000)
    t = 60_000
    expect(b.admit()).toBe(0)
  })
})
