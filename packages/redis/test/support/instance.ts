/**
 * One service instance in its own process: a verifier with the Redis tier, driven over
 * stdin/stdout with one JSON line per command. Tokens arrive on stdin, never in argv or env, so
 * they do not show up in process listings.
 *
 * Env: REDIS_URL, API_URL, SECRET_KEY, MACHINE_ID.
 */
import { createInterface } from 'node:readline'
import { type CacheStore, createM2MVerifier, type M2MEvent } from '@m2m-guard/core'
import { redisCacheStore, redisRevocationBus } from '../../src/index.js'

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is required`)
  return value
}

// A generous deadline: CI runs every suite at once on two cores.
const commandTimeoutMs = 2_000
const bus = redisRevocationBus({ url: env('REDIS_URL'), commandTimeoutMs })
const redisStore = redisCacheStore({ url: env('REDIS_URL'), revocationBus: bus, commandTimeoutMs })
// The verifier writes to the store in the background; track the writes so a command's answer
// (and the process's exit) comes after them.
const writes = new Set<Promise<void>>()
const store: CacheStore = {
  get: (key) => redisStore.get(key),
  set: (key, value, ttlMs) => {
    const write = redisStore.set(key, value, ttlMs)
    writes.add(write)
    write.finally(() => writes.delete(write)).catch(() => {})
    return write
  },
  delete: (key) => redisStore.delete(key),
}
const events: M2MEvent[] = []
const verifier = createM2MVerifier({
  apiUrl: env('API_URL'),
  secretKey: env('SECRET_KEY'),
  machineId: env('MACHINE_ID'),
  cache: { ttlMs: 30_000, store },
  revocationBus: bus,
  onEvent: (event) => events.push(event),
})

type Command = { op: 'verify'; token: string } | { op: 'revoke'; id: string } | { op: 'exit' }

const reply = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`)

await bus.ready()
reply({ ready: true })

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as Command
  if (command.op === 'exit') break
  events.length = 0
  if (command.op === 'verify') {
    try {
      const auth = await verifier.verify(command.token)
      // The verifier starts its write a few microtasks after answering.
      await new Promise((resolve) => setImmediate(resolve))
      await Promise.allSettled([...writes])
      reply({ ok: true, subject: auth.subject, id: auth.id, events })
    } catch (err) {
      reply({ ok: false, code: (err as { code?: string }).code, events })
    }
  } else if (command.op === 'revoke') {
    await verifier.revoke(command.id)
    reply({ ok: true, events })
  }
}

await verifier.close()
await Promise.all([redisStore.close(), bus.close()])
