/**
 * SHA-256 of a token as base64url: the only form in which a token is ever used as a cache key.
 *
 * Node ≥ 20.12 and Bun have a one-shot synchronous `crypto.hash`, several times cheaper than
 * `createHash` and far cheaper than an awaited WebCrypto digest; the cache-hit path depends on it
 * to stay synchronous. It is looked up once, at module load, through `process.getBuiltinModule`
 * so no `node:` import reaches workerd, where WebCrypto is used instead.
 */

type SyncHash = (input: string) => string

interface NodeCryptoLike {
  hash?: (algorithm: string, data: string, outputEncoding: string) => string
}

interface ProcessLike {
  getBuiltinModule?: (id: string) => unknown
}

function detectSyncHash(): SyncHash | undefined {
  try {
    const proc = (globalThis as { process?: ProcessLike }).process
    const nodeCrypto = proc?.getBuiltinModule?.('node:crypto') as NodeCryptoLike | undefined
    const hash = nodeCrypto?.hash
    if (typeof hash !== 'function') return undefined
    // Probe once: a runtime that exposes the name but not base64url output must fall back.
    if (hash('sha256', 'abc', 'base64url') !== 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0') {
      return undefined
    }
    return (input) => hash('sha256', input, 'base64url')
  } catch {
    return undefined
  }
}

/**
 * The synchronous SHA-256 → base64url function of this runtime, or `undefined` where only
 * WebCrypto is available (workerd, browsers).
 *
 * @example
 * const key = sha256Sync ? sha256Sync(token) : await sha256(token)
 */
export const sha256Sync: SyncHash | undefined = detectSyncHash()

const encoder = new TextEncoder()

function toBase64url(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i] as number)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

async function sha256WebCrypto(input: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', encoder.encode(input))
  return toBase64url(new Uint8Array(digest))
}

/**
 * SHA-256 of a UTF-8 string as unpadded base64url (43 characters), synchronous where the runtime
 * allows it.
 *
 * @example
 * const key = await sha256('mt_…') // 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg'
 */
export function sha256(input: string): string | Promise<string> {
  return sha256Sync !== undefined ? sha256Sync(input) : sha256WebCrypto(input)
}

/**
 * The WebCrypto path, whatever the runtime: what workerd uses. Exported for tests.
 *
 * @internal
 * @example
 * expect(await sha256ViaWebCrypto('abc')).toBe(sha256Sync!('abc'))
 */
export const sha256ViaWebCrypto: (input: string) => Promise<string> = sha256WebCrypto
