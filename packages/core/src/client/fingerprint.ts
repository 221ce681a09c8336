const FNV_OFFSET = 0xcbf29ce484222325n
const FNV_PRIME = 0x100000001b3n
const MASK_64 = 0xffffffffffffffffn

/**
 * FNV-1a 64 of the key's UTF-8 bytes as 16 hex characters: stable and synchronous on every runtime,
 * enough to namespace caches per key, and it does not reveal the key.
 *
 * @example
 * fingerprintSecretKey('sk_test_…') // 'a1b2c3d4e5f60718'
 */
export function fingerprintSecretKey(secretKey: string): string {
  let hash = FNV_OFFSET
  for (const byte of new TextEncoder().encode(secretKey)) {
    hash ^= BigInt(byte)
    hash = (hash * FNV_PRIME) & MASK_64
  }
  return hash.toString(16).padStart(16, '0')
}
