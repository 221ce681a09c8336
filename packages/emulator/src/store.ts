/** In-memory state of one emulated Clerk instance: machines, their keys and scopes, opaque tokens. */
import { ApiError, forbidden, invalidParam, notFound } from './http/errors.js'
import {
  MACHINE_ID_RE,
  newInstanceId,
  newMachineId,
  newMachineKey,
  newTokenId,
  newTokenSecret,
} from './ids.js'

export const DEFAULT_TOKEN_TTL = 3600
export const MAX_TOKEN_TTL = 315_360_000
export const MAX_SCOPES = 150

export interface MachineRecord {
  id: string
  name: string
  createdAt: number
  updatedAt: number
  defaultTokenTtl: number
  secretKey: string
  /** Keys replaced by a rotation, valid until `validUntil` (ms). */
  previousKeys: { secret: string; validUntil: number }[]
  /** Scoped machine ids in insertion order, with the scope's creation time. */
  scopes: { to: string; createdAt: number }[]
}

export interface TokenRecord {
  id: string
  secret: string
  subject: string
  claims: unknown
  scopes: string[]
  revoked: boolean
  revocationReason: string | null
  expiration: number | null
  lastUsedAt: number | null
  createdAt: number
  updatedAt: number
}

/** A token as the spec's M2M token object; `token` only on create. */
export interface WireToken {
  object: 'machine_to_machine_token'
  id: string
  subject: string
  claims: unknown
  scopes: string[]
  token?: string
  revoked: boolean
  revocation_reason: string | null
  expired: boolean
  expiration: number | null
  last_used_at: number | null
  created_at: number
  updated_at: number
}

export interface PersistedState {
  version: 1
  instanceId: string
  secretKey: string
  signingKey?: Record<string, unknown>
  machines: MachineRecord[]
  tokens: TokenRecord[]
}

export type Caller = { kind: 'instance' } | { kind: 'machine'; machineId: string }

