/**
 * The two guards in front of the upstream API: a bulkhead (bounded concurrency plus a bounded
 * queue) and a circuit breaker. Both are synchronous state machines with an injectable clock so
 * tests drive them deterministically.
 */

/** One slot of the bulkhead, held by one upstream call. */
export interface Lease {
  readonly startedAt: number
}

interface Waiter {
  resolve: (lease: Lease) => void
  cancelled: boolean
}

/**
 * Bounds calls in flight; beyond the queue, callers are refused at once instead of piling up.
 *
 * Slots are leases that expire after `leaseMs`: on workerd, a call whose request was cancelled
 * can stay pending forever, and its `finally` never runs. Expired leases are reclaimed when
 * someone needs a slot, so such calls cannot exhaust the bulkhead. `leaseMs` exceeds the
 * client's own deadline, so a live call is never reclaimed.
 *
 * @example
 * const slot = bulkhead.acquire()
 * if (slot === false) return unavailable()
 * const lease = slot instanceof Promise ? await slot : slot
 * try { await call() } finally { bulkhead.release(lease) }
 */
export class Bulkhead {
  private readonly leases = new Set<Lease>()
  private readonly waiters: Waiter[] = []

  constructor(
    private readonly maxActive: number,
    private readonly maxQueued: number,
    private readonly leaseMs: number = Number.POSITIVE_INFINITY,
    /** Real elapsed time, not the verifier's test clock: leases measure how long calls hang. */
    private readonly clock: () => number = () => performance.now(),
  ) {}

  get active(): number {
    return this.leases.size
  }

  get queued(): number {
    return this.waiters.length
  }

  /** A lease now; a promise of one once a slot frees; `false`: full, go away. */
  acquire(): Lease | false | Promise<Lease> {
    if (this.leases.size >= this.maxActive) this.reclaim()
    if (this.leases.size < this.maxActive && this.waiters.length === 0) return this.take()
    if (this.waiters.length >= this.maxQueued) return false
    return new Promise<Lease>((resolve) => this.waiters.push({ resolve, cancelled: false }))
  }

  /**
   * Waits for a queued slot at most `ms`; `undefined` when it did not come in time (the waiter
   * is withdrawn, and a slot handed to it later is given back at once).
   */
  wait(pending: Promise<Lease>, ms: number): Promise<Lease | undefined> {
    const waiter = this.waiters[this.waiters.length - 1]
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        if (waiter !== undefined) {
          waiter.cancelled = true
          const index = this.waiters.indexOf(waiter)
          if (index >= 0) this.waiters.splice(index, 1)
        }
        resolve(undefined)
      }, ms)
    })
    return Promise.race([pending, timeout]).finally(() => clearTimeout(timer))
  }

  release(lease: Lease): void {
    // Already reclaimed as expired: its slot was given away then.
    if (!this.leases.delete(lease)) return
    this.handOver()
  }

  private take(): Lease {
    const lease: Lease = { startedAt: this.clock() }
    this.leases.add(lease)
    return lease
  }

  private handOver(): void {
    while (this.leases.size < this.maxActive) {
      const waiter = this.waiters.shift()
      if (waiter === undefined) return
      if (!waiter.cancelled) waiter.resolve(this.take())
    }
  }

  private reclaim(): void {
    const expired = this.clock() - this.leaseMs
    for (const lease of this.leases) if (lease.startedAt <= expired) this.leases.delete(lease)
    this.handOver()
  }
}

/**
 * The longest an upstream Retry-After keeps the breaker open, and the most a 503 asks callers to
 * wait: one probe a minute costs Clerk nothing.
 *
 * @example
 * const waitMs = Math.min(upstreamRetryAfterMs, MAX_OPEN_MS)
 */
export const MAX_OPEN_MS = 60_000

/**
 * State of the breaker, as `stats()` reports it.
 *
 * @example
 * if (verifier.stats().breaker !== 'closed') alert('Clerk API unreachable')
 */
export type BreakerState = 'closed' | 'open' | 'half_open'

