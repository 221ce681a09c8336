import { randomBytes } from 'node:crypto'

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** Uniform base62 string: rejection sampling keeps every character equally likely. */
export function base62(length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62]
      if (out.length === length) break
    }
  }
  return out
}

export function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex')
}

export const MACHINE_ID_RE = /^mch_\w{27}$/
export const TOKEN_ID_RE = /^mt_[0-9A-Fa-f]{32}$/

export const newMachineId = (): string => `mch_${base62(27)}`
export const newInstanceId = (): string => `ins_${base62(27)}`
export const newTokenId = (): string => `mt_${hex(16)}`
export const newTokenSecret = (): string => `mt_${base62(48)}`
export const newMachineKey = (): string => `ak_${base62(40)}`
export const newInstanceKey = (): string => `sk_test_${base62(40)}`
export const newTraceId = (): string => hex(16)