/** Deterministic JSON (sorted keys), so claims compare by value for token reuse. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    )
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

export class Store {
  instanceId: string
  secretKey: string
  readonly machines = new Map<string, MachineRecord>()
  readonly tokens = new Map<string, TokenRecord>()
  private readonly tokensBySecret = new Map<string, TokenRecord>()
  private readonly keys = new Map<string, MachineRecord>()
  private readonly now: () => number
  /** Called after every change, so persistence can schedule a write. */
  onChange: () => void = () => {}

  constructor(options: { secretKey: string; instanceId?: string; now: () => number }) {
    this.secretKey = options.secretKey
    this.instanceId = options.instanceId ?? newInstanceId()
    this.now = options.now
  }

  // ---- persistence -------------------------------------------------------------------------

  load(state: PersistedState): void {
    this.instanceId = state.instanceId
    this.secretKey = state.secretKey
    for (const m of state.machines) this.indexMachine(m)
    for (const t of state.tokens) {
      this.tokens.set(t.id, t)
      this.tokensBySecret.set(t.secret, t)
    }
  }

  snapshot(signingKey?: Record<string, unknown>): PersistedState {
    return {
      version: 1,
      instanceId: this.instanceId,
      secretKey: this.secretKey,
      ...(signingKey ? { signingKey } : {}),
      machines: [...this.machines.values()],
      tokens: [...this.tokens.values()],
    }
  }

  private indexMachine(m: MachineRecord): void {
    this.machines.set(m.id, m)
    this.keys.set(m.secretKey, m)
    for (const k of m.previousKeys) this.keys.set(k.secret, m)
  }

  // ---- auth --------------------------------------------------------------------------------

  /** Resolves a bearer key to a caller, or `undefined` when no active key matches. */
  authenticate(key: string): Caller | undefined {
    if (key === this.secretKey) return { kind: 'instance' }
    const machine = this.keys.get(key)
    if (!machine) return undefined
    if (machine.secretKey === key) return { kind: 'machine', machineId: machine.id }
    const previous = machine.previousKeys.find((k) => k.secret === key)
    if (previous && previous.validUntil > this.now())
      return { kind: 'machine', machineId: machine.id }
    return undefined
  }

  // ---- machines ----------------------------------------------------------------------------

  getMachineOr404(id: string): MachineRecord {
    const m = this.machines.get(id)
    if (!m) throw notFound('Machine')
    return m
  }

  createMachine(input: {
    name: string
    scopedMachines?: string[]
    defaultTokenTtl?: number
    id?: string
    secretKey?: string
  }): MachineRecord {
    const id = input.id ?? newMachineId()
    if (!MACHINE_ID_RE.test(id)) throw invalidParam('id', 'id must match ^mch_\\w{27}$.')
    if (this.machines.has(id)) {
      throw new ApiError(409, 'duplicate_record', 'duplicate', `A machine with id ${id} exists.`)
    }
    const secretKey = input.secretKey ?? newMachineKey()
    if (!secretKey.startsWith('ak_') || this.keys.has(secretKey)) {
      throw invalidParam('secret_key', 'secret_key must start with ak_ and be unique.')
    }
    const scoped = [...new Set(input.scopedMachines ?? [])]
    if (scoped.length > MAX_SCOPES) {
      throw invalidParam('scoped_machines', `A machine can have at most ${MAX_SCOPES} scopes.`)
    }
    for (const to of scoped) {
      if (!this.machines.has(to)) {
        throw invalidParam(
          'scoped_machines',
          `scoped_machines contains ${JSON.stringify(to)}, which is not a machine of this instance.`,
          'form_param_value_invalid',
        )
      }
    }
    const now = this.now()
    const m: MachineRecord = {
      id,
      name: input.name,
      createdAt: now,
      updatedAt: now,
      defaultTokenTtl: input.defaultTokenTtl ?? DEFAULT_TOKEN_TTL,
      secretKey,
      previousKeys: [],
      scopes: scoped.map((to) => ({ to, createdAt: now })),
    }
    this.indexMachine(m)
    this.onChange()
    return m
  }

  updateMachine(id: string, patch: { name?: string; defaultTokenTtl?: number }): MachineRecord {
    const m = this.getMachineOr404(id)
    if (patch.name !== undefined) m.name = patch.name
    if (patch.defaultTokenTtl !== undefined) m.defaultTokenTtl = patch.defaultTokenTtl
    m.updatedAt = this.now()
    this.onChange()
    return m
  }

  /** Deletes a machine, its keys and its tokens, and removes it from other machines' scopes. */
  deleteMachine(id: string): void {
    const m = this.getMachineOr404(id)
    this.machines.delete(id)
    this.keys.delete(m.secretKey)
    for (const k of m.previousKeys) this.keys.delete(k.secret)
    for (const t of [...this.tokens.values()]) {
      if (t.subject === id) {
        this.tokens.delete(t.id)
        this.tokensBySecret.delete(t.secret)
      }
    }
    for (const other of this.machines.values()) {
      other.scopes = other.scopes.filter((s) => s.to !== id)
    }
    this.onChange()
  }

  rotateKey(id: string, previousTokenTtl: number): MachineRecord {
    const m = this.getMachineOr404(id)
    const now = this.now()
    // Old keys past their grace are dropped here, so the key index cannot grow forever.
    m.previousKeys = m.previousKeys.filter((k) => {
      const live = k.validUntil > now
      if (!live) this.keys.delete(k.secret)
      return live
    })
    if (previousTokenTtl > 0) {
      m.previousKeys.push({ secret: m.secretKey, validUntil: now + previousTokenTtl * 1000 })
    } else {
      this.keys.delete(m.secretKey)
    }
    m.secretKey = newMachineKey()
    this.keys.set(m.secretKey, m)
    m.updatedAt = now
    this.onChange()
    return m
  }

  addScope(fromId: string, toId: string): { createdAt: number } {
    const from = this.getMachineOr404(fromId)
    if (!this.machines.has(toId)) throw notFound('Machine')
    if (fromId === toId) {
      throw invalidParam(
        'to_machine_id',
        'A machine cannot be scoped to itself.',
        'form_param_value_invalid',
      )
    }
    if (from.scopes.some((s) => s.to === toId)) {
      throw new ApiError(409, 'duplicate_record', 'duplicate', 'This machine scope already exists.')
    }
    if (from.scopes.length >= MAX_SCOPES) {
      throw invalidParam(
        'to_machine_id',
        `A machine can have at most ${MAX_SCOPES} scopes.`,
        'form_param_value_invalid',
      )
    }
    const scope = { to: toId, createdAt: this.now() }
    from.scopes.push(scope)
    from.updatedAt = scope.createdAt
    this.onChange()
    return scope
  }

  removeScope(fromId: string, toId: string): void {
    const from = this.getMachineOr404(fromId)
    const before = from.scopes.length
    from.scopes = from.scopes.filter((s) => s.to !== toId)
    if (from.scopes.length === before) throw notFound('Machine scope')
    from.updatedAt = this.now()
    this.onChange()
  }

  // ---- tokens ------------------------------------------------------------------------------

  isExpired(t: { expiration: number | null }): boolean {
    return t.expiration !== null && t.expiration <= this.now()
  }

  toWire(t: TokenRecord, withSecret = false): WireToken {
    return {
      object: 'machine_to_machine_token',
      id: t.id,
      subject: t.subject,
      claims: t.claims,
      scopes: [...t.scopes],
      ...(withSecret ? { token: t.secret } : {}),
      revoked: t.revoked,
      revocation_reason: t.revocationReason,
      expired: this.isExpired(t),
      expiration: t.expiration,
      last_used_at: t.lastUsedAt,
      created_at: t.createdAt,
      updated_at: t.updatedAt,
    }
  }

  /**
   * Mints an opaque token, or returns a live one when `minRemainingTtlSeconds` allows reuse.
   * `secondsUntilExpiration`: a number, `null` (never expires) or `undefined` (machine default).
   */
  createToken(
    machineId: string,
    input: {
      secondsUntilExpiration: number | null | undefined
      claims: unknown
      minRemainingTtlSeconds?: number
    },
  ): TokenRecord {
    const m = this.getMachineOr404(machineId)
    const now = this.now()
    const lifetime =
      input.secondsUntilExpiration === undefined ? m.defaultTokenTtl : input.secondsUntilExpiration
    const scopes = m.scopes.map((s) => s.to)
    const min = input.minRemainingTtlSeconds
    if (min !== undefined) {
      if (lifetime !== null && min >= lifetime) {
        throw invalidParam(
          'min_remaining_ttl_seconds',
          `min_remaining_ttl_seconds (${min}) must be less than the token lifetime (${lifetime} seconds).`,
          'form_param_value_invalid',
        )
      }
      const claimsKey = canonicalJson(input.claims)
      const scopesKey = canonicalJson([...scopes].sort())
      let best: TokenRecord | undefined
      for (const t of this.tokens.values()) {
        if (t.subject !== machineId || t.revoked || this.isExpired(t)) continue
        if (t.expiration !== null && t.expiration - now < min * 1000) continue
        if (canonicalJson(t.claims) !== claimsKey) continue
        if (canonicalJson([...t.scopes].sort()) !== scopesKey) continue
        if (!best || t.createdAt > best.createdAt) best = t
      }
      if (best) return best
    }
    let id = newTokenId()
    while (this.tokens.has(id)) id = newTokenId()
    const t: TokenRecord = {
      id,
      secret: newTokenSecret(),
      subject: machineId,
      claims: input.claims,
      scopes,
      revoked: false,
      revocationReason: null,
      expiration: lifetime === null ? null : now + Math.round(lifetime * 1000),
      lastUsedAt: null,
      createdAt: now,
      updatedAt: now,
    }
    this.tokens.set(t.id, t)
    this.tokensBySecret.set(t.secret, t)
    this.onChange()
    return t
  }

  listTokens(
    caller: Caller,
    q: { subject: string; revoked: boolean; expired: boolean; limit: number; offset: number },
  ): { tokens: TokenRecord[]; total: number } {
    if (caller.kind === 'machine' && caller.machineId !== q.subject) {
      throw forbidden('A machine secret key can only list the tokens of its own machine.')
    }
    if (!this.machines.has(q.subject)) throw notFound('Machine')
    // Newest first, as Clerk documents. Map order is creation order, so reversing it first makes
    // the stable sort keep tokens minted in the same millisecond newest first too.
    const matching = [...this.tokens.values()]
      .reverse()
      .filter(
        (t) =>
          t.subject === q.subject && (q.revoked || !t.revoked) && (q.expired || !this.isExpired(t)),
      )
      .sort((a, b) => b.createdAt - a.createdAt)
    return { tokens: matching.slice(q.offset, q.offset + q.limit), total: matching.length }
  }

  revokeToken(caller: Caller, id: string, reason: string | null): TokenRecord {
    const t = this.tokens.get(id)
    // A machine revoking another machine's token gets the same 404 as for an unknown id.
    if (!t || (caller.kind === 'machine' && t.subject !== caller.machineId))
      throw notFound('M2M token')
    if (!t.revoked) {
      t.revoked = true
      t.revocationReason = reason
      t.updatedAt = this.now()
      this.onChange()
    }
    return t
  }

  /** Finds an opaque token by secret for verify; throws the 404 that verify answers. */
  verifyOpaque(caller: Caller, secret: string): TokenRecord {
    const t = this.tokensBySecret.get(secret)
    if (!t || (caller.kind === 'machine' && !t.scopes.includes(caller.machineId))) {
      throw notFound('M2M token')
    }
    if (t.revoked) {
      throw new ApiError(404, 'token_revoked', 'token revoked', 'The M2M token has been revoked.')
    }
    if (this.isExpired(t)) {
      throw new ApiError(404, 'token_expired', 'token expired', 'The M2M token has expired.')
    }
    t.lastUsedAt = this.now()
    this.onChange()
    return t
  }
}