/**
 * Opens after `threshold` consecutive transient failures, stays open `openMs` (or the upstream's
 * longer Retry-After), then lets exactly one probe through; the probe's outcome closes or reopens.
 * A probe that never reports back (its request was cancelled on workerd, or it hung) is given up
 * after `probeTimeoutMs`, so the breaker cannot stay half-open for good.
 *
 * @example
 * const waitMs = breaker.admit()
 * if (waitMs > 0) return unavailable(waitMs)
 */
export class CircuitBreaker {
  state: BreakerState = 'closed'
  private failures = 0
  private openUntil = 0
  /** How long the current open period was meant to last: a longer remainder means the clock stepped back. */
  private openFor = 0
  private probing = false
  private probeSince = 0
  /** Numbers the probes, so a stale probe's late `cancel` cannot free its successor's slot. */
  private probeNumber = 0

  constructor(
    private readonly threshold: number,
    private readonly openMs: number,
    private readonly now: () => number,
    private readonly onChange: (state: 'open' | 'closed', consecutiveFailures: number) => void,
    private readonly probeTimeoutMs: number = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * 0 when the call may go ahead, else how long (ms) until it is worth asking again. A call let
   * through while half-open is the probe (`state === 'half_open'` right after a 0): it must end in
   * `success()`, `failure()` or `cancel(currentProbe())`.
   */
  admit(): number {
    if (this.state === 'closed') return 0
    if (this.state === 'open') {
      const remaining = this.remainingOpen()
      if (remaining > 0) return Math.ceil(remaining)
      this.state = 'half_open'
      this.probing = false
    }
    // Half-open: one probe at a time (a new one only once the last is given up); everyone else
    // fails fast until it answers. A clock that stepped back gives the probe up rather than
    // keeping it for the size of the step.
    const sinceProbe = this.now() - this.probeSince
    if (this.probing && sinceProbe >= 0 && sinceProbe < this.probeTimeoutMs) {
      return Math.max(1, Math.ceil(this.openMs / 2))
    }
    this.probing = true
    this.probeSince = this.now()
    this.probeNumber++
    return 0
  }

  /** The number of the probe just admitted: what its owner hands to `cancel`. */
  currentProbe(): number {
    return this.probeNumber
  }

  /** What `stats()` shows: an open breaker whose time is up reads as half-open (probe allowed). */
  current(): BreakerState {
    return this.state === 'open' && this.remainingOpen() <= 0 ? 'half_open' : this.state
  }

  /**
   * Open time left. A clock stepped back would stretch it by the size of the step (an hour's
   * step: an hour of 503s with Clerk healthy), so a remainder longer than the period ends it.
   */
  private remainingOpen(): number {
    const remaining = this.openUntil - this.now()
    if (remaining <= this.openFor) return remaining
    this.openUntil = this.now()
    return 0
  }

  /**
   * The probe never got an answer that says anything about upstream (refused by the bulkhead, or
   * its caller went away): the next call may probe instead. Only the probe's owner calls this,
   * with its number; a probe that was already given up changes nothing.
   */
  cancel(probe: number): void {
    if (probe === this.probeNumber) this.probing = false
  }

  /** Upstream answered (any verdict, even 404): it is healthy. */
  success(): void {
    this.failures = 0
    this.probing = false
    if (this.state !== 'closed') {
      this.state = 'closed'
      this.onChange('closed', 0)
    }
  }

  /** A transient failure (timeout, reset, 5xx, 429). */
  failure(retryAfterMs: number | undefined): void {
    this.failures++
    this.probing = false
    if (
      this.state === 'half_open' ||
      (this.state === 'closed' && this.failures >= this.threshold)
    ) {
      this.state = 'open'
      // Upstream's Retry-After is honoured up to a bound: one probe a minute costs Clerk nothing,
      // and a huge value must not keep every miss failing for hours.
      this.openFor = Math.max(this.openMs, Math.min(retryAfterMs ?? 0, MAX_OPEN_MS))
      this.openUntil = this.now() + this.openFor
      this.onChange('open', this.failures)
    }
  }

  /** Remaining open time in ms, 0 when not open. */
  remainingMs(): number {
    return this.state === 'open' ? Math.max(0, Math.ceil(this.remainingOpen())) : 0
  }
}
