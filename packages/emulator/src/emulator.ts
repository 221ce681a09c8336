import { setMaxListeners } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { faultsApplyTo, mergeFaults, seededRandom } from './faults.js'
import { HANDLERS, TAKES_BODY } from './handlers.js'
import { ApiError, notFound, unauthenticated } from './http/errors.js'
import { matchRoute } from './http/routes.js'
import { MACHINE_ID_RE, newInstanceKey, newTraceId } from './ids.js'
import { JwtSigner } from './jwt.js'
import { Persister, readState } from './persist.js'
import { type Caller, MAX_TOKEN_TTL, type MachineRecord, Store, type WireToken } from './store.js'
import type {
  Emulator,
  EmulatorFaults,
  EmulatorMachine,
  EmulatorOptions,
  EmulatorSeed,
  EmulatorStats,
  EmulatorToken,
  FaultsPatch,
} from './types.js'

const DEFAULT_MAX_BODY = 64 * 1024
/** Past this many bytes an oversized body is no longer drained: the connection is cut. */
const DRAIN_LIMIT = 1024 * 1024
const TRICKLE_CHUNK = 16

class BodyTooLarge extends Error {}
class ClientGone extends Error {}

/** Reads the body up to `limit` bytes; an oversized one is drained (bounded) and rejected. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > DRAIN_LIMIT) {
      reject(new BodyTooLarge())
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
      else if (size > DRAIN_LIMIT && !done) {
        done = true
        reject(new BodyTooLarge())
      }
    })
    req.on('end', () => {
      if (done) return
      done = true
      if (size > limit) reject(new BodyTooLarge())
      else resolve(Buffer.concat(chunks))
    })
    req.on('error', () => {
      if (!done) {
        done = true
        reject(new ClientGone())
      }
    })
    req.on('close', () => {
      if (!done) {
        done = true
        reject(new ClientGone())
      }
    })
  })
}

function parseJson(raw: Buffer): unknown {
  const text = raw.toString('utf8')
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    throw new ApiError(
      400,
      'malformed_request_body',
      'malformed request body',
      'The request body is not valid JSON.',
    )
  }
}

function bearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization
  if (typeof header !== 'string') return undefined
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return m?.[1]
}

function toPublicMachine(m: MachineRecord): EmulatorMachine {
  return {
    id: m.id,
    name: m.name,
    secretKey: m.secretKey,
    defaultTokenTtl: m.defaultTokenTtl,
    scopedMachines: m.scopes.map((s) => s.to),
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
  }
}

function toPublicToken(t: WireToken): EmulatorToken {
  return {
    object: t.object,
    id: t.id,
    subject: t.subject,
    claims: t.claims,
    scopes: t.scopes,
    ...(t.token !== undefined ? { token: t.token } : {}),
    revoked: t.revoked,
    revocationReason: t.revocation_reason,
    expired: t.expired,
    expiration: t.expiration,
    lastUsedAt: t.last_used_at,
    createdAt: t.created_at,
    updatedAt: t.updated_at,
  }
}

function checkMachineInput(input: { name?: unknown; defaultTokenTtl?: unknown }): void {
  if (typeof input.name !== 'string' || input.name.length < 1 || input.name.length > 255) {
    throw new TypeError('machine name must be a string of 1 to 255 characters')
  }
  const ttl = input.defaultTokenTtl
  if (
    ttl !== undefined &&
    (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_TTL)
  ) {
    throw new TypeError(`defaultTokenTtl must be an integer from 1 to ${MAX_TOKEN_TTL}`)
  }
}

/** Store errors are Clerk HTTP errors; the in-process API throws plain errors instead. */
function rethrowPlain<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw plainError(err)
  }
}

function plainError(err: unknown): unknown {
  return err instanceof ApiError ? new Error(err.longMessage, { cause: err }) : err
}

