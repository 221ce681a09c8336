/** One function per operation: validated input in, `{ status, body }` out, ApiError on failure. */
import { ApiError, forbidden, invalidParam } from './http/errors.js'
import type { OperationId } from './http/routes.js'
import {
  expectObject,
  invalidQuery,
  nullableNumber,
  nullableString,
  optionalNumber,
  optionalString,
  optionalStringArray,
  queryBoolean,
  queryInteger,
  queryValue,
  requiredNumber,
  requiredString,
} from './http/validate.js'
import { MACHINE_ID_RE, TOKEN_ID_RE } from './ids.js'
import { type JwtSigner, looksLikeJwt } from './jwt.js'
import { type Caller, MAX_SCOPES, MAX_TOKEN_TTL, type MachineRecord, type Store } from './store.js'

export interface HandlerContext {
  store: Store
  /** The JWT signer, created on first use. */
  signer: () => Promise<JwtSigner>
  now: () => number
  caller: Caller
  params: string[]
  query: URLSearchParams
  /** Parsed JSON body; `undefined` when empty. */
  body: unknown
}

export interface HandlerResult {
  status: number
  body: unknown
}

/** Deeply nested claims would overflow the stack when compared or serialized: cap the depth. */
const MAX_CLAIMS_DEPTH = 32

function depthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number]
    if (node === null || typeof node !== 'object') continue
    if (depth >= max) return true
    for (const child of Object.values(node)) stack.push([child, depth + 1])
  }
  return false
}

function pathParam(raw: string | undefined, name: string, pattern: RegExp): string {
  let value: string
  try {
    value = decodeURIComponent(raw ?? '')
  } catch {
    value = ''
  }
  if (!pattern.test(value)) {
    throw new ApiError(
      400,
      'path_param_invalid',
      'is invalid',
      `${name} must match ${pattern.source}.`,
      {
        meta: { param_name: name },
      },
    )
  }
  return value
}

function requireInstance(caller: Caller): void {
  if (caller.kind !== 'instance') {
    throw forbidden(
      'This endpoint requires the instance secret key (sk_…), not a machine secret key.',
    )
  }
}

function bareMachine(m: MachineRecord, instanceId: string) {
  return {
    object: 'machine' as const,
    id: m.id,
    name: m.name,
    instance_id: instanceId,
    created_at: m.createdAt,
    updated_at: m.updatedAt,
    default_token_ttl: m.defaultTokenTtl,
  }
}

export function machineToWire(store: Store, m: MachineRecord) {
  const scoped: ReturnType<typeof bareMachine>[] = []
  for (const s of m.scopes) {
    const target = store.machines.get(s.to)
    if (target) scoped.push(bareMachine(target, store.instanceId))
  }
  return { ...bareMachine(m, store.instanceId), scoped_machines: scoped }
}

const TTL_RULE = { integer: true, min: 1, max: MAX_TOKEN_TTL }

type Handler = (ctx: HandlerContext) => HandlerResult | Promise<HandlerResult>

