/**
 * SHA-256 of a token: the only form in which a token is ever used as a cache key.
 *
 * Two forms of one digest. In process, the key is the raw 32-byte digest as a one-byte string
 * (`latin1`): cheapest to produce and to hash into a Map, and never leaves the process. Shared
 * stores get the same digest as unpadded base64url (43 characters), the form DESIGN.md fixes
 * for keys that other instances and operators see.
 *
 * Node ≥ 20.12 and Bun have a one-shot synchronous `crypto.hash`, several times cheaper than
 * `createHash` and far cheaper than an awaited WebCrypto digest; the cache-hit path depends on it
 * to stay synchronous. It is looked up once, at module load, through `process.getBuiltinModule`
 * so no `node:` import reaches workerd, where WebCrypto is used instead.
 */

type SyncDigest = (input: string) => string

interface NodeCryptoLike {
  hash?: (algorithm: string, data: string, outputEncoding: string) => string
}

interface ProcessLike {
  getBuiltinModule?: (id: string) => unknown
}

/** SHA-256('abc') as a binary string: what a working one-shot hash must give. */
const ABC_DIGEST =
  '\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41\x40\xde\x5d\xae\x22\x23' +
  '\xb0\x03\x61\xa3\x96\x17\x7a\x9c\xb4\x10\xff\x61\xf2\x00\x15\xad'

function detectSyncDigest(): SyncDigest | undefined {
  try {
    const proc = (globalThis as { process?: ProcessLike }).process
    const nodeCrypto = proc?.getBuiltinModule?.('node:crypto') as NodeCryptoLike | undefined
    const hash = nodeCrypto?.hash
    if (typeof hash !== 'function') return undefined
    // Probe once: a runtime that exposes the name but not latin1 output must fall back.
    if (hash('sha256', 'abc', 'latin1') !== ABC_DIGEST) return undefined
    return (input) => hash('sha256', input, 'latin1')
  } catch {
    return undefined
  }
}

/**
 * The synchronous SHA-256 of this runtime as a 32-character binary string, or `undefined` where
 * only WebCrypto is available (workerd, browsers). The in-process cache key.
 *
 * @internal
 * @example
 * const key = digestSync ? digestSync(token) : await digest(token)
 */
export const digestSync: SyncDigest | undefined = detectSyncDigest()

const encoder = new TextEncoder()

async function digestWebCrypto(input: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(input)))
  let binary = ''
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i] as number)
  return binary
}

/**
 * SHA-256 of a UTF-8 string as a 32-character binary string, synchronous where the runtime
 * allows it. The in-process cache key; {@link digestToBase64url} gives the shared-store form.
 *
 * @internal
 * @example
 * const key = await digest('mt_…')
 */
export function digest(input: string): string | Promise<string> {
  return digestSync !== undefined ? digestSync(input) : digestWebCrypto(input)
}

/**
 * A binary digest from {@link digest} as unpadded base64url, on every runtime (`btoa` reads a
 * binary string as bytes).
 *
 * @internal
 * @example
 * digestToBase64url(await digest('abc')) // 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0'
 */
export function digestToBase64url(binary: string): string {
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * SHA-256 of a UTF-8 string as unpadded base64url (43 characters), synchronous where the runtime
 * allows it. The form of a token's hash in shared-store keys.
 *
 * @example
 * const key = await sha256('mt_…') // 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg'
 */
export function sha256(input: string): string | Promise<string> {
  const d = digest(input)
  return typeof d === 'string' ? digestToBase64url(d) : d.then(digestToBase64url)
}

/**
 * The WebCrypto path, whatever the runtime: what workerd uses. Exported for tests.
 *
 * @internal
 * @example
 * expect(await sha256ViaWebCrypto('abc')).toBe(await sha256('abc'))
 */
export async function sha256ViaWebCrypto(input: string): Promise<string> {
  return digestToBase64url(await digestWebCrypto(input))
}

/**
 * The binary WebCrypto digest, whatever the runtime: what workerd uses. Exported for tests.
 *
 * @internal
 * @example
 * expect(await digestViaWebCrypto('abc')).toBe(digestSync!('abc'))
 */
export const digestViaWebCrypto: (input: string) => Promise<string> = digestWebCrypto
