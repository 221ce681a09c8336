/**
 * The few members of the Workers runtime types the stores use, declared structurally so the
 * package needs no `@cloudflare/workers-types` and a real binding (or Miniflare's) fits as is.
 */

/**
 * The part of a Workers KV namespace binding the store uses (`env.MY_KV` fits).
 *
 * @example
 * const namespace: KVNamespaceLike = env.M2M_CACHE
 */
export interface KVNamespaceLike {
  get(key: string, options: { type: 'text' }): Promise<string | null>
  put(key: string, value: string, options: { expirationTtl: number }): Promise<void>
  delete(key: string): Promise<void>
}

/**
 * The part of a `Response` the Cache API store reads back. Declared structurally, not as the
 * global `Response`, so a project's Workers types and the DOM's need not be the same to fit.
 *
 * @example
 * const response: ResponseLike = new Response('{}')
 */
export interface ResponseLike {
  readonly status: number
  readonly body: { cancel(): Promise<void> } | null
  text(): Promise<string>
}

/**
 * The part of a Workers `Cache` the store uses (`caches.default` or `await caches.open(name)` fit).
 * The store puts real `Response`s; the parameter is structural only so that any `Cache` type fits.
 *
 * @example
 * const cache: CacheLike = await caches.open('m2m-guard')
 */
export interface CacheLike {
  match(request: string): Promise<ResponseLike | undefined>
  put(request: string, response: ResponseLike): Promise<void>
  delete(request: string): Promise<boolean>
}