export const HANDLERS: Record<OperationId, Handler> = {
  async createM2MToken({ store, signer, now, caller, body }) {
    if (caller.kind !== 'machine') {
      throw forbidden(
        'Creating an M2M token requires a machine secret key (ak_…), not the instance secret key.',
      )
    }
    const b = expectObject(body, [
      'token_format',
      'seconds_until_expiration',
      'claims',
      'min_remaining_ttl_seconds',
    ])
    const format = optionalString(b, 'token_format', { enum: ['opaque', 'jwt'] }) ?? 'opaque'
    // The spec sets no maximum; a cap keeps expirations inside what Date and JWT `exp` can hold.
    const seconds = nullableNumber(b, 'seconds_until_expiration', {
      min: 0,
      exclusiveMin: true,
      max: MAX_TOKEN_TTL,
    })
    const minRemaining = optionalNumber(b, 'min_remaining_ttl_seconds', { integer: true, min: 0 })
    const claims = b.claims === undefined ? null : b.claims
    if (depthExceeds(claims, MAX_CLAIMS_DEPTH)) {
      throw invalidParam(
        'claims',
        `claims must not nest deeper than ${MAX_CLAIMS_DEPTH} levels.`,
        'form_param_value_invalid',
      )
    }
    const machine = store.getMachineOr404(caller.machineId)
    if (format === 'jwt') {
      if (claims !== null && (typeof claims !== 'object' || Array.isArray(claims))) {
        throw invalidParam(
          'claims',
          'claims of a JWT-format token must be a JSON object.',
          'form_param_value_invalid',
        )
      }
      // JWTs always carry `exp` (Clerk's SDK rejects one without), so null means the machine default.
      const lifetime = seconds ?? machine.defaultTokenTtl
      const nowMs = now()
      const token = await (await signer()).sign({
        subject: machine.id,
        scopes: machine.scopes.map((s) => s.to),
        claims: claims as Record<string, unknown> | null,
        nowMs,
        lifetimeSeconds: lifetime,
      })
      return { status: 201, body: token }
    }
    const t = store.createToken(machine.id, {
      secondsUntilExpiration: seconds,
      claims,
      ...(minRemaining !== undefined ? { minRemainingTtlSeconds: minRemaining } : {}),
    })
    return { status: 201, body: store.toWire(t, true) }
  },

  getM2MTokens({ store, caller, query }) {
    const subject = queryValue(query, 'subject')
    if (subject === undefined || subject === '')
      throw invalidQuery('subject', 'subject must be included.')
    if (!MACHINE_ID_RE.test(subject))
      throw invalidQuery('subject', `subject must match ${MACHINE_ID_RE.source}.`)
    const { tokens, total } = store.listTokens(caller, {
      subject,
      revoked: queryBoolean(query, 'revoked', false),
      expired: queryBoolean(query, 'expired', false),
      limit: queryInteger(query, 'limit', { min: 1, max: 100, fallback: 10 }),
      offset: queryInteger(query, 'offset', { min: 0, fallback: 0 }),
    })
    return {
      status: 200,
      body: { m2m_tokens: tokens.map((t) => store.toWire(t)), total_count: total },
    }
  },

  revokeM2MToken({ store, caller, params, body }) {
    const id = pathParam(params[0], 'm2m_token_id', TOKEN_ID_RE)
    const b = expectObject(body, ['revocation_reason'])
    const reason = nullableString(b, 'revocation_reason', { maxLength: 1024 }) ?? null
    return { status: 200, body: store.toWire(store.revokeToken(caller, id, reason)) }
  },

  async verifyM2MToken({ store, signer, now, caller, body }) {
    const b = expectObject(body, ['token'])
    const token = requiredString(b, 'token', { minLength: 1 })
    if (looksLikeJwt(token))
      return { status: 200, body: await (await signer()).verify(caller, token, now()) }
    return { status: 200, body: store.toWire(store.verifyOpaque(caller, token)) }
  },

  ListMachines({ store, caller, query }) {
    requireInstance(caller)
    const limit = queryInteger(query, 'limit', { min: 1, max: 500, fallback: 10 })
    const offset = queryInteger(query, 'offset', { min: 0, fallback: 0 })
    const q = queryValue(query, 'query') ?? ''
    const orderBy = queryValue(query, 'order_by') || '-created_at'
    const order = /^([+-]?)(name|created_at)$/.exec(orderBy)
    if (!order)
      throw invalidQuery(
        'order_by',
        'order_by must be name or created_at, optionally prefixed by + or -.',
      )
    const sign = order[1] === '-' ? -1 : 1
    const field = order[2] as 'name' | 'created_at'
    const needle = q.toLowerCase()
    // Map order is creation order: it breaks ties, so machines made in one millisecond stay ordered.
    const all = [...store.machines.values()]
      .map((m, index) => ({ m, index }))
      .filter(({ m }) => !q || m.id === q || m.name.toLowerCase().includes(needle))
      .sort((a, b) => {
        const d =
          field === 'name' ? a.m.name.localeCompare(b.m.name) : a.m.createdAt - b.m.createdAt
        return sign * (d || a.index - b.index)
      })
      .map(({ m }) => m)
    return {
      status: 200,
      body: {
        data: all.slice(offset, offset + limit).map((m) => machineToWire(store, m)),
        total_count: all.length,
      },
    }
  },

  CreateMachine({ store, caller, body }) {
    requireInstance(caller)
    const b = expectObject(body, ['name', 'scoped_machines', 'default_token_ttl'])
    const name = requiredString(b, 'name', { minLength: 1, maxLength: 255 })
    const scoped = optionalStringArray(b, 'scoped_machines', { maxItems: MAX_SCOPES })
    const ttl = optionalNumber(b, 'default_token_ttl', TTL_RULE)
    const m = store.createMachine({
      name,
      ...(scoped ? { scopedMachines: scoped } : {}),
      ...(ttl !== undefined ? { defaultTokenTtl: ttl } : {}),
    })
    return { status: 200, body: { ...machineToWire(store, m), secret_key: m.secretKey } }
  },

  GetMachine({ store, caller, params }) {
    requireInstance(caller)
    const id = pathParam(params[0], 'machine_id', MACHINE_ID_RE)
    return { status: 200, body: machineToWire(store, store.getMachineOr404(id)) }
  },

  UpdateMachine({ store, caller, params, body }) {
    requireInstance(caller)
    const id = pathParam(params[0], 'machine_id', MACHINE_ID_RE)
    const b = expectObject(body, ['name', 'default_token_ttl'])
    const name = optionalString(b, 'name', { minLength: 1, maxLength: 255 })
    const ttl = optionalNumber(b, 'default_token_ttl', TTL_RULE)
    const m = store.updateMachine(id, {
      ...(name !== undefined ? { name } : {}),
      ...(ttl !== undefined ? { defaultTokenTtl: ttl } : {}),
    })
    return { status: 200, body: machineToWire(store, m) }
  },

  DeleteMachine({ store, caller, params }) {
    requireInstance(caller)
    const id = pathParam(params[0], 'machine_id', MACHINE_ID_RE)
    store.deleteMachine(id)
    return { status: 200, body: { object: 'machine', id, deleted: true } }
  },

  GetMachineSecretKey({ store, caller, params }) {
    requireInstance(caller)
    const id = pathParam(params[0], 'machine_id', MACHINE_ID_RE)
    return {
      status: 200,
      body: { object: 'machine_secret_key', secret: store.getMachineOr404(id).secretKey },
    }
  },

  RotateMachineSecretKey({ store, caller, params, body }) {
    requireInstance(caller)
    const id = pathParam(params[0], 'machine_id', MACHINE_ID_RE)
    const b = expectObject(body, ['previous_token_ttl'])
    const grace = requiredNumber(b, 'previous_token_ttl', { integer: true, min: 0, max: 28_800 })
    return {
      status: 200,
      body: { object: 'machine_secret_key', secret: store.rotateKey(id, grace).secretKey },
    }
  },

  CreateMachineScope({ store, caller, params, body }) {
    requireInstance(caller)
    const from = pathParam(params[0], 'machine_id', MACHINE_ID_RE)
    const b = expectObject(body, ['to_machine_id'])
    const to = requiredString(b, 'to_machine_id', { pattern: MACHINE_ID_RE })
    const scope = store.addScope(from, to)
    return {
      status: 200,
      body: {
        object: 'machine_scope',
        from_machine_id: from,
        to_machine_id: to,
        created_at: scope.createdAt,
      },
    }
  },

  DeleteMachineScope({ store, caller, params }) {
    requireInstance(caller)
    const from = pathParam(params[0], 'machine_id', MACHINE_ID_RE)
    const to = pathParam(params[1], 'other_machine_id', MACHINE_ID_RE)
    store.removeScope(from, to)
    return {
      status: 200,
      body: { object: 'machine_scope', from_machine_id: from, to_machine_id: to, deleted: true },
    }
  },

  async getJwks({ signer }) {
    return { status: 200, body: (await signer()).jwks() }
  },
}

/** Operations whose request body is read and parsed as JSON. */
export const TAKES_BODY: ReadonlySet<OperationId> = new Set<OperationId>([
  'createM2MToken',
  'revokeM2MToken',
  'verifyM2MToken',
  'CreateMachine',
  'UpdateMachine',
  'RotateMachineSecretKey',
  'CreateMachineScope',
])