function applySeed(store: Store, seed: EmulatorSeed): void {
  const machines = seed.machines ?? []
  if (!Array.isArray(machines)) throw new TypeError('seed.machines must be an array')
  const byName = new Map<string, string>()
  for (const m of store.machines.values()) byName.set(m.name, m.id)
  for (const sm of machines) {
    checkMachineInput(sm)
    if (sm.id !== undefined && !MACHINE_ID_RE.test(sm.id)) {
      throw new TypeError(`seed machine ${sm.name}: id must match ^mch_\\w{27}$`)
    }
    const existing =
      sm.id !== undefined
        ? store.machines.get(sm.id)
        : store.machines.get(byName.get(sm.name) ?? '')
    if (existing) {
      byName.set(sm.name, existing.id)
      continue
    }
    const created = rethrowPlain(() =>
      store.createMachine({
        name: sm.name,
        ...(sm.id !== undefined ? { id: sm.id } : {}),
        ...(sm.secretKey !== undefined ? { secretKey: sm.secretKey } : {}),
        ...(sm.defaultTokenTtl !== undefined ? { defaultTokenTtl: sm.defaultTokenTtl } : {}),
      }),
    )
    byName.set(sm.name, created.id)
  }
  for (const sm of machines) {
    const fromId = sm.id ?? byName.get(sm.name)
    const from = fromId ? store.machines.get(fromId) : undefined
    if (!from) continue
    for (const ref of sm.scopedMachines ?? []) {
      const toId = store.machines.has(ref) ? ref : byName.get(ref)
      if (!toId)
        throw new TypeError(
          `seed machine ${sm.name}: scoped machine ${ref} is not a seeded machine`,
        )
      if (toId !== from.id && !from.scopes.some((s) => s.to === toId))
        rethrowPlain(() => store.addScope(from.id, toId))
    }
  }
}

/**
 * Starts a local, wire-compatible emulator of Clerk's M2M token and Machines API.
 *
 * @param [options.port=0] - 0 picks a free port.
 * @param [options.host='127.0.0.1']
 * @param [options.secretKey] - instance key; generated `sk_test_…` by default.
 * @param [options.seed] - machines to create at start.
 * @param [options.dataFile] - keep state across restarts.
 * @throws Error when the port is taken, the data file is corrupt or the seed is invalid.
 *
 * @example
 * import { startEmulator } from '@m2m-guard/emulator'
 *
 * const emulator = await startEmulator()
 * const caller = await emulator.createMachine({ name: 'caller' })
 * const api = await emulator.createMachine({ name: 'api' })
 * await emulator.addScope(caller.id, api.id)
 * const res = await fetch(`${emulator.apiUrl}/m2m_tokens`, {
 *   method: 'POST',
 *   headers: { authorization: `Bearer ${caller.secretKey}`, 'content-type': 'application/json' },
 *   body: JSON.stringify({ seconds_until_expiration: 60 }),
 * })
 * const { token } = await res.json() // 'mt_…', scopes: [api.id]
 * await emulator.close()
 */
