/**
 * The README's Hono-on-Workers example, as a Worker (bundled by `bundle.ts`). Only the
 * `waitUntil` differs: this workerd predates `waitUntil` from `cloudflare:workers`, so it is the
 * README's AsyncLocalStorage fallback.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { type KVNamespaceLike, kvCacheStore } from '@m2m-guard/cloudflare'
import { requireM2M } from '@m2m-guard/hono'
import { type ExecutionContext, Hono } from 'hono'

type Ctx = ExecutionContext

const requestContext = new AsyncLocalStorage<Ctx>()
const waitUntil = (p: Promise<unknown>): void => requestContext.getStore()?.waitUntil(p)

const app = new Hono<{ Bindings: { M2M_CACHE: KVNamespaceLike } }>()
app.use(
  '/internal/*',
  requireM2M((c) => ({
    cache: { ttlMs: 10_000, store: kvCacheStore({ namespace: c.env.M2M_CACHE, waitUntil }) },
  })),
)
app.get('/internal/report', (c) => c.json({ caller: c.get('m2m').subject }))

export default {
  fetch: (request: Request, env: { M2M_CACHE: KVNamespaceLike }, ctx: Ctx) =>
    requestContext.run(ctx, () => app.fetch(request, env, ctx)),
}
