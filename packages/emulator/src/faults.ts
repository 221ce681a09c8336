/** Fault configuration: validation, merging, and the dice that decide which requests fail. */
import type { EmulatorFaults, FaultsPatch } from './types.js'

const KEYS = [
  'down',
  'latencyMs',
  'errorRate',
  'errorStatus',
  'rateLimit',
  'dropRate',
  'trickleMs',
  'operations',
  'seed',
] as const

function fraction(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new TypeError(`faults.${name} must be a number from 0 to 1`)
  }
  return value
}

function duration(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 600_000) {
    throw new TypeError(`faults.${name} must be a number of ms from 0 to 600000`)
  }
  return value
}

/**
 * Validates a patch and merges it into `current`. An empty patch clears everything; a `null`
 * value clears one key. Throws `TypeError` naming the bad key.
 */
export function mergeFaults(current: EmulatorFaults, patch: unknown): EmulatorFaults {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new TypeError('faults must be an object')
  }
  const entries = Object.entries(patch as FaultsPatch)
  if (entries.length === 0) return {}
  const next: EmulatorFaults = { ...current }
  for (const [key, value] of entries) {
    if (!(KEYS as readonly string[]).includes(key))
      throw new TypeError(`faults.${key} is not a fault`)
    const k = key as (typeof KEYS)[number]
    if (value === null || value === undefined) {
      delete next[k]
      continue
    }
    switch (k) {
      case 'down':
        if (typeof value !== 'boolean') throw new TypeError('faults.down must be a boolean')
        next.down = value
        break
      case 'latencyMs':
      case 'trickleMs':
        next[k] = duration(k, value)
        break
      case 'errorRate':
      case 'dropRate':
        next[k] = fraction(k, value)
        break
      case 'errorStatus':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 500 || value > 599) {
          throw new TypeError('faults.errorStatus must be an integer from 500 to 599')
        }
        next.errorStatus = value
        break
      case 'rateLimit': {
        const rl = value as { rate?: unknown; retryAfterSeconds?: unknown }
        if (typeof rl !== 'object' || Array.isArray(rl)) {
          throw new TypeError('faults.rateLimit must be { rate, retryAfterSeconds? }')
        }
        const retry = rl.retryAfterSeconds ?? 1
        if (typeof retry !== 'number' || !Number.isInteger(retry) || retry < 0 || retry > 86_400) {
          throw new TypeError(
            'faults.rateLimit.retryAfterSeconds must be an integer from 0 to 86400',
          )
        }
        next.rateLimit = { rate: fraction('rateLimit.rate', rl.rate), retryAfterSeconds: retry }
        break
      }
      case 'operations':
        if (!Array.isArray(value) || !value.every((op) => typeof op === 'string')) {
          throw new TypeError('faults.operations must be an array of operationIds')
        }
        next.operations = [...value]
        break
      case 'seed':
        if (typeof value !== 'number' || !Number.isInteger(value)) {
          throw new TypeError('faults.seed must be an integer')
        }
        next.seed = value
        break
    }
  }
  return next
}

/** mulberry32: tiny seeded PRNG, so a fractional rate gives the same sequence on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

export function faultsApplyTo(faults: EmulatorFaults, operationId: string): boolean {
  return !faults.operations || faults.operations.includes(operationId)
}