export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const now = options.now ?? Date.now
  const log = options.log
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY
  if (options.secretKey !== undefined && !/^sk_\S+$/.test(options.secretKey)) {
    throw new TypeError('secretKey must start with sk_')
  }

  const persisted = options.dataFile ? readState(options.dataFile) : undefined
  const store = new Store({ secretKey: options.secretKey ?? newInstanceKey(), now })
  if (persisted) {
    store.load(persisted)
    if (options.secretKey) store.secretKey = options.secretKey
  }
  // The issuer is stable across restarts (not the URL, whose port may change), so persisted
  // JWT-format tokens stay valid.
  // RSA key generation costs up to a second on a busy machine and most runs never mint a JWT:
  // the signing key is made (or loaded) on first use.
  // Stable across restarts (unlike the URL, whose port may change), so persisted JWTs stay valid.
  const issuer = `https://clerk.${store.instanceId.toLowerCase()}.emulator.invalid`
  let signingJwk = persisted?.signingKey
  let signerPromise: Promise<JwtSigner> | undefined
  const signer = (): Promise<JwtSigner> => {
    signerPromise ??= JwtSigner.create(issuer, signingJwk).then((created) => {
      if (!signingJwk) {
        signingJwk = created.privateJwk as Record<string, unknown>
        persister?.schedule()
      }
      return created
    })
    return signerPromise
  }
  if (options.seed) applySeed(store, options.seed)

  let faults: EmulatorFaults = options.faults ? mergeFaults({}, options.faults) : {}
  let dice = faults.seed !== undefined ? seededRandom(faults.seed) : Math.random
  const setFaultsInternal = (patch: unknown): EmulatorFaults => {
    faults = mergeFaults(faults, patch)
    dice = faults.seed !== undefined ? seededRandom(faults.seed) : Math.random
    return { ...faults }
  }

  let stats: EmulatorStats = { total: 0, faulted: 0, byOperation: {} }
  const closing = new AbortController()
  // Every request delayed by a latency fault listens on it until its sleep ends: a thousand at
  // once is the cold-start benchmark, not a leak. Bounded, so a real leak still warns.
  setMaxListeners(10_000, closing.signal)
  const sockets = new Set<Socket>()

  function send(
    res: ServerResponse,
    status: number,
    payload: unknown,
    headers: Record<string, string> = {},
    mode: { drop?: boolean; trickleMs?: number } = {},
  ): void {
    if (res.headersSent || res.destroyed) return
    const text = JSON.stringify(payload)
    // Exactly `application/json`: @clerk/backend parses the body as JSON only on this exact value.
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      ...headers,
    })
    if (mode.drop) {
      res.write(text.slice(0, Math.floor(text.length / 2)), () => res.destroy())
      return
    }
    if (mode.trickleMs && mode.trickleMs > 0) {
      void trickle(res, Buffer.from(text), mode.trickleMs)
      return
    }
    res.end(text)
  }

  async function trickle(res: ServerResponse, data: Buffer, delay: number): Promise<void> {
    try {
      for (let i = 0; i < data.length; i += TRICKLE_CHUNK) {
        if (res.destroyed) return
        res.write(data.subarray(i, i + TRICKLE_CHUNK))
        await sleep(delay, undefined, { signal: closing.signal })
      }
      res.end()
    } catch {
      res.destroy()
    }
  }

  function sendError(
    res: ServerResponse,
    err: ApiError,
    traceId: string,
    mode: { drop?: boolean; trickleMs?: number } = {},
  ): void {
    send(res, err.status, err.toBody(traceId), err.headers, mode)
  }

  function authenticate(req: IncomingMessage): Caller {
    const key = bearer(req)
    if (!key) {
      throw unauthenticated(
        'The request has no valid Authorization header. Send "Authorization: Bearer <secret key>".',
        'authorization_header_missing',
      )
    }
    const caller = store.authenticate(key)
    if (!caller) {
      throw unauthenticated(
        'The secret key is unknown, revoked or expired.',
        key.startsWith('sk_') ? 'clerk_key_invalid' : 'authentication_invalid',
      )
    }
    return caller
  }

  async function handleAdmin(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
  ): Promise<void> {
    if (path === '/__emulator/health' && req.method === 'GET') {
      send(res, 200, { ok: true })
      return
    }
    const raw = await readBody(req, maxBody)
    const caller = authenticate(req)
    if (caller.kind !== 'instance')
      throw new ApiError(
        403,
        'authorization_invalid',
        'Unauthorized request',
        'Admin endpoints need the instance secret key.',
      )
    if (path === '/__emulator/faults') {
      if (req.method === 'GET') return send(res, 200, { ...faults })
      if (req.method === 'DELETE') return send(res, 200, setFaultsInternal({}))
      if (req.method === 'POST' || req.method === 'PATCH') {
        const body = parseJson(raw) ?? {}
        try {
          return send(res, 200, setFaultsInternal(body))
        } catch (err) {
          throw new ApiError(400, 'form_param_value_invalid', 'is invalid', (err as Error).message)
        }
      }
      throw new ApiError(
        405,
        'method_not_allowed',
        'method not allowed',
        `${req.method} is not allowed here.`,
        {
          headers: { allow: 'GET, POST, PATCH, DELETE' },
        },
      )
    }
    if (path === '/__emulator/stats' && req.method === 'GET') return send(res, 200, snapshotStats())
    if (path === '/__emulator/stats/reset' && req.method === 'POST') {
      stats = { total: 0, faulted: 0, byOperation: {} }
      return send(res, 200, snapshotStats())
    }
    throw notFound('Route')
  }

  function snapshotStats(): EmulatorStats {
    return { total: stats.total, faulted: stats.faulted, byOperation: { ...stats.byOperation } }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now()
    const traceId = newTraceId()
    res.setHeader('x-clerk-trace-id', traceId)
    const method = req.method ?? 'GET'
    let path = '/'
    let query = new URLSearchParams()
    try {
      const url = new URL(req.url ?? '/', 'http://emulator.invalid')
      path = url.pathname
      query = url.searchParams
    } catch {
      // Falls through with path '/', which is a 404: a URL that does not parse names no route.
    }
    if (log) {
      res.on('close', () => {
        const ms = (performance.now() - started).toFixed(1)
        log(`${method} ${path} ${res.headersSent ? res.statusCode : '-'} ${ms}ms`)
      })
    }
    let mode: { drop?: boolean; trickleMs?: number } = {}
    try {
      if (path.startsWith('/__emulator/')) {
        await handleAdmin(req, res, path)
        return
      }
      const match = matchRoute(method, path)
      const operationId = match.kind === 'operation' ? match.operationId : 'unknown'
      stats.total++
      stats.byOperation[operationId] = (stats.byOperation[operationId] ?? 0) + 1

      const f = faults
      if (faultsApplyTo(f, operationId)) {
        if (f.down) {
          stats.faulted++
          req.socket.destroy()
          return
        }
        if (f.latencyMs) await sleep(f.latencyMs, undefined, { signal: closing.signal })
        if (f.rateLimit && f.rateLimit.rate > 0 && dice() < f.rateLimit.rate) {
          stats.faulted++
          const retry = String(f.rateLimit.retryAfterSeconds ?? 1)
          throw new ApiError(
            429,
            'too_many_requests',
            'Too many requests',
            'Rate limit exceeded (emulated fault).',
            {
              headers: { 'retry-after': retry },
            },
          )
        }
        if (f.errorRate && dice() < f.errorRate) {
          stats.faulted++
          const status = f.errorStatus ?? 503
          throw new ApiError(
            status,
            status === 503 ? 'service_unavailable' : 'internal_clerk_error',
            status === 503 ? 'Service unavailable' : 'Internal error',
            `Emulated ${status} fault.`,
          )
        }
        if (f.dropRate && dice() < f.dropRate) {
          stats.faulted++
          mode = { drop: true }
        } else if (f.trickleMs) {
          stats.faulted++
          mode = { trickleMs: f.trickleMs }
        }
      }

      if (match.kind === 'not_found') {
        await readBody(req, maxBody)
        throw new ApiError(404, 'resource_not_found', 'not found', `No route ${method} ${path}.`)
      }
      if (match.kind === 'method_not_allowed') {
        await readBody(req, maxBody)
        throw new ApiError(
          405,
          'method_not_allowed',
          'method not allowed',
          `${method} is not allowed on ${path}.`,
          {
            headers: { allow: match.allow.join(', ') },
          },
        )
      }
      const raw = await readBody(req, maxBody)
      const caller = authenticate(req)
      const body = TAKES_BODY.has(match.operationId) ? parseJson(raw) : undefined
      const result = await HANDLERS[match.operationId]({
        store,
        signer,
        now,
        caller,
        params: match.params,
        query,
        body,
      })
      send(res, result.status, result.body, {}, mode)
    } catch (err) {
      if (err instanceof ClientGone || closing.signal.aborted) {
        res.destroy()
        return
      }
      if (err instanceof BodyTooLarge) {
        sendError(
          res,
          new ApiError(
            413,
            'request_body_too_large',
            'request body too large',
            `The request body exceeds ${maxBody} bytes.`,
            {
              headers: { connection: 'close' },
            },
          ),
          traceId,
        )
        return
      }
      if (err instanceof ApiError) {
        sendError(res, err, traceId, mode)
        return
      }
      // Not expected: every input problem is an ApiError. Still answer in Clerk's shape.
      log?.(`emulator: unexpected error: ${(err as Error)?.stack ?? String(err)}`)
      sendError(
        res,
        new ApiError(500, 'internal_clerk_error', 'internal error', 'Unexpected emulator error.'),
        traceId,
      )
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  // Bounded waits for slow or stalled clients, so no request can hold the emulator forever.
  server.requestTimeout = 30_000
  server.headersTimeout = 15_000
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  // Without a listener a late server error (EMFILE…) would crash the host process.
  server.on('error', (err) => log?.(`emulator: server error: ${err.message}`))
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    else socket.destroy()
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  // Persistence starts once listening succeeded, so a failed start writes nothing.
  const persister = options.dataFile
    ? new Persister(
        options.dataFile,
        () => store.snapshot(signingJwk),
        (err) => {
          const line = `emulator: cannot write ${options.dataFile}: ${(err as Error).message}`
          if (log) log(line)
          else process.emitWarning(line)
        },
      )
    : undefined
  if (persister) {
    store.onChange = () => persister.schedule()
    persister.schedule()
  }

  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}`

  let closed: Promise<void> | undefined
  const emulator: Emulator = {
    url,
    apiUrl: `${url}/v1`,
    jwksUrl: `${url}/v1/jwks`,
    get secretKey() {
      return store.secretKey
    },
    async jwtPublicKey() {
      return (await signer()).publicPem
    },
    async createMachine(input) {
      checkMachineInput(input)
      return toPublicMachine(rethrowPlain(() => store.createMachine(input)))
    },
    getMachine(id) {
      const m = store.machines.get(id)
      return m ? toPublicMachine(m) : undefined
    },
    listMachines() {
      return [...store.machines.values()].map(toPublicMachine)
    },
    async createToken(machineId, options = {}) {
      const machine = store.machines.get(machineId)
      if (!machine) throw new Error(`Machine ${machineId} not found.`)
      const body: Record<string, unknown> = {}
      if (options.tokenFormat !== undefined) body.token_format = options.tokenFormat
      if (options.secondsUntilExpiration !== undefined) {
        body.seconds_until_expiration = options.secondsUntilExpiration
      }
      if (options.claims !== undefined) body.claims = options.claims
      if (options.minRemainingTtlSeconds !== undefined) {
        body.min_remaining_ttl_seconds = options.minRemainingTtlSeconds
      }
      try {
        const result = await HANDLERS.createM2MToken({
          store,
          signer,
          now,
          caller: { kind: 'machine', machineId },
          params: [],
          query: new URLSearchParams(),
          body,
        })
        return toPublicToken(result.body as WireToken)
      } catch (err) {
        throw plainError(err)
      }
    },
    async revokeToken(tokenId, revocationReason = null) {
      try {
        const result = await HANDLERS.revokeM2MToken({
          store,
          signer,
          now,
          caller: { kind: 'instance' },
          params: [encodeURIComponent(tokenId)],
          query: new URLSearchParams(),
          body: { revocation_reason: revocationReason },
        })
        return toPublicToken(result.body as WireToken)
      } catch (err) {
        throw plainError(err)
      }
    },
    async addScope(from, to) {
      rethrowPlain(() => store.addScope(from, to))
    },
    async removeScope(from, to) {
      rethrowPlain(() => store.removeScope(from, to))
    },
    stats: snapshotStats,
    resetStats() {
      stats = { total: 0, faulted: 0, byOperation: {} }
    },
    setFaults(patch: FaultsPatch) {
      return setFaultsInternal(patch)
    },
    clearFaults() {
      setFaultsInternal({})
    },
    faults() {
      return { ...faults }
    },
    close() {
      closed ??= (async () => {
        closing.abort()
        const done = new Promise<void>((resolve) => server.close(() => resolve()))
        for (const socket of sockets) socket.destroy()
        await done
        await persister?.flush()
      })()
      return closed
    },
  }
  return emulator
}
