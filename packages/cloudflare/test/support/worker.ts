/**
 * The Worker the workerd tests run (bundled from source by `bundle.ts`). It exposes the stores,
 * raw access to KV and the Cache API, and per-isolate verifiers over HTTP, and answers with what
 * happened, so the tests assert on the Node side. Nothing here decides a test's outcome.
 */

import { AsyncLocalStorage } from 'node:async_hooks'
import {
  CloudflareStoreError,
  type KVNamespaceLike,
  kvCacheStore,
  workersCacheStore,
} from '@m2m-guard/cloudflare'
import {
  type CachedVerification,
  type CacheStore,
  createM2MVerifier,
  M2MAuthError,
  type M2MEvent,
  type M2MVerifier,
} from '@m2m-guard/core'

interface KVListing {
  keys: { name: string }[]
}

interface Env {
  M2M_CACHE: KVNamespaceLike & {
    list(options: { prefix: string }): Promise<KVListing>
    put(key: string, value: string, options?: { expirationTtl: number }): Promise<void>
  }
  API_URL?: string
  SECRET_KEY?: string
}

interface RawCache {
  match(url: string): Promise<Response | undefined>
  put(url: string, response: Response): Promise<void>
}

interface Ctx {
  waitUntil(promise: Promise<unknown>): void
}

type Backend = 'kv' | 'cache'

/**
 * The README's pattern for runtimes older than `waitUntil` from `cloudflare:workers` (this
 * workerd is one): each request runs inside the storage, so the stores, built once per isolate,
 * reach the current request's `ctx.waitUntil`.
 */
const requestContext = new AsyncLocalStorage<Ctx>()
const waitUntil = (promise: Promise<unknown>): void => requestContext.getStore()?.waitUntil(promise)

/** One store operation; `now` pins the store's clock for this call. */
interface StoreOp {
  backend: Backend
  op: 'get' | 'set' | 'delete'
  key: string
  value?: CachedVerification
  ttlMs?: number
  now?: number
  prefix?: string
}

interface RawOp {
  backend: Backend
  op: 'get' | 'put' | 'list'
  /** KV key, or Cache API URL. */
  key: string
  body?: string
  headers?: Record<string, string>
  status?: number
  expirationTtl?: number
}

function describeError(error: unknown) {
  if (error instanceof CloudflareStoreError || error instanceof M2MAuthError) {
    return { name: error.name, code: error.code, message: error.message }
  }
  const e = error as Error
  return { name: e.name, message: e.message }
}

async function settle<T>(work: () => Promise<T>): Promise<{ ok: T } | { error: unknown }> {
  try {
    return { ok: await work() }
  } catch (error) {
    return { error: describeError(error) }
  }
}

function storeFor(env: Env, op: Pick<StoreOp, 'backend' | 'now' | 'prefix'>): CacheStore {
  const now = op.now === undefined ? Date.now : () => op.now as number
  return op.backend === 'kv'
    ? kvCacheStore({ namespace: env.M2M_CACHE, prefix: op.prefix, now })
    : workersCacheStore({ prefix: op.prefix, now })
}

async function storeOp(env: Env, op: StoreOp): Promise<unknown> {
  const store = storeFor(env, op)
  if (op.op === 'get') return (await store.get(op.key)) ?? null
  if (op.op === 'set')
    return (await store.set(op.key, op.value as CachedVerification, op.ttlMs ?? 0)) ?? null
  return (await store.delete(op.key)) ?? null
}

async function rawOp(env: Env, op: RawOp): Promise<unknown> {
  if (op.backend === 'kv') {
    if (op.op === 'get') return env.M2M_CACHE.get(op.key, { type: 'text' })
    if (op.op === 'list')
      return (await env.M2M_CACHE.list({ prefix: op.key })).keys.map((k) => k.name)
    await env.M2M_CACHE.put(op.key, op.body ?? '', { expirationTtl: op.expirationTtl ?? 3600 })
    return null
  }
  // Typed structurally: the DOM's CacheStorage (in the shared tsconfig) has no `default`.
  const cache = (caches as unknown as { default: RawCache }).default
  if (op.op === 'get') {
    const res = await cache.match(op.key)
    if (res === undefined) return null
    return {
      status: res.status,
      cacheControl: res.headers.get('cache-control'),
      body: await res.text(),
    }
  }
  if (op.op === 'list') throw new TypeError('the Cache API cannot list')
  await cache.put(
    op.key,
    new Response(op.body ?? '', { status: op.status ?? 200, headers: op.headers ?? {} }),
  )
  return null
}

/**
 * The verifier writes to its store in the background, after its answer; these counters (plain
 * numbers, safe to share between requests) let a test wait until this isolate's writes landed
 * before another isolate reads them.
 */
const writes = { started: 0, settled: 0 }

function counted(store: CacheStore): CacheStore {
  const count = <T>(work: Promise<T> | T): Promise<T> | T => {
    writes.started++
    return Promise.resolve(work).finally(() => {
      writes.settled++
    })
  }
  return {
    get: (key) => store.get(key),
    set: (key, value, ttlMs) => count(store.set(key, value, ttlMs)),
    delete: (key) => count(store.delete(key)),
  }
}

/** Verifiers live for the isolate, like a real Worker's; one per (backend, name). */
const verifiers = new Map<string, { verifier: M2MVerifier; events: M2MEvent[] }>()

function verifierFor(env: Env, backend: Backend, name: string, ttlMs: number | undefined) {
  const id = `${backend}:${name}`
  let entry = verifiers.get(id)
  if (entry === undefined) {
    const events: M2MEvent[] = []
    const store =
      backend === 'kv'
        ? kvCacheStore({ namespace: env.M2M_CACHE, waitUntil })
        : workersCacheStore({ waitUntil })
    const verifier = createM2MVerifier({
      secretKey: env.SECRET_KEY,
      apiUrl: env.API_URL,
      cache: { store: counted(store), ttlMs },
      onEvent: (event) => events.push(event),
    })
    entry = { verifier, events }
    verifiers.set(id, entry)
  }
  return entry
}

interface VerifyOp {
  backend: Backend
  /** Which of this isolate's verifiers; a new name is a verifier with an empty memory. */
  name: string
  token: string
  ttlMs?: number
}

interface RevokeOp {
  backend: Backend
  name: string
  id: string
}

export default {
  fetch(request: Request, env: Env, ctx: Ctx): Promise<Response> {
    return requestContext.run(ctx, () => handle(request, env))
  },
}

async function handle(request: Request, env: Env): Promise<Response> {
  const path = new URL(request.url).pathname
  const body = request.method === 'POST' ? ((await request.json()) as unknown) : undefined
  if (path === '/store') {
    const ops = body as StoreOp[]
    const results = []
    for (const op of ops) results.push(await settle(() => storeOp(env, op)))
    return Response.json(results)
  }
  if (path === '/raw') {
    return Response.json(await settle(() => rawOp(env, body as RawOp)))
  }
  if (path === '/verify') {
    const op = body as VerifyOp
    const { verifier, events } = verifierFor(env, op.backend, op.name, op.ttlMs)
    const from = events.length
    const result = await settle(() => verifier.verify(op.token))
    return Response.json({ ...result, events: events.slice(from) })
  }
  if (path === '/writes') return Response.json(writes)
  if (path === '/revoke') {
    const op = body as RevokeOp
    const { verifier } = verifierFor(env, op.backend, op.name, undefined)
    return Response.json(await settle(() => verifier.revoke(op.id)))
  }
  return new Response('not found', { status: 404 })
}
