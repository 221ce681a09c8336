import { Miniflare, type MiniflareOptions } from 'miniflare'
import { bundleWorker } from './bundle.js'

const bundles = new Map<string, Promise<string>>()

/** A running test Worker: one workerd process, i.e. one isolate with its own module state. */
export interface TestWorker {
  post<T = unknown>(path: string, body: unknown): Promise<T>
  /**
   * Resolves once this isolate's background store writes (which the verifier starts after
   * answering) have all settled and at least `count` were started since the previous call.
   */
  writesLanded(count?: number): Promise<void>
  /** The keys in the Worker's KV namespace, read from Node through Miniflare. */
  kvKeys(): Promise<string[]>
  dispatch(path: string, init?: { headers?: Record<string, string> }): Promise<Response>
  dispose(): Promise<void>
}

/** What the Worker answers for an operation that can fail. */
export type Settled<T = unknown> =
  | { ok: T; error?: undefined }
  | { ok?: undefined; error: { name: string; code?: string; message: string } }

/**
 * Starts the test Worker in workerd. `nodejs_als` gives it AsyncLocalStorage, which it uses to
 * hand each store the current request's `waitUntil` (see worker.ts).
 */
export async function startWorker(
  options: {
    entry?: string
    bindings?: Record<string, string>
    kvPersist?: string
    cachePersist?: string
  } = {},
): Promise<TestWorker> {
  const entry = options.entry ?? 'worker.ts'
  let bundle = bundles.get(entry)
  if (bundle === undefined) {
    bundle = bundleWorker(entry)
    bundles.set(entry, bundle)
  }
  const config: MiniflareOptions = {
    modules: true,
    script: await bundle,
    compatibilityDate: '2024-09-23',
    compatibilityFlags: ['nodejs_als'],
    kvNamespaces: ['M2M_CACHE'],
    cache: true,
    bindings: options.bindings ?? {},
    ...(options.kvPersist === undefined ? {} : { kvPersist: options.kvPersist }),
    ...(options.cachePersist === undefined ? {} : { cachePersist: options.cachePersist }),
  }
  const mf = new Miniflare(config)
  await mf.ready
  let seen = 0
  async function post<T>(path: string, body: unknown): Promise<T> {
    const res = await mf.dispatchFetch(`http://worker${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
    })
    if (!res.ok) throw new Error(`worker answered ${res.status}: ${await res.text()}`)
    return (await res.json()) as T
  }
  return {
    post,
    async kvKeys(): Promise<string[]> {
      const kv = await mf.getKVNamespace('M2M_CACHE')
      return (await kv.list()).keys.map((key) => key.name)
    },
    async dispatch(path, init = {}) {
      const res = await mf.dispatchFetch(`http://worker${path}`, { headers: init.headers ?? {} })
      // Node's Response, read here so the caller gets a plain one.
      return new Response(await res.text(), { status: res.status, headers: [...res.headers] })
    },
    async writesLanded(count = 1): Promise<void> {
      const deadline = Date.now() + 5_000
      for (;;) {
        const writes = await post<{ started: number; settled: number }>('/writes', {})
        if (writes.started >= seen + count && writes.settled === writes.started) {
          seen = writes.started
          return
        }
        if (Date.now() > deadline)
          throw new Error(`store writes did not land: ${JSON.stringify(writes)}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    },
    dispose: () => mf.dispose(),
  }
}
